"""The ledger: every value a report's prose may reference by name, and the evidence the claim checks use.

The writer writes `\\val{seeds:h2o:ppl}` (or `\\val[2]{...}`, or a derived `\\val{pct(A, B)}`); code resolves the
name here and renders the number with its unit. Values come only from the results files of the experiment's
valid stage nodes (through `agentlab.report.figures.datasets`, which reads them safely); the plan's numbers
and failed attempts are not values. See docs/integrity.md.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field, replace

from agentlab.experiment import analysis
from agentlab.report.tex_sanitize import tex_escape

VAL_RE = re.compile(r"\\val\s*(?:\[\s*(\d{1,2})\s*\])?\s*\{([^{}]{1,300})\}")
QUOTED_RE = re.compile(r"\\quoted\s*\{([^{}]{1,120})\}\s*\{([^{}]{1,300})\}")
_DERIVED = re.compile(r"^\s*(pct|ratio|diff)\s*\((.*)\)\s*$", re.DOTALL)
_STATS = {"": "mean", "_lo": "lo", "_hi": "hi", "_n": "n", "_std": "std"}
MAX_DECIMALS = 6



class ValueRefError(ValueError):
    """A `\\val` that names nothing (or operands that cannot be compared); the message says what exists."""


@dataclass(frozen=True)
class Value:
    name: str
    value: float | str
    metric: str  # the column's metric ("ppl"); "" for counts and text
    stat: str  # mean | lo | hi | n | std | p | param | count | text | derived
    kind: str  # result | count | env | param | test | stat | derived
    rows: tuple[str, ...] = ()
    methods: tuple[str, ...] = ()
    stage: str = ""
    path: str = ""
    unit: str = ""  # "", "bytes", "x", "%", "tokens/s", "s"
    text: str = ""  # the number as the reader sees it (LaTeX, without the unit)
    op: str = ""  # pct | ratio | diff (derived)
    params: dict = field(default_factory=dict, compare=False, hash=False)

    def latex(self) -> str:
        """What replaces the `\\val`: the number in `\\agentlabnum` (so the check build can blank it) and its unit."""
        unit = {"%": r"\%", "x": r"$\times$", "bytes": "~bytes", "KiB": "~KiB", "MiB": "~MiB", "GiB": "~GiB",
                "tokens/s": "~tokens/s", "s": "~s", "ms": "~ms"}.get(self.unit, f"~{tex_escape(self.unit)}"
                                                                         if self.unit else "")
        return f"\\agentlabnum{{{self.text}}}{unit}"

    def source(self) -> str:
        """Where the value comes from, for the trace."""
        if self.kind == "derived":
            return f"derived: {self.op}({', '.join(self.rows)}) of {self.metric} in {self.path}"
        return f"{self.path}: {'/'.join(self.rows) or self.kind}.{self.metric or self.stat}" if self.path else self.name


def _num(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def fmt_number(v: float, decimals: int | None = None) -> str:
    """4 significant digits (as the tables print), or fixed decimals; tiny/huge values as a LaTeX power of ten."""
    if decimals is not None:
        return f"{v:.{min(decimals, MAX_DECIMALS)}f}"
    if float(v).is_integer() and abs(v) < 1e6:
        return str(int(v))
    s = f"{v:.4g}"
    if "e" in s:
        mant, exp = s.split("e")
        return f"${mant}\\times 10^{{{int(exp)}}}$"
    return s


def _scaled(v: float, unit: str) -> tuple[float, str]:
    if unit == "bytes":
        for factor, name in ((1 << 30, "GiB"), (1 << 20, "MiB"), (1 << 10, "KiB")):
            if abs(v) >= factor:
                return v / factor, name
    return v, unit


class Ledger:
    """Named values; `resolve` answers a `\\val` reference or raises ValueRefError naming what exists."""

    def __init__(self, values: dict[str, Value], aliases: dict[str, str] | None = None):
        self.values, self.aliases = values, dict(aliases or {})
        self.paper_text: dict[str, list[tuple[int, str]]] = {}  # bib key -> chunks, to name a quote's chunk

    @classmethod
    def from_values(cls, values: list[Value]) -> Ledger:
        return cls({v.name: v for v in values})

    def __len__(self) -> int:
        return len(self.values)

    def resolve(self, ref: str, decimals: int | None = None) -> Value:
        ref = " ".join(str(ref).split())
        m = _DERIVED.match(ref)
        v = self._derived(m.group(1), m.group(2)) if m else self._plain(ref)
        if decimals is not None and _num(v.value) and v.kind != "derived":
            shown, _ = _scaled(float(v.value), v.unit)
            v = replace(v, text=fmt_number(shown, decimals))
        elif decimals is not None and v.kind == "derived":
            v = replace(v, text=fmt_number(float(v.value), decimals))
        return v

    def _plain(self, ref: str) -> Value:
        name = self.aliases.get(ref, ref)
        if name in self.values:
            return self.values[name]
        parts = ref.split(":")
        prefix = parts[0]
        known = sorted({n.split(":")[0] for n in self.values})
        if prefix not in known:
            raise ValueRefError(f"\\val{{{ref}}}: no value set '{prefix}' (have: {', '.join(known) or 'none'})")
        if len(parts) >= 3:
            names = [*self.values, *self.aliases]
            rows = sorted({n.split(":")[1] for n in names if n.startswith(prefix + ":")})
            row = ":".join(parts[1:-1])
            same_row = [n for n in names if n.startswith(f"{prefix}:{row}:")]
            if same_row:
                cols = sorted(n.rsplit(":", 1)[1] for n in same_row)
                raise ValueRefError(f"\\val{{{ref}}}: row '{row}' has no column '{parts[-1]}' "
                                    f"(columns: {', '.join(cols[:16])})")
            raise ValueRefError(f"\\val{{{ref}}}: '{prefix}' has no row '{row}' (rows: {', '.join(rows[:16])})")
        names = sorted(n for n in self.values if n.startswith(prefix + ":"))
        raise ValueRefError(f"\\val{{{ref}}}: unknown name (in '{prefix}': {', '.join(names[:16])})")

    def _derived(self, op: str, args: str) -> Value:
        parts = _split_top(args)
        if len(parts) != 2:
            raise ValueRefError(f"\\val{{{op}(...)}} takes two value names: {op}(A, B)")
        a, b = (self._plain(p.strip()) for p in parts)
        why = comparable(a, b)
        if why:
            raise ValueRefError(f"\\val{{{op}({a.name}, {b.name})}}: {why}")
        x, y = float(a.value), float(b.value)
        if op in ("pct", "ratio") and y == 0:
            raise ValueRefError(f"\\val{{{op}({a.name}, {b.name})}}: {b.name} is 0")
        val, unit, dec = {"pct": ((x - y) / abs(y) * 100, "%", 1), "ratio": (x / y, "x", 2),
                          "diff": (x - y, a.unit, None)}[op]
        shown, unit = _scaled(val, unit) if op == "diff" else (val, unit)
        return Value(f"{op}({a.name}, {b.name})", val, a.metric, "derived", "derived", a.rows + b.rows,
                     a.methods + b.methods, a.stage, a.path, unit, fmt_number(shown, dec), op)

    def listing(self, limit: int = 120) -> list[str]:
        """`name = text unit  (what it is)` lines for the writer's prompt: the final results first (under their
        short method-name aliases), then the earlier stages' means."""
        order = ("seeds:", "cmp:", "count:", "stat:", "env:", "ablations:", "sweep:", "implement:", "baselines:")
        short = {full: alias for alias, full in sorted(self.aliases.items(), reverse=True)}
        names = [n for n in self.values
                 if n.startswith(("seeds:", "cmp:", "count:", "stat:", "env:", "metrics:"))
                 or self.values[n].stat in ("mean", "param")]
        names.sort(key=lambda n: next((i for i, p in enumerate(order) if n.startswith(p)), len(order)))
        out = []
        for n in names[:limit]:
            v = self.values[n]
            what = {"mean": "mean", "lo": "95% CI low", "hi": "95% CI high", "n": "per-seed values", "std": "std",
                    "p": "p-value of the paired test", "param": "parameter"}.get(v.stat, v.kind)
            out.append(f"{short.get(n, n)} = {v.text}{(' ' + v.unit) if v.unit else ''}  "
                       f"({v.metric + ' ' if v.metric else ''}{what})")
        return out


