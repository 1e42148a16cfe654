"""Sandbox overhead: cold-start latency and per-run overhead of each isolated backend vs plain subprocess.

    .venv/bin/python benchmarks/sandbox.py [--runs 5] [--backends bwrap,docker] [--torch]

"cold" is the first job in a fresh backend object (including `check()`, i.e. what an orchestrator pays once);
"warm" is the median of the following runs. Every number is also printed as a ratio to plain `subprocess.run`
of the same script, and the absolute overhead in ms (backend minus plain), since ratios depend on the script.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from agentlab.sandbox.base import AUTO_BACKENDS, SANDBOX_BACKENDS, Job, Limits, backend_names  # noqa: E402

SCRIPTS = {
    "trivial": "import json\njson.dump({'ok': 1}, open('results.json', 'w'))\n",
    "torch": "import json, torch\njson.dump({'ok': float(torch.ones(2).sum())}, open('results.json', 'w'))\n",
}


def _workdir(root: Path, script: str) -> Path:
    d = root / uuid.uuid4().hex[:10]
    d.mkdir()
    (d / "main.py").write_text(script)
    return d


def plain(root: Path, script: str) -> float:
    d = _workdir(root, script)
    t = time.perf_counter()
    subprocess.run([sys.executable, "main.py"], cwd=d, check=True, env={"PATH": "/usr/bin:/bin"})
    return time.perf_counter() - t


def sandboxed(name: str, root: Path, script: str, runs: int) -> tuple[float, list[float]]:
    cls = SANDBOX_BACKENDS.get(name)
    if hasattr(cls, "_checked"):
        cls._checked = None  # measure the real check() in the cold start
    t = time.perf_counter()
    ok, why = cls.check()
    if not ok:
        raise RuntimeError(why)
    backend = cls()
    times = []
    for i in range(runs + 1):
        d = _workdir(root, script)
        job = Job(id=f"bench-{name}-{uuid.uuid4().hex[:8]}", workdir=str(d), command=["python", "main.py"],
                  limits=Limits(wall_seconds=300, memory_mb=2048))  # fmt: skip
        t0 = time.perf_counter() if i else t
        res = backend.run(job)
        if not res.ok:
            raise RuntimeError(f"{name}: {res}")
        times.append(time.perf_counter() - t0)
    return times[0], times[1:]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--backends", default=",".join(AUTO_BACKENDS),
                    help=f"comma-separated, of: {', '.join(backend_names())} (default: %(default)s)")
    ap.add_argument("--torch", action="store_true", help="also time a job that imports torch")
    args = ap.parse_args()
    scripts = ["trivial"] + (["torch"] if args.torch else [])
    with tempfile.TemporaryDirectory(prefix="agentlab-bench-") as tmp:
        root = Path(tmp)
        for sname in scripts:
            script = SCRIPTS[sname]
            base_runs = [plain(root, script) for _ in range(args.runs + 1)]
            base_cold, base = base_runs[0], statistics.median(base_runs[1:])
            print(f"\n== script: {sname}  (plain subprocess: cold {base_cold * 1e3:.0f} ms, warm median {base * 1e3:.0f} ms)")
            print(f"{'backend':<10} {'cold ms':>9} {'cold x':>8} {'warm ms':>9} {'warm x':>8} {'overhead ms':>12}")
            for name in args.backends.split(","):
                try:
                    cold, warm = sandboxed(name, root, script, args.runs)
                except Exception as exc:  # noqa: BLE001 - report and go on with the next backend
                    print(f"{name:<10} unavailable: {str(exc)[:150]}")
                    continue
                w = statistics.median(warm)
                print(f"{name:<10} {cold * 1e3:9.0f} {cold / base_cold:8.1f} {w * 1e3:9.0f} {w / base:8.1f} "
                      f"{(w - base) * 1e3:12.0f}")  # fmt: skip


if __name__ == "__main__":
    main()
