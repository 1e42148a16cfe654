"""Tables (booktabs) and figures (matplotlib, Agg) built by code from the results files.

The model only chooses *what* to show (a dataset, columns, a caption); every number in a table or a
figure is read from the data here, so none of them can be made up.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path

from agentlab.experiment import analysis
from agentlab.report.latex import render, tex_escape
from agentlab.report.pdf_check import wrap_numbers
from agentlab.report.schemas import FigureSpec, TableSpec
from agentlab.report.values import fmt_number

Dataset = dict  # {"rows": [dict], "path": str}


def _num(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def fmt_value(v) -> str:
    """A number as LaTeX, 4 significant digits (as the prose renders it); anything else escaped."""
    if not _num(v):
        return tex_escape(v if v is not None else "--")
    return str(v) if isinstance(v, int) else fmt_number(float(v))


def _rows_of(obj) -> list[dict] | None:
    """Rows from a list of dicts, a {columns, rows} table, or a dict of dicts."""
    if isinstance(obj, list) and obj and all(isinstance(r, dict) for r in obj):
        return obj
    if isinstance(obj, dict) and isinstance(obj.get("rows"), list) and isinstance(obj.get("columns"), list):
        cols = obj["columns"]
        return [dict(zip(cols, r)) if isinstance(r, list) else r for r in obj["rows"] if isinstance(r, (list, dict))]
    if isinstance(obj, dict) and obj and all(isinstance(v, dict) for v in obj.values()):
        return [{"key": k, **v} for k, v in obj.items()]
    return None


def has_results(data: dict[str, Dataset]) -> bool:
    """Whether any measured result is among the datasets (a stage table, or an old run's metrics)."""
    return any(n == "metrics" or n.startswith("stage.") for n in data)


def datasets(ctx: dict) -> dict[str, Dataset]:
    """Every tabular view of the run's results the writer may show: one table per stage that produced
    results (`stage.<name>`, from its best node's results file), the ablations, and `analysis.comparisons`."""
    if not isinstance((ctx.get("experiment") or {}).get("stages"), dict):
        return _legacy_datasets(ctx)
    out: dict[str, Dataset] = {}
    exp = ctx.get("experiment") or {}
    best = exp.get("best") if isinstance(exp.get("best"), dict) else {}
    for st in analysis.stage_results(ctx.get("run_repo"), exp):
        res, path = st["results"], st["path"]
        if not res:
            continue
        rows = [_display_row(r, path) for r in analysis.stage_table(res)]
        out[f"stage.{st['name']}"] = {"path": path, "rows": rows, "results": res, "stage": st["name"]}
        if st["name"] == "ablations":
            abl = analysis.ablation_table(res, best.get("params"), best.get("method") or "proposed")
            out["ablations"] = {"path": path, "results": res, "stage": "ablations",
                                "rows": [{**{k: v for k, v in r.items() if k != "id"}, "_path": path,
                                          "_key": f"cells[{r['id']}]"} for r in abl]}
    seeds = out.get("stage.seeds")
    comps = _comparisons(ctx, seeds)
    if comps and seeds:
        out["analysis.comparisons"] = {"path": seeds["path"], "rows": comps, "stage": "seeds"}
    return out


def _display_row(row: dict, path: str) -> dict:
    """A stage-table row for display: params as text, bookkeeping keys for the trace."""
    shown = {k: v for k, v in row.items() if k not in ("id", "role", "params")}
    return {"method": row["method"], "params": analysis.params_text(row["params"]), **shown,
            "_path": path, "_key": f"cells[{row['id']}]", "_params": row["params"], "_role": row["role"]}


def _comparisons(ctx: dict, seeds: Dataset | None) -> list[dict]:
    """analysis.comparisons (from the state, else computed from the seeds results) as table rows."""
    an = ctx.get("analysis") if isinstance(ctx.get("analysis"), dict) else None
    if not an and seeds:
        best = (ctx.get("experiment") or {}).get("best") or {}
        an = analysis.analyze(seeds["results"], proposed_method=best.get("method") or "proposed")
    comps = [c for c in (an or {}).get("comparisons") or [] if isinstance(c, dict)]
    methods = [c.get("method") for c in comps]
    rows = []
    for c in comps:  # a baseline is named by its method when that is unambiguous (the cell id is in _key)
        test = c.get("test") if isinstance(c.get("test"), dict) else {}
        ci = test.get("ci95_diff") if isinstance(test.get("ci95_diff"), list) else [None, None]
        name = c.get("method") if methods.count(c.get("method")) == 1 and c.get("method") else c.get("baseline")
        rows.append({"baseline": name, "proposed": c.get("mean_a"), "baseline_mean": c.get("mean_b"),
                     "diff": c.get("diff"), "diff_lo": ci[0], "diff_hi": ci[-1], "p": test.get("p"),
                     "conclusion": c.get("conclusion"), "_path": (seeds or {}).get("path", "results.json"),
                     "_key": f"analysis.comparisons[{c.get('baseline')}]"})
    return rows


def _legacy_datasets(ctx: dict) -> dict[str, Dataset]:
    """Datasets of a run saved before the staged experiment (state["attempts"] + flat results metrics)."""
    out: dict[str, Dataset] = {}
    results = ctx.get("results") or {}
    attempts = ctx.get("attempts") or []
    best = ctx.get("best_attempt")
    path = next((a.get("results_path") for a in attempts if a.get("n") == best), None) or "results.json"
    directions = {m.get("name"): m.get("direction", "") for m in (ctx.get("plan") or {}).get("metrics", [])}
    metrics = {k: v for k, v in (results.get("metrics") or {}).items() if _num(v)}
    if metrics:
        out["metrics"] = {"path": path, "rows": [
            {"metric": k, "value": v, "better": directions.get(k, "")} for k, v in metrics.items()]}
    if attempts:
        names = sorted({k for a in attempts for k, v in (a.get("metrics") or {}).items() if _num(v)})
        out["attempts"] = {"path": "experiments/attempt-N/results.json", "rows": [
            {"attempt": a.get("n"), "status": a.get("status", ""), **{k: (a.get("metrics") or {}).get(k) for k in names},
             "_path": a.get("results_path") or f"experiments/attempt-{a.get('n')}/results.json"}
            for a in attempts]}
    tables = results.get("tables")
    if isinstance(tables, dict):
        tables = [{"name": k, **(v if isinstance(v, dict) else {"rows": v})} for k, v in tables.items()]
    for i, t in enumerate(tables if isinstance(tables, list) else []):
        rows = _rows_of(t) if isinstance(t, dict) and "columns" in t else _rows_of(t.get("rows") if isinstance(t, dict) else t)
        if rows:
            name = str(t.get("name") or t.get("caption") or f"table{i + 1}") if isinstance(t, dict) else f"table{i + 1}"
            out[f"tables.{name}"] = {"path": path, "rows": rows}
    for key, val in (results.get("details") or {}).items():
        rows = _rows_of(val)
        if rows:
            out[f"details.{key}"] = {"path": path, "rows": rows}
    return out


def describe(data: dict[str, Dataset], max_rows: int = 12, chars: int | None = None) -> list[dict]:
    """A compact view of the datasets for the prompt; with `chars`, fewer rows per dataset until the view's
    JSON fits (the final stage and the comparisons first), so a small-context model still gets a prompt."""
    order = sorted(data, key=lambda n: (0 if n.startswith(("analysis", "stage.seeds")) else 1))
    for rows in (max_rows, 6, 3, 1, 0):
        view = [{"name": n, "columns": _columns(data[n]["rows"]), "n_rows": len(data[n]["rows"]),
                 "auto": bool(data[n].get("stage")),
                 "rows": [{k: v for k, v in r.items() if not str(k).startswith("_")} for r in data[n]["rows"][:rows]]}
                for n in order]
        if chars is None or len(json.dumps(view, default=str)) <= chars:
            return view
    return view[: max(1, len(view) // 2)]


def _columns(rows: list[dict]) -> list[str]:
    """Column names in first-seen order ("_"-prefixed keys are bookkeeping, not data)."""
    cols: list[str] = []
    for r in rows:
        cols += [c for c in r if c not in cols and not str(c).startswith("_")]
    return cols


def _where(ds: Dataset, source: str, i: int, r: dict, c: str) -> str:
    """Where a table number comes from: its results file and the cell (or row) and column."""
    if "_key" in r:
        return f"{r.get('_path') or ds['path']}: {r['_key']}.{c}"
    if "_path" in r:  # an old run's attempts table
        return "attempt number" if c == "attempt" else f"{r['_path']}: metrics.{c}"
    return f"{ds['path']}: {source} row {i + 1}, {c}"


def build_table(spec: TableSpec, data: dict[str, Dataset], n: int | str, label: str | None = None,
                code_caption: bool = False) -> tuple[str, list[dict]] | str:
    """(LaTeX, trace rows of its numbers), or a problem message; cells and a code-made caption's digits: NUM in check.tex."""
    ds = data.get(spec.source)
    if ds is None:
        return f"table {n} dropped: no dataset {spec.source!r} (have: {', '.join(data)})"
    allc = _columns(ds["rows"])
    cols = ([c for c in spec.columns if c in allc] or allc)[:8]
    trace, body = [], []
    for i, r in enumerate(ds["rows"][:30]):
        cells = []
        for c in cols:
            cells.append(fmt_value(v := r.get(c)))
            if _num(v):
                trace.append({"number": fmt_value(v), "source": _where(ds, spec.source, i, r, c),
                              "status": "ok", "section": f"table {n}", "context": "generated from the data"})
        body.append(cells)
    align = "".join("r" if all(_num(r.get(c)) or r.get(c) is None for r in ds["rows"]) else "l" for c in cols)
    caption = tex_escape(spec.caption or f"{spec.source} (from {ds['path']})")
    caption = wrap_numbers(caption) if code_caption or not spec.caption else caption
    tex = render("partials/table.tex.j2", caption=caption, label=label or f"tab:t{n}", align=align,
                 header=[tex_escape(c) for c in cols], rows=body)
    return tex, trace


def build_figure(spec: FigureSpec, data: dict[str, Dataset], n: int, out_dir: Path) -> str:
    """Draw the figure into out_dir/fig-n.pdf; returns its LaTeX, or a problem message."""
    ds = data.get(spec.source)
    if ds is None:
        return f"figure {n} dropped: no dataset {spec.source!r}"
    rows = ds["rows"]
    cols = _columns(rows)
    missing = [c for c in [spec.x, *spec.y] if c not in cols]
    if missing:
        return f"figure {n} dropped: {spec.source} has no column(s) {', '.join(missing)} (has: {', '.join(cols)})"
    ys = [c for c in spec.y if any(_num(r.get(c)) for r in rows)]
    if not ys:
        return f"figure {n} dropped: no numeric values in {', '.join(spec.y)}"
    fig, ax = _pyplot().subplots(figsize=(5, 3))
    xs = [r.get(spec.x) for r in rows]
    if spec.kind == "line" and all(_num(x) for x in xs):
        for c in ys:
            pts = sorted((x, r.get(c)) for x, r in zip(xs, rows) if _num(r.get(c)))
            ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="o", label=c)
    else:
        width = 0.8 / len(ys)
        for j, c in enumerate(ys):
            vals = [r.get(c) if _num(r.get(c)) else 0 for r in rows]
            ax.bar([i + j * width for i in range(len(rows))], vals, width=width, label=c)
        ax.set_xticks([i + width * (len(ys) - 1) / 2 for i in range(len(rows))])
        ax.set_xticklabels([str(x) for x in xs], rotation=30 if len(rows) > 4 else 0, fontsize=8)
    ax.set_xlabel(spec.x)
    if len(ys) > 1:
        ax.legend(fontsize=8)
    else:
        ax.set_ylabel(ys[0])
    _save(fig, out_dir, f"fig-{n}")
    caption = tex_escape(spec.caption) if spec.caption else wrap_numbers(tex_escape(f"{', '.join(ys)} by {spec.x}"
                                                                                   f" ({spec.source})"))
    return render("partials/figure.tex.j2", path=f"figures/fig-{n}.pdf", caption=caption, label=f"fig:f{n}")


# ---- the Results section's fixed exhibits: one table per stage, the comparisons, the sweep and Pareto figures ----

STAGE_CAPTIONS = {
    "baselines": "Baselines", "implement": "Proposed method (implementation stage)",
    "sweep": "Sweep of the key parameter", "ablations": "Ablations of the proposed method",
    "seeds": "Final comparison",
}


@dataclass
class Exhibits:
    """What code always adds to the Results section: table file stems, figure LaTeX, labels, trace rows."""

    tables: list[str] = field(default_factory=list)
    figures: list[str] = field(default_factory=list)
    labels: list[str] = field(default_factory=list)
    trace: list[dict] = field(default_factory=list)
    sources: set[str] = field(default_factory=set)  # dataset names shown (the outline need not repeat them)
    problems: list[str] = field(default_factory=list)


def _stage_columns(ds: Dataset) -> list[str]:
    res = ds["results"]
    primary = res.get("primary") if isinstance(res.get("primary"), str) else ""
    others = [m for m in (res.get("metrics") or {}) if m != primary and isinstance(m, str)]
    cols = ["method", "params"] + [c for c in (primary, f"{primary}_lo", f"{primary}_hi", f"{primary}_n") if primary]
    if any(r.get("status") != "ok" for r in ds["rows"]):
        cols.append("status")
    return (cols + others)[:8]


def _caption(ds: Dataset, what: str) -> str:
    spec = ds["results"].get("spec") if isinstance(ds["results"].get("spec"), dict) else {}
    split = spec.get("split") if isinstance(spec.get("split"), str) else "?"
    return (f"{what}: {split} split; mean, and 95 % interval over seeds where more than one seed ran "
            f"(lo, hi); from {ds['path']}")


def _emit_table(spec: TableSpec, data: dict[str, Dataset], stem: str, out_dir: Path, ex: Exhibits) -> None:
    tex, trace = build_table(spec, data, stem, label=f"tab:{stem}", code_caption=True)
    (out_dir / "tables").mkdir(parents=True, exist_ok=True)
    (out_dir / "tables" / f"{stem}.tex").write_text(tex)
    ex.tables.append(stem)
    ex.labels.append(f"tab:{stem}")
    ex.trace += trace
    ex.sources.add(spec.source)


def _auto_tables(data: dict[str, Dataset], out_dir: Path, ex: Exhibits) -> None:
    for name, ds in [(n, d) for n, d in data.items() if n.startswith("stage.")]:
        stage = name.split(".", 1)[1]
        what = STAGE_CAPTIONS.get(stage, stage)
        if stage == "ablations" and "ablations" in data:  # the ablation table stands for its stage
            spec = TableSpec(source="ablations", caption=_caption(ds, what) + "; delta and p: against the full method")
            ex.sources.add(name)
        else:
            spec = TableSpec(source=name, columns=_stage_columns(ds), caption=_caption(ds, what))
        _emit_table(spec, data, f"stage-{stage}", out_dir, ex)
    if "analysis.comparisons" in data:
        caption = ("The proposed method against each baseline: means, difference and its 95 % interval, paired "
                   f"t-test over items and seeds; from {data['analysis.comparisons']['path']}")
        _emit_table(TableSpec(source="analysis.comparisons", caption=caption), data, "comparisons", out_dir, ex)


def _save(fig, out_dir: Path, stem: str) -> None:
    import matplotlib.pyplot as plt

    out_dir.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(out_dir / f"{stem}.pdf")
    fig.savefig(out_dir / f"{stem}.png", dpi=150)
    plt.close(fig)


def _axis(res: dict, metric: str) -> str:
    unit = ((res.get("metrics") or {}).get(metric) or {}).get("unit") or ""
    return f"{metric}{f' ({unit})' if unit else ''}, {analysis.direction(res, metric)} is better"


def sweep_figure(res: dict, knob: str, out_dir: Path) -> bool:
    """The primary metric against the knob, one line per method, 95 % intervals as error bars."""
    series = {m: pts for m, pts in analysis.sweep_series(res, knob).items() if len(pts) >= 2}
    if not series:
        return False
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(5, 3.2))
    for method, pts in series.items():
        xs, ys = [p[0] for p in pts], [p[1] for p in pts]
        err = None
        if all(p[2] is not None for p in pts):
            err = [[y - p[2] for y, p in zip(ys, pts)], [p[3] - y for y, p in zip(ys, pts)]]
        ax.errorbar(xs, ys, yerr=err, marker="o", capsize=3, label=method)
    ref = next((c for c in analysis.cells(res) if c.get("role") == "reference"), None)
    refv = analysis.value(ref, res.get("primary")) if ref else None
    if refv:
        ax.axhline(refv["mean"], ls="--", color="gray", label=f"{ref['id']} (reference)")
    xs = [p[0] for pts in series.values() for p in pts]
    if min(xs) > 0 and max(xs) / min(xs) >= 8:
        ax.set_xscale("log", base=2)
    ax.set_xlabel(knob)
    ax.set_ylabel(_axis(res, res.get("primary")), fontsize=8)
    ax.legend(fontsize=7)
    _save(fig, out_dir, "sweep")
    return True


def pareto_figure(res: dict, family: str, out_dir: Path) -> tuple[str, str] | None:
    """Quality against cost for every cell, the non-dominated ones joined; (quality, cost) or None."""
    quality, cost = analysis.PARETO.get(family, (res.get("primary"), None))
    pts = analysis.pareto_points(res, quality, cost) if cost else []
    if len(pts) < 2:
        return None
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(5, 3.2))
    for method in dict.fromkeys(p["method"] for p in pts):
        mine = [p for p in pts if p["method"] == method]
        ax.scatter([p["cost"] for p in mine], [p["quality"] for p in mine], label=str(method), s=18)
    front = sorted((p for p in pts if p["pareto"]), key=lambda p: p["cost"])
    ax.plot([p["cost"] for p in front], [p["quality"] for p in front], color="black", lw=0.8, ls=":",
            label="Pareto front")
    ax.set_xlabel(_axis(res, cost), fontsize=8)
    ax.set_ylabel(_axis(res, quality), fontsize=8)
    ax.legend(fontsize=7)
    _save(fig, out_dir, "pareto")
    return quality, cost


