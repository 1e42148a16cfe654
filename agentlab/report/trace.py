"""Number traceability: every number in the prose must come from a results file or a paper's note.

`collect_sources` gathers the allowed numbers (with a label saying where each comes from);
`trace_latex` lists every number in a section's LaTeX with its source, or marks it untraced;
`redact` replaces untraced numbers with a visible marker so they never reach the PDF.
"""

from __future__ import annotations

import itertools
import math
import re
from dataclasses import dataclass

from agentlab.report.figures import datasets

SMALL_INT_MAX = 10
_MAX_GROUP = 40

# LaTeX that carries no prose numbers: comments, references, labels, paths, lengths, env names
_STRIP = re.compile(
    r"(?<!\\)%[^\n]*"
    r"|\\(?:[Cc]ite[a-z]*|nocite|ref|eqref|autoref|cref|Cref|label|url|input|include|includegraphics"
    r"|begin|end|hspace|vspace|setlength|href|untraced)\*?(?:\[[^\]]*\])*\{[^}]*\}"
    r"|\[(?:width|height|scale)=[^\]]*\]"
)
_NUM = re.compile(r"\d+(?:(?:,|\{,\})\d{3})*(?:\.\d+)?")
_PCT = re.compile(r"\s*(?:\\%|%|\s?percent\b|\\,\\%)")
_MULT = re.compile(r"\s*(?:\$?\\times\$?|×|x(?![A-Za-z]))")


@dataclass(frozen=True)
class Source:
    value: float
    label: str
    kind: str = "value"  # value | pct_change | ratio | diff | year | count


@dataclass
class Found:
    text: str
    start: int
    end: int
    value: float
    decimals: int
    percent: bool
    multiplier: bool


def _walk(obj, path: str, out: list[tuple[str, float, str]], row: str) -> None:
    """(dotted path, value, row id) for every number inside `obj`."""
    if isinstance(obj, bool):
        return
    if isinstance(obj, (int, float)):
        if math.isfinite(obj):
            out.append((path, float(obj), row))
    elif isinstance(obj, dict):
        for k, v in obj.items():
            _walk(v, f"{path}.{k}" if path else str(k), out, path)
    elif isinstance(obj, (list, tuple)):
        for i, v in enumerate(obj):
            _walk(v, f"{path}[{i}]", out, f"{path}[{i}]")


def _text_numbers(text: str) -> list[float]:
    return [float(m.group(0).replace(",", "").replace("{}", "")) for m in _NUM.finditer(str(text))]


Leaf = tuple[str, float, tuple[str, ...]]  # (label, value, groups of comparable numbers)
#: columns whose values are compared (ratios, changes) with the same column of other rows
_NOT_COMPARED = ("_lo", "_hi", "_n")


def _legacy_leaves(ctx: dict, attempts: list) -> list[Leaf]:
    """A run saved before the staged experiment: the best results file and each attempt's metrics."""
    leaves: list[tuple[str, float, str]] = []
    best = ctx.get("best_attempt")
    best_path = next((a.get("results_path") for a in attempts if a.get("n") == best), None)
    best_path = best_path or (f"experiments/attempt-{best}/results.json" if best else "results.json")
    _walk(ctx.get("results") or {}, "", leaves, "")
    leaves = [(f"{best_path}:{p}", v, f"{best_path}:{r}") for p, v, r in leaves]
    for a in attempts:
        path = a.get("results_path") or f"experiments/attempt-{a.get('n')}/results.json"
        for name, v in (a.get("metrics") or {}).items():
            if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v):
                leaves.append((f"{path}:metrics.{name}", float(v), f"{path}:metrics"))
    return [(label, v, (f"name:{re.split(r'[.:]', label.split(']')[-1])[-1] or label}", f"row:{row}"))
            for label, v, row in leaves]


def _dataset_leaves(data: dict) -> list[Leaf]:
    """Every number of the tables the report shows (stage tables, ablations, comparisons), labelled
    `<results file>: <cell or comparison>.<column>`; means of one column of one file are comparable, as are
    the means within one row."""
    leaves: list[Leaf] = []
    for ds in data.values():
        for r in ds["rows"]:
            path, key = r.get("_path") or ds["path"], r.get("_key", "")
            for c, v in r.items():
                if str(c).startswith("_") or not _number(v):
                    continue
                compared = not str(c).endswith(_NOT_COMPARED) and c != "p"
                groups = (f"{path}|{c}", f"{path}|{key}") if compared else ()
                leaves.append((f"{path}: {key}.{c}", float(v), groups))
            for k, v in (r.get("_params") or {}).items():
                if _number(v):
                    leaves.append((f"{path}: {key}.params.{k}", float(v), (f"{path}|params.{k}",)))
    return leaves