def _split_top(s: str) -> list[str]:
    """Split at commas outside [] and () (cell ids hold both)."""
    parts, depth, cur = [], 0, ""
    for ch in s:
        depth += 1 if ch in "[(" else -1 if ch in "])" else 0
        if ch == "," and depth == 0:
            parts.append(cur)
            cur = ""
        else:
            cur += ch
    return [*parts, cur]


def comparable(a: Value, b: Value) -> str:
    """Why two values may not be compared ("" when they may): same metric, statistic and results file, measured."""
    if a.kind != "result" or b.kind != "result":
        return "only measured results can be compared (not counts, parameters, tests or derived values)"
    if a.metric != b.metric:
        return f"{a.name} is {a.metric} and {b.name} is {b.metric}: compare values of the same metric"
    if a.stat != b.stat:
        return f"{a.name} is a {a.stat} and {b.name} a {b.stat}: compare the same statistic"
    if a.path != b.path:
        return f"{a.name} and {b.name} come from different results files ({a.path}, {b.path})"
    shared = [k for k in a.params if k in b.params and a.params[k] != b.params[k]]
    if shared:
        return f"the rows differ in {', '.join(shared)}: compare rows at the same setting"
    if a.rows == b.rows:
        return "A and B are the same value"
    return ""


def find_vals(latex: str) -> list[tuple[int, int, str, int | None]]:
    return [(m.start(), m.end(), m.group(2), int(m.group(1)) if m.group(1) else None) for m in VAL_RE.finditer(latex)]


