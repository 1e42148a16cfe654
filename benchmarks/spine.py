"""Spine benchmark: prompt tokens per phase for a scripted full run, and checkpoint overhead per step.

Runs the whole graph in-process against the scripted OpenAI-compatible server and the fake arXiv
(both on 127.0.0.1), once with 5 papers and once with 20, and prints:
  - prompt tokens per phase and in total, and the largest single prompt per phase: the largest prompt
    must stay (nearly) flat from 5 to 20 papers — no phase resends whole histories;
  - checkpoint overhead: time spent in the SQLite checkpointer's put/put_writes per graph step (ms),
    as a share of the run's wall time.
Usage: python benchmarks/spine.py [--papers 5 20] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from rich.console import Console  # noqa: E402
from rich.table import Table  # noqa: E402

from tests.fakes.arxiv_server import FakeArxiv  # noqa: E402
from tests.fakes.openai_server import ScriptedLLM  # noqa: E402
from tests.fakes.scripts import full_run  # noqa: E402

PHASES = ("literature_review", "plan", "experiment", "interpret", "write_report", "review")


def one_run(n_papers: int, workdir: Path) -> dict:
    from langgraph.checkpoint.sqlite import SqliteSaver

    from agentlab.config import load_settings
    from agentlab.runner import drive
    from agentlab.runs import RunDir

    timings: list[float] = []
    orig_put, orig_writes = SqliteSaver.put, SqliteSaver.put_writes

    def timed(fn):
        def wrapper(self, *a, **kw):
            t0 = time.perf_counter()
            try:
                return fn(self, *a, **kw)
            finally:
                timings.append(time.perf_counter() - t0)
        return wrapper

    SqliteSaver.put, SqliteSaver.put_writes = timed(orig_put), timed(orig_writes)
    try:
        with ScriptedLLM() as srv, FakeArxiv() as fa:
            full_run(srv)
            env = {"OPENAI_BASE_URL": srv.base_url, "OPENAI_API_KEY": "x", "AGENTLAB_ARXIV_URL": fa.url,
                   "AGENTLAB_ARXIV_DELAY": "0", "AGENTLAB_CACHE_DIR": str(workdir / "cache")}
            settings = load_settings(None, {"model": "scripted-model", "max_papers": n_papers, "checkpoints": "none",
                                            "runs_dir": str(workdir / "runs")}, env=env)
            os.environ.update(env)
            run = RunDir.create(Path(settings.runs_dir), "benchmark")
            settings.save(run.settings_path)
            t0 = time.perf_counter()
            out = drive(run, settings, {"idea": "Does sink+window KV eviction keep perplexity within 5% at 4x?"},
                        Console(file=open(os.devnull, "w")), live=False)
            wall = time.perf_counter() - t0
    finally:
        SqliteSaver.put, SqliteSaver.put_writes = orig_put, orig_writes
    rows = run.ledger.entries()
    per_phase = {p: sum(r["prompt_tokens"] for r in rows if r["phase"] == p) for p in PHASES}
    max_prompt = {p: max([r["prompt_tokens"] for r in rows if r["phase"] == p] or [0]) for p in PHASES}
    steps = sum(1 for _ in (run.path / "logs" / "run.log").read_text().splitlines() if " done" in _) or 1
    return {"papers": n_papers, "status": out.status, "wall_s": round(wall, 3), "calls": len(rows),
            "prompt_tokens": per_phase, "total_prompt_tokens": sum(per_phase.values()), "max_prompt": max_prompt,
            "checkpoint_ms_total": round(1000 * sum(timings), 2), "checkpoint_writes": len(timings),
            "checkpoint_ms_per_step": round(1000 * sum(timings) / steps, 2),
            "checkpoint_share": round(sum(timings) / wall, 4)}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--papers", type=int, nargs="+", default=[5, 20])
    ap.add_argument("--json", type=Path, default=ROOT / "benchmarks" / "results" / "spine.json")
    args = ap.parse_args()
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        for n in args.papers:
            results.append(one_run(n, Path(tmp) / f"p{n}"))
    con = Console()
    t = Table(title="prompt tokens per phase (scripted full run)")
    t.add_column("phase")
    for r in results:
        t.add_column(f"{r['papers']} papers: total")
        t.add_column(f"{r['papers']} papers: largest call")
    for p in PHASES:
        t.add_row(p, *[x for r in results for x in (str(r["prompt_tokens"][p]), str(r["max_prompt"][p]))])
    t.add_row("total", *[x for r in results for x in (str(r["total_prompt_tokens"]), "")])
    con.print(t)
    base = results[0]
    for r in results[1:]:
        worst = max(PHASES, key=lambda p: r["max_prompt"][p] / max(1, base["max_prompt"][p]))
        con.print(f"largest single prompt, {r['papers']} vs {base['papers']} papers: "
                  f"x{r['max_prompt'][worst] / max(1, base['max_prompt'][worst]):.2f} (worst phase: {worst}); "
                  f"papers x{r['papers'] / base['papers']:.1f}")
    for r in results:
        con.print(f"{r['papers']} papers: {r['status']}, {r['calls']} LLM calls, wall {r['wall_s']} s; checkpoint "
                  f"writes {r['checkpoint_writes']}, {r['checkpoint_ms_per_step']} ms per step, "
                  f"{100 * r['checkpoint_share']:.2f}% of wall time")
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