def _file_leaves(data: dict) -> list[Leaf]:
    """Per-seed values and spreads of each cell, and the numbers of each stage's spec (items, seeds, tokens)."""
    leaves: list[Leaf] = []
    for ds in [d for n, d in data.items() if n.startswith("stage.")]:
        res, path = ds["results"], ds["path"]
        found: list[tuple[str, float, str]] = []
        _walk(res.get("spec") if isinstance(res.get("spec"), dict) else {}, "spec", found, "")
        for c in res.get("cells") or []:
            for m, v in ((c.get("values") or {}) if isinstance(c, dict) else {}).items():
                if isinstance(v, dict):
                    _walk({"per_seed": v.get("per_seed"), "std": v.get("std")}, f"cells[{c.get('id')}].{m}", found, "")
        leaves += [(f"{path}: {p}", v, ()) for p, v, _ in found]
    return leaves


def _analysis_leaves(ctx: dict, data: dict) -> list[Leaf]:
    an = ctx.get("analysis") if isinstance(ctx.get("analysis"), dict) else {}
    path = (data.get("stage.seeds") or {}).get("path", "analysis")
    out: list[Leaf] = [(f"{path}: analysis.{k}", float(an[k]), ()) for k in ("alpha", "n_seeds") if _number(an.get(k))]
    for c in [c for c in an.get("comparisons") or [] if isinstance(c, dict)]:
        found: list[tuple[str, float, str]] = []
        _walk({k: c.get(k) for k in ("rel_diff", "test")}, f"analysis.comparisons[{c.get('baseline')}]", found, "")
        out += [(f"{path}: {p}", v, ()) for p, v, _ in found]
    if data:
        out.append(("confidence level of every interval (95 %)", 95.0, ()))
    return out


def _number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def _result_leaves(ctx: dict) -> list[Leaf]:
    """Every number of the results the prose may use: the shown tables first, then what else the files say."""
    if not isinstance((ctx.get("experiment") or {}).get("stages"), dict):
        return _legacy_leaves(ctx, ctx.get("attempts") or [])
    data = datasets(ctx)
    first = {n: d for n, d in data.items() if n in ("analysis.comparisons", "stage.seeds")}
    ordered = {**first, **{n: d for n, d in data.items() if n not in first}}
    return _dataset_leaves(ordered) + _analysis_leaves(ctx, data) + _file_leaves(ordered)


def _note_sources(ctx: dict) -> list[Source]:
    """Every number written in a paper note's fields, labelled with the paper's key and the field."""
    sources: list[Source] = []
    keys = {p.get("id"): p.get("bibkey") or p.get("id") for p in ctx.get("papers") or []}
    for note in ctx.get("notes") or []:
        key = keys.get(note.get("paper_id"), note.get("paper_id"))
        for field in ("key_numbers", "problem", "method", "datasets", "metrics", "limitations"):
            val = note.get(field) or ""
            for item in (val if isinstance(val, list) else [val]):
                for num in _text_numbers(item):
                    sources.append(Source(num, f"note {key} ({field}): {str(item)[:80]}"))
    return sources


def collect_sources(ctx: dict) -> list[Source]:
    """Every number the prose may use, labelled with where it comes from."""
    sources: list[Source] = []
    leaves = _result_leaves(ctx)
    seen = set()
    for label, v, _ in leaves:
        if label not in seen:
            seen.add(label)
            sources.append(Source(v, label))
    sources += _derived(leaves)
    sources += _note_sources(ctx)
    for p in ctx.get("papers") or []:
        if p.get("year"):
            sources.append(Source(float(p["year"]), f"year of {p.get('bibkey') or p.get('id')}", "year"))
    plan = ctx.get("plan") or {}
    for field in ("title", "hypothesis", "method", "experiment_outline"):
        for num in _text_numbers(plan.get(field) or ""):
            sources.append(Source(num, f"plan ({field})"))
    stages = (ctx.get("experiment") or {}).get("stages")
    counts = {"attempts": len(ctx.get("attempts") or []), "papers": len(ctx.get("papers") or []),
              "experiment stages": len(stages) if isinstance(stages, dict) else 0}
    if not isinstance(stages, dict):
        counts["metrics"] = len((ctx.get("results") or {}).get("metrics") or {})
    sources += [Source(float(v), f"number of {k}", "count") for k, v in counts.items() if v]
    return sources


