"""What the harness results say, computed by code: comparisons, stage tables, sweep curves, Pareto points.

Everything here reads one harness results file (``"schema": "agentlab.harness/1"``, see docs/experiments.md)
that a sandboxed job wrote, so nothing is trusted: a cell without usable values is skipped, never fatal.
``verdict_allowed`` is the guard the interpretation goes through: a hypothesis is "supported" or "refuted"
only when a paired test against the strongest baseline backs it.
"""

from __future__ import annotations

import math
from pathlib import Path

from agentlab.modules import stats
from agentlab.sandbox.safe_files import UntrustedFileError, check_relpath, read_json

STAGES = ("baselines", "implement", "sweep", "ablations", "seeds")
#: the swept parameter of each family (docs/experiments.md), when the experiment state does not say
KNOBS = {"kv": "budget", "prune": "sparsity", "attention": "window", "speculative": "k"}
#: (quality, cost) metric pairs of the quality-vs-cost plot, per family
PARETO = {"kv": ("ppl", "kv_bytes"), "prune": ("ppl", "params"), "attention": ("ppl", "kv_bytes"),
          "speculative": ("tokens_per_s", "tau")}
MAX_RESULTS_BYTES = 1_000_000


def _num(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def is_proposed(cell: dict, label: str = "proposed") -> bool:
    """A cell of the method under study: its id is the label, or the label with swept parameters (the engine
    labels it so, whether it is the LLM's plugin or a registered method with chosen settings)."""
    cid = str(cell.get("id", ""))
    return cid == label or cid.startswith(label + "[")


def series_name(cell: dict, label: str = "proposed") -> str:
    return label if is_proposed(cell, label) else str(cell.get("method"))


def cells(results: dict) -> list[dict]:
    """The cells of a results file that are dicts with an id (anything else is ignored)."""
    raw = results.get("cells") if isinstance(results, dict) else None
    return [c for c in raw if isinstance(c, dict) and isinstance(c.get("id"), str)] if isinstance(raw, list) else []


def value(cell: dict, metric: str) -> dict | None:
    """The cell's value record of `metric` when it has a finite mean, else None."""
    vals = cell.get("values") if cell.get("status", "ok") == "ok" else None
    v = vals.get(metric) if isinstance(vals, dict) else None
    return v if isinstance(v, dict) and _num(v.get("mean")) else None


def _ci(v: dict | None) -> tuple[float | None, float | None]:
    ci = (v or {}).get("ci95")
    if isinstance(ci, list) and len(ci) == 2 and all(_num(x) for x in ci):
        return float(ci[0]), float(ci[1])
    return None, None


def direction(results: dict, metric: str) -> str:
    info = (results.get("metrics") or {}).get(metric) if isinstance(results.get("metrics"), dict) else None
    d = info.get("direction") if isinstance(info, dict) else None
    return d if d in ("lower", "higher") else "lower"


def _better(a: float, b: float, d: str) -> bool:
    return a < b if d == "lower" else a > b


def best_cell(cs: list[dict], metric: str, d: str) -> dict | None:
    """The cell with the best mean of `metric` (direction d), or None when no cell has one."""
    scored = [c for c in cs if value(c, metric)]
    if not scored:
        return None
    key = (lambda c: value(c, metric)["mean"]) if d == "lower" else (lambda c: -value(c, metric)["mean"])
    return min(scored, key=key)


def _conclusion(cmp: dict, d: str, alpha: float) -> str:
    test = cmp.get("test") or {}
    p, diff = test.get("p"), cmp.get("diff")
    if (test.get("n") or 0) < 2 or not _num(p) or not _num(diff) or p >= alpha or diff == 0:
        return "inconclusive"
    return "better" if _better(diff, 0.0, d) else "worse"


def _compare(proposed: dict, other: dict, metric: str, d: str, alpha: float) -> dict:
    base = {"baseline": other["id"], "method": other.get("method"), "role": other.get("role", "method")}
    try:
        cmp = stats.compare(proposed, other, metric)
    except (ValueError, TypeError, KeyError, ZeroDivisionError) as exc:
        return {**base, "conclusion": "inconclusive", "error": str(exc)[:200], "test": {}, "ci_overlap": None}
    return {**base, **cmp, "conclusion": _conclusion(cmp, d, alpha)}


def analyze(results: dict, *, proposed_method: str = "proposed", alpha: float = 0.05) -> dict:
    """The best proposed cell against every baseline cell and the reference, on the primary metric."""
    results = results if isinstance(results, dict) else {}
    primary = results.get("primary") if isinstance(results.get("primary"), str) else ""
    d = direction(results, primary)
    cs = cells(results)
    proposed = best_cell([c for c in cs if is_proposed(c, proposed_method)], primary, d)
    others = [c for c in cs if not is_proposed(c, proposed_method) and not c["id"].startswith("ablation:")
              and value(c, primary)
              and c.get("role", "method") in ("method", "reference")]
    comparisons = [_compare(proposed, o, primary, d, alpha) for o in others] if proposed else []
    spec = results.get("spec") if isinstance(results.get("spec"), dict) else {}
    seeds = spec.get("seeds") if isinstance(spec.get("seeds"), list) else []
    n_seeds = len(seeds) or max([value(c, primary).get("n") or 0 for c in cs if value(c, primary)] or [0])
    baselines = [c for c in others if c.get("role", "method") == "method"]
    strongest = best_cell(baselines, primary, d) or best_cell(others, primary, d)
    return {"primary": primary, "direction": d, "reference": results.get("reference"),
            "proposed": proposed["id"] if proposed else None, "proposed_method": proposed_method,
            "strongest_baseline": strongest["id"] if strongest else None, "alpha": alpha,
            "comparisons": comparisons, "n_seeds": n_seeds, "split": spec.get("split"),
            "significant_any": any(c["conclusion"] != "inconclusive" for c in comparisons)}


def _why_not(cmp: dict | None, analysis: dict, want: str) -> str:
    alpha = analysis.get("alpha", 0.05)
    if not analysis.get("proposed"):
        return "no measured cell of the proposed method to compare"
    if cmp is None:
        return "no baseline was measured in the same results file"
    name, test = cmp.get("baseline"), cmp.get("test") or {}
    if (analysis.get("n_seeds") or 0) < 2:
        return f"only one seed was measured, so the comparison with {name} cannot support a verdict"
    if cmp.get("conclusion") == "inconclusive":
        p = test.get("p")
        ptext = f"p = {p:.3g}" if _num(p) else "no p-value"
        overlap = "; the 95 % confidence intervals overlap" if cmp.get("ci_overlap") else ""
        return f"no significance test passed against the strongest baseline {name} ({ptext}, alpha {alpha}){overlap}"
    return (f"the significant difference against {name} goes the other way (the proposed method is "
            f"{cmp.get('conclusion')}), which does not make the hypothesis {want}")


def verdict_allowed(analysis: dict | None, verdict: str) -> tuple[str, str | None]:
    """(the verdict the evidence allows, a caveat saying why it was changed, or None).

    "supported" needs a significant "better" against the strongest baseline, "refuted" a significant "worse",
    with at least two seeds; anything else becomes "inconclusive"."""
    if verdict not in ("supported", "refuted"):
        return verdict, None
    analysis = analysis if isinstance(analysis, dict) else {}
    comps = [c for c in analysis.get("comparisons") or [] if isinstance(c, dict)]
    strongest = analysis.get("strongest_baseline")
    cmp = next((c for c in comps if c.get("baseline") == strongest), None)
    want = "better" if verdict == "supported" else "worse"
    if cmp is not None and cmp.get("conclusion") == want and (analysis.get("n_seeds") or 0) >= 2:
        return verdict, None
    return "inconclusive", f"verdict '{verdict}' changed to 'inconclusive': {_why_not(cmp, analysis, verdict)}"


def params_text(params, limit: int = 48) -> str:
    """Parameters as `k=v, ...` (clipped) for tables."""
    if not isinstance(params, dict):
        return ""
    text = ", ".join(f"{k}={v}" for k, v in params.items() if isinstance(v, (str, int, float, bool)) or v is None)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def stage_table(results: dict, metrics: list[str] | None = None) -> list[dict]:
    """One row per cell: id, method, role, params, status and, per metric, mean / ci95 lo, hi / n."""
    names = metrics if metrics is not None else [m for m in (results.get("metrics") or {}) if isinstance(m, str)]
    rows = []
    for c in cells(results):
        row = {"id": c["id"], "method": c.get("method"), "role": c.get("role", "method"),
               "params": c.get("params") if isinstance(c.get("params"), dict) else {}, "status": c.get("status")}
        for m in names:
            v = value(c, m)
            lo, hi = _ci(v)
            n = v.get("n") if v else None
            row.update({m: float(v["mean"]) if v else None, f"{m}_lo": lo, f"{m}_hi": hi,
                        f"{m}_n": n if _num(n) else None})
        rows.append(row)
    return rows


def sweep_series(results: dict, knob: str, metric: str | None = None) -> dict[str, list[tuple]]:
    """{method: [(knob value, mean, ci lo, ci hi)]} of the metric (default: the primary), sorted by knob value."""
    metric = metric or results.get("primary")
    out: dict[str, list[tuple]] = {}
    for c in cells(results):
        x = (c.get("params") or {}).get(knob) if isinstance(c.get("params"), dict) else None
        v = value(c, metric) if isinstance(metric, str) else None
        if _num(x) and v:
            out.setdefault(series_name(c), []).append((float(x), float(v["mean"]), *_ci(v)))
    return {m: sorted(pts, key=lambda p: p[0]) for m, pts in out.items()}


def pareto_points(results: dict, quality_metric: str, cost_metric: str) -> list[dict]:
    """Every cell with both metrics: {id, method, role, quality, cost, pareto} (pareto: not dominated)."""
    dq, dc = direction(results, quality_metric), direction(results, cost_metric)
    pts = [{"id": c["id"], "method": c.get("method"), "role": c.get("role", "method"),
            "quality": float(value(c, quality_metric)["mean"]), "cost": float(value(c, cost_metric)["mean"])}
           for c in cells(results) if value(c, quality_metric) and value(c, cost_metric)]

    def dominated(p: dict) -> bool:
        return any(not _better(p["quality"], o["quality"], dq) and not _better(p["cost"], o["cost"], dc)
                   and (o["quality"], o["cost"]) != (p["quality"], p["cost"]) for o in pts)

    return [{**p, "pareto": not dominated(p)} for p in pts]


def ablation_table(results: dict, full_params: dict | None = None, proposed_method: str = "proposed") -> list[dict]:
    """The proposed method's cells with what each changes against the full configuration, its primary mean and
    interval, and the difference (with the paired test's p) against the full configuration."""
    primary = results.get("primary") if isinstance(results.get("primary"), str) else ""
    mine = [c for c in cells(results) if (is_proposed(c, proposed_method) or c["id"].startswith("ablation:"))
            and value(c, primary)]
    full_params = full_params if isinstance(full_params, dict) else {}

    def params(c: dict) -> dict:
        return c.get("params") if isinstance(c.get("params"), dict) else {}

    full = next((c for c in mine if all(params(c).get(k) == v for k, v in full_params.items())), None)
    full = full or best_cell(mine, primary, direction(results, primary))
    rows = []
    for c in mine:
        changed = {k: v for k, v in params(c).items() if full is not None and params(full).get(k) != v}
        lo, hi = _ci(value(c, primary))
        row = {"id": c["id"], "changed": params_text(changed) or "none (full method)", primary: value(c, primary)["mean"],
               f"{primary}_lo": lo, f"{primary}_hi": hi, "delta": None, "p": None}
        if full is not None and c is not full:
            cmp = _compare(c, full, primary, "lower", 1.0)
            row.update(delta=cmp.get("diff"), p=(cmp.get("test") or {}).get("p"))
        rows.append(row)
    return rows


def stage_results(repo_dir: str | Path | None, experiment: dict | None) -> list[dict]:
    """Each stage of the experiment state, in stage order, with its best node's results file read safely:
    [{name, status, reason, path, results (dict or None), error}]."""
    stages = (experiment or {}).get("stages") if isinstance(experiment, dict) else None
    stages = stages if isinstance(stages, dict) else {}
    order = [s for s in STAGES if s in stages] + [s for s in stages if s not in STAGES]
    out = []
    for name in order:
        rec = stages[name] if isinstance(stages[name], dict) else {}
        path, results, error = rec.get("results_path"), None, ""
        if rec.get("status") == "ok" and isinstance(path, str) and repo_dir:
            try:
                data = read_json(Path(repo_dir), check_relpath(path), max_bytes=MAX_RESULTS_BYTES)
                results = data if isinstance(data, dict) and cells(data) else None
                error = "" if results else "results file has no cells"
            except UntrustedFileError as exc:
                error = str(exc)
        out.append({"name": str(name), "status": rec.get("status", ""), "reason": str(rec.get("reason") or ""),
                    "path": path if isinstance(path, str) else None, "results": results, "error": error})
    return out
