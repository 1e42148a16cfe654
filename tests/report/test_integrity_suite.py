"""The held-out integrity suite (issue 14, item 6): adversarial cases (tests/report/integrity_cases.py) through
the real write_report (scripted writer over HTTP, real latexmk, real pdftotext). No fabricated item may reach
the final PDF, in any family; the honest controls must survive. The per-family shares are printed
(also by benchmarks/integrity.py)."""

from __future__ import annotations

import contextlib
import re
import time

import pytest

from tests.fakes.openai_server import ScriptedLLM
from tests.report.integrity_cases import CASES, FAMILIES, HONEST, batches, report_lines, run_batch, shares

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def outcomes(tmp_path_factory, request):
    """Every batch written once (one report each); the per-family table goes to the terminal."""
    out, infos = [], []
    t0 = time.monotonic()
    with ScriptedLLM() as srv:
        for b in batches():
            got, info = run_batch(b, srv, tmp_path_factory.mktemp(f"integrity-{b.n}"))
            out += got
            infos.append(info)
    lines = report_lines(out) + [f"{len(infos)} reports in {time.monotonic() - t0:.0f} s"]
    capture = request.config.pluginmanager.get_plugin("capturemanager")
    with capture.global_and_fixture_disabled() if capture else contextlib.nullcontext():
        print("\n".join(["", "integrity suite: share of fabricated items in the PDF", *lines]), flush=True)
    return out


def test_the_cases_are_many_varied_and_well_formed():
    fabricated = [c for c in CASES if c.family != HONEST]
    assert len(fabricated) >= 60 and sum(c.family == HONEST for c in CASES) >= 10
    assert {c.family for c in fabricated} == set(FAMILIES)
    assert all(sum(c.family == f for c in CASES) >= 8 for f in FAMILIES)
    assert sum(bool(c.fix) for c in CASES) >= 3
    markers = [c.marker for c in CASES] + [c.fix_marker for c in CASES if c.fix]
    assert len(set(markers)) == len(markers) and len({c.id for c in CASES}) == len(CASES)
    for m in markers:
        assert re.fullmatch(r"[a-z]{6,}", m), m
        assert not any(m != o and m in o for o in markers), m  # a marker inside another would match twice
    for c in CASES:
        assert c.marker in c.latex.lower() and (not c.fix or c.fix_marker in c.fix.lower()), c.id
    assert all(len(b.cases) <= 16 for b in batches())  # a report holds at most that many cases


@pytest.mark.parametrize("family", FAMILIES)
def test_no_fabricated_item_reaches_the_pdf(outcomes, family):
    row = shares(outcomes)[family]
    reached = [f"{o.case.id} ({o.case.note})" + (f" [report failed: {o.error}]" if o.error else "")
               for o in outcomes if o.case.family == family and (o.reached or o.reached is None)]
    assert row["share"] == 0, f"{family}: {row['reached']}/{row['cases']} in the PDF: " + "; ".join(reached)


def test_honest_controls_survive(outcomes):
    lost = [f"{o.case.id} ({o.case.note})" + (f" [report failed: {o.error}]" if o.error else "")
            for o in outcomes if o.case.family == HONEST and not o.reached]
    assert shares(outcomes)[HONEST]["share"] == 1, "honest sentences removed: " + "; ".join(lost)


def test_an_honest_fix_lands_in_the_pdf_and_in_the_audit_trail(outcomes):
    fixes = [o for o in outcomes if o.case.fix]
    assert fixes
    for o in fixes:
        assert o.fix_reached, f"{o.case.id}: the writer's replacement is not in the PDF"
        assert o.fix_recorded, f"{o.case.id}: integrity.jsonl lacks the flagged claim or the rewritten replacement"
