"""Tables (booktabs) and figures (matplotlib, Agg) built by code from the results files.

The model only chooses *what* to show (a dataset, columns, a caption); every number in a table or a
figure is read from the data here, so none of them can be made up.
"""

from __future__ import annotations

import math
from pathlib import Path

from agentlab.report.latex import render, tex_escape
from agentlab.report.schemas import FigureSpec, TableSpec

Dataset = dict  # {"rows": [dict], "path": str}


def _num(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def fmt_value(v) -> str:
    """A number as LaTeX, 4 significant digits; anything else escaped."""
    if not _num(v):
        return tex_escape(v if v is not None else "--")
    if isinstance(v, int) or float(v).is_integer() and abs(v) < 1e6:
        return str(int(v))
    s = f"{v:.4g}"
    if "e" in s:
        mant, exp = s.split("e")
        return f"${mant}\\times 10^{{{int(exp)}}}$"
    return s


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


def datasets(ctx: dict) -> dict[str, Dataset]:
    """Every tabular view of the run's results the writer may show."""
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


def describe(data: dict[str, Dataset], max_rows: int = 12) -> list[dict]:
    """A compact view of the datasets for the prompt."""
    return [{"name": n, "columns": _columns(d["rows"]), "n_rows": len(d["rows"]),
             "rows": [{k: v for k, v in r.items() if not str(k).startswith("_")} for r in d["rows"][:max_rows]]}
            for n, d in data.items()]


def _columns(rows: list[dict]) -> list[str]:
    """Column names in first-seen order ("_"-prefixed keys are bookkeeping, not data)."""
    cols: list[str] = []
    for r in rows:
        cols += [c for c in r if c not in cols and not str(c).startswith("_")]
    return cols


def build_table(spec: TableSpec, data: dict[str, Dataset], n: int) -> tuple[str, list[dict]] | str:
    """(LaTeX of the table, trace rows of its numbers), or a problem message."""
    ds = data.get(spec.source)
    if ds is None:
        return f"table {n} dropped: no dataset {spec.source!r} (have: {', '.join(data)})"
    allc = _columns(ds["rows"])
    cols = [c for c in spec.columns if c in allc] or allc
    cols = cols[:8]
    trace, body = [], []
    for i, r in enumerate(ds["rows"][:30]):
        cells = []
        for c in cols:
            v = r.get(c)
            cells.append(fmt_value(v))
            if _num(v) and not isinstance(v, bool):
                where = f"{ds['path']}: {spec.source} row {i + 1}, {c}"
                if "_path" in r:
                    where = "attempt number" if c == "attempt" else f"{r['_path']}: metrics.{c}"
                trace.append({"number": fmt_value(v), "source": where,
                              "status": "ok", "section": f"table {n}", "context": "generated from the data"})
        body.append(cells)
    align = "".join("r" if all(_num(r.get(c)) or r.get(c) is None for r in ds["rows"]) else "l" for c in cols)
    caption = tex_escape(spec.caption or f"{spec.source} (from {ds['path']})")
    tex = render("partials/table.tex.j2", caption=caption, label=f"tab:t{n}", align=align,
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
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 3))
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
    fig.tight_layout()
    out_dir.mkdir(parents=True, exist_ok=True)
    fig.savefig(out_dir / f"fig-{n}.pdf")
    plt.close(fig)
    caption = tex_escape(spec.caption or f"{', '.join(ys)} by {spec.x} ({spec.source})")
    return render("partials/figure.tex.j2", path=f"figures/fig-{n}.pdf", caption=caption, label=f"fig:f{n}")
