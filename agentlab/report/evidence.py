"""The evidence the claim checks hold a report's prose against: what the run's results support.

Seed count, the devices and models the results files recorded, the methods with a results row, the paired tests
that ran, the run's bib keys and each paper's fetched text (the run's paper store, bounded). See docs/integrity.md.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass, field
from pathlib import Path

from agentlab.report.values import Ledger

MAX_CHUNKS = 400  # per paper, read from the run's store


# ---- evidence for the claim checks --------------------------------------------------------------------------
@dataclass
class Evidence:
    ledger: Ledger
    n_seeds: int = 0
    devices: list[str] = field(default_factory=list)
    models: list[str] = field(default_factory=list)
    methods: set[str] = field(default_factory=set)
    tests: dict[str, float] = field(default_factory=dict)
    alpha: float = 0.05
    keys: set[str] = field(default_factory=set)
    paper_text: dict[str, list[tuple[int, str]]] = field(default_factory=dict)
    known_methods: set[str] = field(default_factory=set)


def evidence(ctx: dict, data: dict, ledger: Ledger, keys: set[str]) -> Evidence:
    """What the results support: seed count, recorded devices and models, methods with rows, tests that ran."""
    vals = ledger.values
    devices, models = set(), set()
    for ds in data.values():
        res = ds.get("results") if isinstance(ds.get("results"), dict) else {}
        env = res.get("env") if isinstance(res.get("env"), dict) else {}
        devices |= {str(env[k]).lower() for k in ("device", "device_name") if env.get(k)}
        spec = res.get("spec") if isinstance(res.get("spec"), dict) else {}
        models |= {str(x).lower() for x in (env.get("model"), spec.get("model")) if x}
    methods = {m.lower() for v in vals.values() for m in v.methods if m and v.kind in ("result", "count")}
    tests = {}
    for v in [v for v in vals.values() if v.kind == "test"]:  # by the baseline's id and by its method name
        tests[v.rows[0]] = tests[v.methods[-1]] = float(v.value)
    n = vals.get("count:seeds")
    alpha = vals.get("stat:alpha")
    return Evidence(ledger, int(n.value) if n else 0, sorted(devices), sorted(models), methods, tests,
                    float(alpha.value) if alpha else 0.05, set(keys), paper_texts(ctx, keys), known_methods())


def known_methods() -> set[str]:
    """Names of the toolkit's registered methods (no import of the methods themselves)."""
    out: set[str] = set()
    try:
        from agentlab.modules.family_methods import ATTENTION_METHODS, DRAFT_METHODS, PRUNE_METHODS
        from agentlab.modules.methods import KV_METHODS
        for reg in (KV_METHODS, PRUNE_METHODS, ATTENTION_METHODS, DRAFT_METHODS):
            out |= {n.lower() for n in reg.names()}
    except Exception:  # noqa: BLE001 - a broken plugin must not stop the report
        pass
    return out


def paper_texts(ctx: dict, keys: set[str]) -> dict[str, list[tuple[int, str]]]:
    """The fetched text of each paper of the run, by bib key, as stored chunks (bounded); `ctx["paper_text"]` wins."""
    if isinstance(ctx.get("paper_text"), dict):
        return {k: [(int(i), str(t)) for i, t in v][:MAX_CHUNKS] for k, v in ctx["paper_text"].items()}
    db = Path(str(ctx.get("run_path") or "")) / "papers.sqlite"
    if not ctx.get("run_path") or not db.is_file() or db.is_symlink():
        return {}
    ids = {p.get("id"): p.get("bibkey") or p.get("id") for p in ctx.get("papers") or [] if isinstance(p, dict)}
    out: dict[str, list[tuple[int, str]]] = {}
    try:
        con = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
        try:
            for pid, key in ids.items():
                rows = con.execute("SELECT chunk_id, text FROM chunks WHERE paper_id=? ORDER BY chunk_id LIMIT ?",
                                   (pid, MAX_CHUNKS)).fetchall()
                if rows and key in keys:
                    out[key] = [(int(i), str(t)) for i, t in rows]
        finally:
            con.close()
    except sqlite3.Error:
        return {}
    return out
