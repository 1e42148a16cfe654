"""``python -m agentlab.modules.harness SPEC.json [--plugin FILE]... [--out results.json]``.

Exit codes: 0 results written (some cells may have failed: see their ``status``), 2 the spec or a plugin
is invalid (the message names the field), 3 no results (the reference method failed, or no items).
"""

from __future__ import annotations

import argparse
import sys
import warnings

from agentlab.modules.harness.family import SpecError

__api__ = False


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m agentlab.modules.harness",
                                description="Measure every cell of a harness spec (docs/experiments.md) and write "
                                "one results file.")
    p.add_argument("spec", help="the spec, a JSON file: family, model, split, items, seeds, methods, ...")
    p.add_argument("--plugin", action="append", default=[], metavar="FILE",
                   help="a Python file imported before the spec is validated, so the methods it registers "
                   "(e.g. @kv_method) can be named; repeat for several")
    p.add_argument("--out", default="results.json", metavar="PATH",
                   help="where to write the results (default: results.json)")
    p.add_argument("--quiet", action="store_true", help="no progress lines on stderr")
    return p


def _num(v) -> str:
    return "-" if v is None else f"{v:.4g}"


def summary_table(results: dict) -> str:
    """One line per cell: id, status, the mean (and 95 % CI) of each metric, wall seconds."""
    metrics = list(results["metrics"])
    rows = [["cell", "status", *metrics, "seconds"]]
    for c in results["cells"]:
        vals = []
        for m in metrics:
            v = c["values"].get(m)
            ci = v and v.get("ci95")
            vals.append("-" if not v else _num(v["mean"]) + (f" [{_num(ci[0])}, {_num(ci[1])}]" if ci else ""))
        status = c["status"] if c["status"] == "ok" else f"failed: {c['error'][:60]}"
        rows.append([c["id"], status, *vals, f"{c['wall_seconds']:.2f}"])
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(cell.ljust(w) for cell, w in zip(r, widths)).rstrip() for r in rows)


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    warnings.filterwarnings("ignore", message=".*past_key_values.*", category=FutureWarning)  # HF rename notice
    from agentlab.modules.harness.run import HarnessError, run_spec, write_results

    def log(msg: str) -> None:
        if not args.quiet:
            print(msg, file=sys.stderr, flush=True)

    try:
        results = run_spec(args.spec, plugins=args.plugin, log=log)
    except SpecError as exc:
        print(f"spec error: {exc}", file=sys.stderr)
        return 2
    except HarnessError as exc:
        print(f"harness error: {exc}", file=sys.stderr)
        return 3
    path = write_results(args.out, results)
    print(summary_table(results))
    failed = sum(c["status"] != "ok" for c in results["cells"])
    print(f"wrote {path} ({len(results['cells'])} cells, {failed} failed, primary {results['primary']})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