def find_quoted(latex: str) -> list[tuple[int, int, str, str]]:
    return [(m.start(), m.end(), m.group(1).strip(), m.group(2)) for m in QUOTED_RE.finditer(latex)]


def render(latex: str, ledger: Ledger, section: str) -> tuple[str, list[dict]]:
    """Replace every `\\val` with its rendered value and every `\\quoted` with its text; (LaTeX, trace rows).
    A reference that does not resolve becomes `\\untraced{}` (the checks send such sections back first)."""
    rows: list[dict] = []

    def one(m: re.Match) -> str:
        ctx = " ".join(latex[max(0, m.start() - 40): m.end() + 30].split())
        try:
            v = ledger.resolve(m.group(2), int(m.group(1)) if m.group(1) else None)
        except ValueRefError as exc:
            rows.append({"number": m.group(0), "source": "", "status": "untraced", "section": section,
                         "context": ctx, "reason": str(exc)})
            return "\\untraced{}"
        rows.append({"number": v.text + (v.unit if v.unit in ("%", "x") else ""), "source": v.source(),
                     "status": "ok", "section": section, "context": ctx, "ref": " ".join(m.group(2).split()),
                     "name": v.name})
        return v.latex()

    out = VAL_RE.sub(one, latex)

    def quoted(m: re.Match) -> str:
        from agentlab.report.claim_words import normalise_quote

        key, want = m.group(1).strip(), normalise_quote(m.group(2))
        chunk = next((i for i, t in getattr(ledger, "paper_text", {}).get(key, []) if want and want in
                      normalise_quote(t)), None)
        if chunk is None:  # not in the paper's fetched text: its digits never print (the checks send it back first)
            rows.append({"number": m.group(2), "source": "", "status": "untraced", "section": section,
                         "context": " ".join(m.group(0).split())[:120], "reason": f"not verbatim in paper {key}"})
            return "\\untraced{}"
        rows.append({"number": m.group(2), "source": f"paper {key}, chunk {chunk} (verbatim)", "status": "ok",
                     "section": section, "context": " ".join(m.group(0).split())[:120], "ref": "quoted"})
        return f"\\agentlabnum{{{tex_escape(m.group(2))}}}"

    return QUOTED_RE.sub(quoted, out), rows


# ---- building the ledger from a run -------------------------------------------------------------------------
def build_ledger(ctx: dict, data: dict) -> Ledger:
    """Every value of the shown datasets (`figures.datasets(ctx)`), the paired tests, counts and the environment."""
    values: dict[str, Value] = {}
    aliases: dict[str, str] = {}
    for name, ds in data.items():
        if name.startswith("stage."):
            _stage_values(ds, values, aliases)
    cmp = data.get("analysis.comparisons")
    if cmp:
        _test_values(cmp, data.get("stage.seeds") or {}, values)
    if "metrics" in data:  # a run saved before the staged experiment
        for r in data["metrics"]["rows"]:
            if _num(r.get("value")):
                values[f"metrics:{r['metric']}"] = Value(f"metrics:{r['metric']}", float(r["value"]), r["metric"],
                                                         "mean", "result", ("best",), ("proposed",), "legacy",
                                                         data["metrics"]["path"], "", fmt_number(float(r["value"])))
    _count_values(ctx, data, values)
    return Ledger(values, aliases)


