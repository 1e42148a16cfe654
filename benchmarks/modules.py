"""Benchmark of agentlab.modules on SmolLM2-135M: dense vs. every method, with in-run references.

    python benchmarks/modules.py            # CPU, 1 thread, about 5-10 minutes
    python benchmarks/modules.py --quick    # shorter texts, fewer tokens

Writes benchmarks/results/modules.json and modules.md and prints the Markdown table.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="shorter texts and generations")
    ap.add_argument("--device", default="cpu", help="cpu (default), cuda, or auto")
    ap.add_argument("--threads", type=int, default=1, help="torch CPU threads (default 1)")
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results"), help="output folder")
    args = ap.parse_args(argv)

    from agentlab.modules import benchmark

    result = benchmark.run(quick=args.quick, device=args.device, threads=args.threads,
                           log=lambda s: print(s, file=sys.stderr, flush=True))
    stem = "modules_quick" if args.quick else "modules"
    json_path, md_path = benchmark.write(result, Path(args.out), stem)
    print(benchmark.to_markdown(result))
    print(f"wrote {json_path} and {md_path}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
