"""Throughput of `agentlab batch`: runs/minute at parallel 1, 2, 4, 8, and orchestration overhead per run.

Every run is a whole research run (literature → plan → experiment → interpret → report → review, no
human checkpoints) against the scripted LLM and fake arXiv on 127.0.0.1, with a trivial experiment
(the scripted sink+window attention program, ~50 ms). So nearly all time per run is AgentLab itself:
graph steps, checkpoints, git commits, paper parsing, report building. Per run we split the wall time:

    llm       sum of LLM call latencies (scripted server: near zero)
    sandbox   sum of experiment job wall times
    agentlab  wall - llm - sandbox: orchestration inside the run (graph, checkpoints, git, report)
    batch     wall - time inside runner.drive: the batch layer (leases, run lookup/creation, scheduling)

    .venv/bin/python benchmarks/batch.py [--runs 8] [--parallel 1,2,4,8] [--isolation thread,process] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.fakes.arxiv_server import FakeArxiv  # noqa: E402
from tests.fakes.openai_server import ScriptedLLM  # noqa: E402
from tests.fakes.scripts import full_run  # noqa: E402


def _env(srv: ScriptedLLM, arxiv: FakeArxiv, tmp: Path) -> None:
    os.environ.update({
        "OPENAI_BASE_URL": srv.base_url, "OPENAI_API_KEY": "sk-bench-not-secret", "AGENTLAB_MODEL": "scripted-model",
        "AGENTLAB_ARXIV_URL": arxiv.url, "AGENTLAB_ARXIV_DELAY": "0", "AGENTLAB_BACKOFF_BASE": "0.01",
        "AGENTLAB_CACHE_DIR": str(tmp / "cache"), "LANGGRAPH_STRICT_MSGPACK": "true", "HF_HUB_OFFLINE": "1",
        "TOKENIZERS_PARALLELISM": "false"})
    for var in ("AGENTLAB_CONFIG", "AGENTLAB_CHECKPOINTER_URL"):
        os.environ.pop(var, None)


def _level(n_runs: int, parallel: int, sandbox: str, tmp: Path, isolation: str) -> dict:
    from agentlab.batch.lease import FileLeases
    from agentlab.batch.scheduler import Batch
    from agentlab.batch.workflow import load_workflows
    from agentlab.config import load_settings
    from agentlab.runs import RunDir

    wf_dir, runs_dir = tmp / f"wf-{isolation}-p{parallel}", tmp / f"runs-{isolation}-p{parallel}"
    wf_dir.mkdir()
    for i in range(n_runs):
        (wf_dir / f"w{i}.yaml").write_text(
            f'idea: "Does sink plus window KV eviction keep the error low at {i + 2}x compression?"\n'
            f"checkpoints: none\nsandbox: {{backend: {sandbox}, memory_mb: 1024, timeout_s: 120}}\n"
            "literature: {max_papers: 2}\n")
    wfs = load_workflows(wf_dir)
    b = Batch(wfs, runs_dir, parallel, FileLeases(runs_dir / ".batch" / "leases", ttl=60),
              lambda w: load_settings(None, {**w.to_overrides(), "runs_dir": str(runs_dir)}), isolation=isolation)
    t0 = time.perf_counter()
    slots = b.run()
    wall = time.perf_counter() - t0
    per = []
    for s in slots:
        run = RunDir(s.run_path)
        llm = sum(e["latency_s"] for e in run.ledger.entries())
        sb = sum(json.loads(p.read_text())["wall_seconds"] for p in run.repo_dir.glob("experiments/*/.job/result.json"))
        w = s.ended - s.started
        per.append({"state": s.state, "wall": w, "drive": s.drive_seconds, "llm": llm, "sandbox": sb})
    ok = sum(1 for p in per if p["state"] == "done")
    for s in slots:
        if s.state != "done":
            print(f"  run {s.run_id} ended {s.state}: {s.note}", file=sys.stderr)
    mean = lambda k: statistics.fmean(p[k] for p in per)  # noqa: E731
    return {"isolation": isolation, "parallel": parallel, "runs": n_runs, "done": ok, "batch_wall_s": round(wall, 2),
            "runs_per_min": round(60 * ok / wall, 2), "run_wall_s": round(mean("wall"), 3),
            "llm_s": round(mean("llm"), 3), "sandbox_s": round(mean("sandbox"), 3),
            "agentlab_s": round(mean("wall") - mean("llm") - mean("sandbox"), 3),
            "batch_overhead_s": round(mean("wall") - mean("drive"), 3)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--runs", type=int, default=8, help="runs per parallelism level")
    ap.add_argument("--parallel", default="1,2,4,8")
    ap.add_argument("--sandbox", default="unsafe-local", help="unsafe-local runs only the scripted, known program")
    ap.add_argument("--isolation", default="thread,process", help="thread, process, or both (comma list)")
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args()
    rows = []
    with ScriptedLLM() as srv, FakeArxiv() as arxiv, tempfile.TemporaryDirectory(prefix="agentlab-bench-") as d:
        full_run(srv)
        tmp = Path(d)
        _env(srv, arxiv, tmp)
        import warnings

        warnings.filterwarnings("ignore", category=RuntimeWarning)  # unsafe-local's per-job warning
        for iso in args.isolation.split(","):
            for p in (int(x) for x in args.parallel.split(",")):
                rows.append(_level(args.runs, p, args.sandbox, tmp, iso))
                print(json.dumps(rows[-1]), flush=True)
    print(f"\nagentlab batch throughput ({args.runs} full scripted runs per level, {os.cpu_count()} CPUs, "
          f"sandbox {args.sandbox})")
    print(f"{'isolation':>9} {'parallel':>8} {'runs/min':>9} {'speedup':>8} {'run wall s':>10} {'agentlab s':>10} "
          f"{'llm s':>7} {'sandbox s':>9} {'batch s':>8}")
    for r in rows:
        base = next(x for x in rows if x["isolation"] == r["isolation"])["runs_per_min"] or 1.0
        print(f"{r['isolation']:>9} {r['parallel']:>8} {r['runs_per_min']:>9.2f} {r['runs_per_min'] / base:>8.2f} "
              f"{r['run_wall_s']:>10.2f} {r['agentlab_s']:>10.2f} {r['llm_s']:>7.2f} {r['sandbox_s']:>9.2f} {r['batch_overhead_s']:>8.3f}")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