def _stage_values(ds: dict, values: dict, aliases: dict) -> None:
    res, path, stage = ds.get("results") or {}, ds["path"], ds["stage"]
    metrics = res.get("metrics") if isinstance(res.get("metrics"), dict) else {}
    cells = {c["id"]: c for c in analysis.cells(res)}
    rows_of: dict[str, list[str]] = {}
    for r in ds["rows"]:
        cid = str(r.get("_key", ""))[6:-1]
        cell = cells.get(cid, {})
        method = "proposed" if analysis.is_proposed(cell or {"id": cid}) else str(r.get("method") or "")
        params = r.get("_params") if isinstance(r.get("_params"), dict) else {}
        for m in metrics:
            unit = str((metrics.get(m) or {}).get("unit") or "") if isinstance(metrics.get(m), dict) else ""
            raw = analysis.value(cell, m) if cell else None
            for suffix, stat in _STATS.items():
                v = raw.get("std") if (suffix == "_std" and raw) else r.get(f"{m}{suffix}")
                if not _num(v):
                    continue
                u = "" if stat == "n" else unit
                shown, u = _scaled(float(v), u)
                values[f"{stage}:{cid}:{m}{suffix}"] = Value(
                    f"{stage}:{cid}:{m}{suffix}", float(v), m, stat, "result" if stat != "n" else "count", (cid,),
                    (method,), stage, path, u, fmt_number(shown), params=params)
        for k, v in params.items():
            if _num(v):
                values[f"{stage}:{cid}:param.{k}"] = Value(f"{stage}:{cid}:param.{k}", float(v), "", "param", "param",
                                                           (cid,), (method,), stage, path, "", fmt_number(float(v)))
        rows_of.setdefault(method, []).append(cid)
    for method, cids in rows_of.items():  # a method name stands for its row when the stage has one row of it
        if method and len(cids) == 1 and method != cids[0]:
            for n in [n for n in values if n.startswith(f"{stage}:{cids[0]}:")]:
                aliases[f"{stage}:{method}:{n.rsplit(':', 1)[1]}"] = n


def _test_values(cmp: dict, seeds: dict, values: dict) -> None:
    res = seeds.get("results") or {}
    primary = str(res.get("primary") or "")
    unit = str(((res.get("metrics") or {}).get(primary) or {}).get("unit") or "") if primary else ""
    for r in cmp["rows"]:
        base = str(r.get("baseline"))
        for col, stat in (("diff", "mean"), ("diff_lo", "lo"), ("diff_hi", "hi"), ("p", "p"),
                          ("proposed", "mean"), ("baseline_mean", "mean")):
            v = r.get(col)
            if not _num(v):
                continue
            kind = "test" if col == "p" else "result"
            text = fmt_number(float(v)) if col != "p" else _fmt_p(float(v))
            values[f"cmp:{base}:{col}"] = Value(f"cmp:{base}:{col}", float(v), primary if col != "p" else "p", stat,
                                                kind, (base,), ("proposed", base), "seeds", cmp["path"],
                                                "" if col == "p" else unit, text)


def _fmt_p(p: float) -> str:
    return fmt_number(p) if p >= 1e-4 else fmt_number(float(f"{p:.2g}"))


def _count_values(ctx: dict, data: dict, values: dict) -> None:
    seeds = (data.get("stage.seeds") or {}).get("results") or {}
    spec = seeds.get("spec") if isinstance(seeds.get("spec"), dict) else {}
    an = ctx.get("analysis") if isinstance(ctx.get("analysis"), dict) else {}
    path = (data.get("stage.seeds") or {}).get("path", "")
    n_seeds = an.get("n_seeds") if _num(an.get("n_seeds")) else (len(spec.get("seeds") or []) or None)
    rows = (data.get("stage.seeds") or {}).get("rows") or []
    counts = {"seeds": n_seeds, "items": spec.get("items"),
              "baselines": sum(1 for r in rows if r.get("_role") in ("baseline", "reference")) or None,
              "papers": len(ctx.get("papers") or []) or None,
              "stages": sum(1 for n in data if n.startswith("stage.")) or None}
    for k, v in spec.items():  # the protocol's numbers (context tokens, items, ...): parameters of the question
        if _num(v) and k not in ("seeds",):
            values[f"spec:{k}"] = Value(f"spec:{k}", float(v), "", "param", "param", stage="seeds", path=path,
                                        text=fmt_number(float(v)))
    for k, v in counts.items():
        if _num(v):
            values[f"count:{k}"] = Value(f"count:{k}", float(v), "", "count", "count", stage="seeds", path=path,
                                         text=fmt_number(float(v)))
    if data:
        alpha = float(an.get("alpha")) if _num(an.get("alpha")) else 0.05
        values["stat:confidence"] = Value("stat:confidence", 95.0, "", "stat", "stat", text="95", unit="%")
        values["stat:alpha"] = Value("stat:alpha", alpha, "", "stat", "stat", text=fmt_number(alpha))
    env = next((ds["results"].get("env") for n in ("stage.seeds", *sorted(data, reverse=True))
                if isinstance((ds := data.get(n) or {}).get("results"), dict)
                and isinstance(ds["results"].get("env"), dict)), None) or {}
    for k in ("device", "device_name", "model", "dtype", "threads"):
        v = env.get(k)
        if isinstance(v, (str, int)) and not isinstance(v, bool) and str(v).strip():
            values[f"env:{k}"] = Value(f"env:{k}", str(v)[:80], "", "text", "env", path=path,
                                       text=tex_escape(str(v)[:80]))
