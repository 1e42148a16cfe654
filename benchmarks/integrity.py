"""Report-integrity benchmark: the share of fabricated items that reach the final PDF, per family.

It writes the held-out adversarial cases of tests/report/integrity_cases.py through the real write_report
(the scripted writer over HTTP on 127.0.0.1, real latexmk, real pdftotext), a few cases per section, title
and figure caption of each report, with a stubborn writer that returns the same fabrication in every fix
round (and an honest replacement for the few cases that have one). A fabricated item reaches the PDF when
its marker word is in the text of the final main.pdf. It prints, per family (derived, wrong_claim, forms,
unbacked, citation), the cases, how many reached the PDF and the share; the honest controls' survival
share; whether the honest replacements landed and were recorded in report/integrity.jsonl; and every case
that went the wrong way.

    .venv/bin/python benchmarks/integrity.py [--families derived forms ...] [--ids d01 h03 ...]
        [--fix-rounds 2] [--json out.json] [--workdir DIR] [--list]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from rich.console import Console  # noqa: E402
from rich.table import Table  # noqa: E402

from tests.fakes.openai_server import ScriptedLLM  # noqa: E402
from tests.report.integrity_cases import CASES, FAMILIES, HONEST, batches, run_batch, shares  # noqa: E402


def select(args: argparse.Namespace) -> tuple:
    cases = [c for c in CASES if c.family in args.families or (c.family == HONEST and args.honest)]
    if args.ids:
        cases = [c for c in CASES if c.id in args.ids]
    return tuple(cases)


def run_all(args: argparse.Namespace, workdir: Path) -> tuple[list, list[dict]]:
    outcomes, infos = [], []
    with ScriptedLLM() as srv:
        for b in batches(select(args)):
            t0 = time.monotonic()
            got, info = run_batch(b, srv, workdir / f"batch-{b.n}", fix_rounds=args.fix_rounds)
            outcomes += got
            infos.append(info)
            print(f"report {b.n}: {len(b.cases)} cases, {time.monotonic() - t0:.1f} s"
                  + (f", FAILED: {info['error']}" if info.get("error") else ""), file=sys.stderr)
    return outcomes, infos


def print_tables(outcomes: list, seconds: float, n_reports: int) -> None:
    con = Console(width=160)
    t = Table(title=f"fabricated items reaching the PDF ({n_reports} reports, {seconds:.0f} s)")
    for col in ("family", "cases", "in PDF", "share"):
        t.add_column(col)
    for fam, row in shares(outcomes).items():
        label = "honest controls (survived)" if fam == HONEST else fam
        t.add_row(label, str(row["cases"]), str(row["reached"]), f"{row['share']:.2f}")
    con.print(t)
    fixes = [o for o in outcomes if o.case.fix]
    if fixes:
        con.print(f"honest fixes: {sum(bool(o.fix_reached) for o in fixes)}/{len(fixes)} replacements in the PDF, "
                  f"{sum(bool(o.fix_recorded) for o in fixes)}/{len(fixes)} recorded in integrity.jsonl")
    wrong = [o for o in outcomes if o.error or (o.case.family == HONEST) != bool(o.reached)
             or (o.case.fix and not (o.fix_reached and o.fix_recorded))]
    if wrong:
        w = Table(title="cases that went the wrong way")
        for col in ("case", "family", "where", "outcome", "what"):
            w.add_column(col, overflow="fold")
        for o in wrong:
            what = ("report failed" if o.error else "dropped" if o.case.family == HONEST
                    else "in the PDF" if o.reached else "fix not landed/recorded")
            w.add_row(o.case.id, o.case.family, o.case.where, what, o.error[:200] or o.case.note)
        con.print(w)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--families", nargs="+", default=list(FAMILIES), choices=list(FAMILIES))
    ap.add_argument("--no-honest", dest="honest", action="store_false", help="leave the honest controls out")
    ap.add_argument("--ids", nargs="+", default=None, help="only these cases (e.g. d01 h03)")
    ap.add_argument("--fix-rounds", type=int, default=2, help="report_fix_rounds of the writer")
    ap.add_argument("--json", type=Path, default=None, help="write the numbers here")
    ap.add_argument("--workdir", type=Path, default=None, help="keep the runs here (default: a temporary dir)")
    ap.add_argument("--list", action="store_true", help="list the cases and exit")
    ap.add_argument("--kinds", action="store_true", help="also list, per case, the kinds of check that caught it")
    args = ap.parse_args()
    if args.list:
        for c in select(args):
            print(f"{c.id} {c.family:<11} {c.where:<18} {c.note}")
        return
    t0 = time.monotonic()
    if args.workdir:
        args.workdir.mkdir(parents=True, exist_ok=True)
        outcomes, infos = run_all(args, args.workdir)
    else:
        with tempfile.TemporaryDirectory(prefix="agentlab-integrity-") as tmp:
            outcomes, infos = run_all(args, Path(tmp))
    seconds = time.monotonic() - t0
    print_tables(outcomes, seconds, len(infos))
    if args.kinds:
        for o in outcomes:
            print(f"{o.case.id} {o.case.family:<11} {'IN PDF' if o.reached else 'removed':<8} "
                  f"{','.join(o.kinds) or '-'}")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        rows = [{"id": o.case.id, "family": o.case.family, "where": o.case.where, "reached": o.reached,
                 "fix_reached": o.fix_reached, "fix_recorded": o.fix_recorded, "caught_as": list(o.kinds),
                 "error": o.error} for o in outcomes]
        args.json.write_text(json.dumps({"benchmark": "integrity", "args": {k: str(v) for k, v in vars(args).items()},
                                         "seconds": seconds, "shares": shares(outcomes), "reports": infos,
                                         "cases": rows}, indent=2) + "\n")
        print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