def _derived(leaves: list[Leaf]) -> list[Source]:
    """Relative changes, ratios and differences between comparable numbers (members of one group)."""
    groups: dict[str, list[tuple[str, float]]] = {}
    for label, v, names in leaves:
        for g in names:
            groups.setdefault(g, []).append((label, v))
    out: list[Source] = []
    for members in groups.values():
        if len(members) < 2 or len(members) > _MAX_GROUP:
            continue
        for (la, a), (lb, b) in itertools.permutations(members, 2):
            if la == lb:
                continue
            if b != 0:
                out.append(Source(abs(a - b) / abs(b) * 100, f"derived: change of {la} vs {lb}", "pct_change"))
                out.append(Source(a / b, f"derived: ratio {la} / {lb}", "ratio"))
            out.append(Source(abs(a - b), f"derived: difference {la} - {lb}", "diff"))
    return out


def prose_mask(latex: str) -> str:
    """The LaTeX with non-prose parts blanked out (same length, so positions stay valid)."""
    return _STRIP.sub(lambda m: re.sub(r"[^\n]", " ", m.group(0)), latex)


def find_numbers(latex: str) -> list[Found]:
    masked = prose_mask(latex)
    found = []
    for m in _NUM.finditer(masked):
        s, e = m.start(), m.end()
        before = masked[s - 1] if s else " "
        before2 = masked[s - 2] if s > 1 else " "
        after = masked[e] if e < len(masked) else " "
        if before.isalpha() or before in "_^.\\" or (before == "-" and before2.isalpha()) or before.isdigit():
            continue
        if after in "_" or (after == "." and e + 1 < len(masked) and masked[e + 1].isdigit()):
            continue
        rest = masked[e:e + 12]
        pct = _PCT.match(rest)
        mult = None if pct else _MULT.match(rest)
        if after.isalpha() and not mult:
            continue  # part of a name: 7B, fp16, 3rd
        text = m.group(0)
        clean = text.replace(",", "").replace("{}", "")
        decimals = len(clean.split(".")[1]) if "." in clean else 0
        found.append(Found(text, s, e, float(clean), decimals, bool(pct), bool(mult)))
    return found


def _matches(f: Found, src: Source) -> bool:
    tol = 0.5 * 10 ** (-f.decimals) + 1e-9 * max(1.0, abs(src.value))
    if src.kind == "year":
        return f.decimals == 0 and not f.percent and abs(src.value - f.value) < 0.5
    if src.kind == "pct_change" and not f.percent:
        return False
    if src.kind == "ratio" and not f.multiplier and not f.percent:
        return False
    if src.kind == "diff" and f.percent:  # percentage points between two fractions, not raw units
        candidates = [abs(src.value) * 100]
    else:
        candidates = [abs(src.value)] + ([abs(src.value) * 100] if f.percent and src.kind == "value" else [])
    return any(abs(c - f.value) <= tol for c in candidates)


def source_of(f: Found, sources: list[Source]) -> str | None:
    """The label of the source a number comes from (plain values first, then derived ones);
    when several plain values match, up to three are named so a reader can check the right one."""
    for kind_order in (("value", "count", "year"), ("pct_change", "ratio", "diff")):
        labels = [src.label for src in sources if src.kind in kind_order and _matches(f, src)]
        if labels:
            unique = list(dict.fromkeys(labels))
            return unique[0] + (f" (also: {'; '.join(unique[1:3])})" if len(unique) > 1 else "")
    if f.decimals == 0 and not f.percent and not f.multiplier and f.value <= SMALL_INT_MAX:
        return "small integer (count or ordinal in the prose)"
    return None


def trace_latex(latex: str, sources: list[Source], section: str) -> list[dict]:
    """Every number in `latex` with its source: [{number, source, status, section, context}]."""
    rows = []
    for f in find_numbers(latex):
        src = source_of(f, sources)
        ctx = " ".join(latex[max(0, f.start - 40): f.end + 30].split())
        rows.append({"number": f.text + ("%" if f.percent else ""), "source": src or "",
                     "status": "ok" if src else "untraced", "section": section, "context": ctx})
    return rows


def redact(latex: str, sources: list[Source]) -> str:
    """Replace every untraced number with \\untraced{} (a visible 'number removed' marker)."""
    out, last = [], 0
    for f in find_numbers(latex):
        if source_of(f, sources) is None:
            out.append(latex[last:f.start])
            out.append("\\untraced{}")
            last = f.end
    out.append(latex[last:])
    return "".join(out)


def sources_for_prompt(sources: list[Source], limit: int = 120) -> list[str]:
    """Plain values (not derived ones) for the writer's prompt."""
    plain = [s for s in sources if s.kind in ("value", "year")]
    first = ("analysis", "seeds", "ablations")  # the final results before the search's intermediate ones
    plain.sort(key=lambda s: next((i for i, k in enumerate(first) if k in s.label), len(first)))
    return [f"{_fmt(s.value)}  <- {s.label}" for s in plain[:limit]]


def _fmt(v: float) -> str:
    return str(int(v)) if float(v).is_integer() and abs(v) < 1e15 else f"{v:.6g}"