def _pyplot():
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    return plt


def _figure_tex(stem: str, caption: str) -> str:
    return render("partials/figure.tex.j2", path=f"figures/{stem}.pdf", caption=wrap_numbers(tex_escape(caption)),
                  label=f"fig:{stem}")


def _auto_figures(ctx: dict, data: dict[str, Dataset], out_dir: Path, ex: Exhibits) -> None:
    exp = ctx.get("experiment") or {}
    sweep = data.get("stage.sweep")
    if sweep:
        res = sweep["results"]
        knob = exp.get("knob") or analysis.KNOBS.get(res.get("family"), "")
        if knob and sweep_figure(res, knob, out_dir / "figures"):
            ex.figures.append(_figure_tex("sweep", f"{res.get('primary')} against {knob}, one line per method "
                                                   f"(error bars: 95 % interval over seeds where available); "
                                                   f"from {sweep['path']}"))
            ex.labels.append("fig:sweep")
    ds = sweep or data.get("stage.seeds") or data.get("stage.implement")
    if ds:
        res = ds["results"]
        pair = pareto_figure(res, str(res.get("family") or exp.get("family") or ""), out_dir / "figures")
        if pair:
            ex.figures.append(_figure_tex("pareto", f"Quality ({pair[0]}) against cost ({pair[1]}) of every "
                                                    f"configuration; dotted: the Pareto front; from {ds['path']}"))
            ex.labels.append("fig:pareto")


def results_exhibits(ctx: dict, data: dict[str, Dataset], out_dir: Path) -> Exhibits:
    """The tables and figures the Results section always has when the stages produced results."""
    ex = Exhibits()
    _auto_tables(data, out_dir, ex)
    try:
        _auto_figures(ctx, data, out_dir, ex)
    except (ValueError, TypeError, KeyError, OverflowError) as exc:  # malformed values: no figure, say why
        ex.problems.append(f"figures from the results files could not be drawn: {type(exc).__name__}: {exc}")
    return ex
