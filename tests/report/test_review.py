"""review_report (ensemble + meta-review), a revision, and the review display of `agentlab review RUN`."""

import json
import subprocess

from rich.console import Console

from agentlab.report import review_report, write_report
from agentlab.report import review_view as view
from tests.report.scripted import (
    META,
    Writer,
    ledger_phases,
    load_ctx,
    make_llm,
    make_run,
    review,
    script,
    sections,
    user_text,
)

REVISED = sections()["results"] + " Variance across seeds was not measured; we report a single run."


def _console() -> Console:
    return Console(record=True, width=220, force_terminal=False)


def test_review_revision_diff_and_the_review_display(srv, tmp_path):
    script(srv, Writer(drafts={"results": [sections()["results"], REVISED]}))
    srv.on("Review", review(4), review(5), review(3, "Section results: no variance."), review(7), review(6), review(8))
    srv.on("MetaReview", META)
    srv.on("RevisionPlan", {"sections": ["results"], "instructions": {"results": "state that variance was not measured"}})
    llm, s = make_llm(srv, tmp_path, n_reviewers=3, accept_score=6)
    run = make_run(tmp_path)
    assert view.pdf_path(run) is None and view.latex_diff(run) == ""

    ctx = load_ctx()
    rep1 = write_report(ctx, s, llm, run, lambda m: None)
    rctx = {**ctx, "memo_prefix": "review/v1/rev1"}
    res1 = review_report(rep1, rctx, s, llm, run, lambda m: None)
    assert res1["overall"] == 4.0 and res1["decision"] == "revise" and len(res1["reviews"]) == 3
    assert res1["meta"]["sections_to_revise"] == ["results"]  # unknown section names are dropped
    stored = json.loads((run.repo_dir / "report" / "reviews" / "rev-1.json").read_text())
    assert stored["overall"] == 4.0 and stored["commit"] == rep1["commit"]
    reviewer_req = next(r for r in srv.requests if r["key"] == "Review")
    assert "Heat-bath random walks" in user_text(reviewer_req)  # reviewers read the compiled PDF's text

    ctx2 = {**ctx, "revision": 2, "memo_prefix": "write_report/v2/rev2", "prior_reviews": res1["reviews"],
            "feedback": ["Say how many seeds were run."]}
    n_before = len([r for r in srv.requests if r["key"] == "SectionDraft"])
    rep2 = write_report(ctx2, s, llm, run, lambda m: None)
    drafts = [r for r in srv.requests if r["key"] == "SectionDraft"][n_before:]
    assert len(drafts) == 1 and "SECTION: results" in user_text(drafts[0])  # only the criticised section
    assert "no variance" in user_text(drafts[0]) and "Say how many seeds were run." in user_text(drafts[0])
    res2 = review_report(rep2, {**ctx2, "memo_prefix": "review/v2/rev2"}, s, llm, run, lambda m: None)
    assert res2["overall"] == 7.0 and res2["decision"] == "accept"

    assert view.revisions(run) == [1, 2] and view.pdf_path(run) == run.repo_dir / "report" / "main.pdf"
    con = _console()
    diff = view.latex_diff(run, console=con)
    assert "+" in diff and "Variance across seeds was not measured" in diff
    assert "-Table~" in diff or any(l.startswith("-") and "tab:t1" in l for l in diff.splitlines())
    assert "Variance across seeds" in con.export_text()
    assert view.latex_diff(run, 1, 1) == ""

    con = _console()
    table = view.scores_table(run, con)
    out = con.export_text()
    assert table.row_count == 8 and "revise" in out and "accept" in out and "Meta-review" in out

    con = _console()
    view.trace_table(run, con)
    out = con.export_text()
    assert "14.24" in out and "seeds-1/results.json" in out and "0 untraced" in out
    con = _console()
    view.integrity_table(run, con)
    assert "no integrity records yet" in con.export_text()  # nothing was flagged in this report

    pages = view.render_pages_png(run, tmp_path / "png")
    assert pages and all(p.read_bytes()[:4] == b"\x89PNG" for p in pages)
    assert ledger_phases(tmp_path) == {"write_report", "review"}


def test_review_display_on_a_run_without_a_report(tmp_path):
    run = make_run(tmp_path)
    con = _console()
    assert view.pdf_path(run) is None and view.revisions(run) == []
    assert view.scores_table(run, con).row_count == 0 and view.trace_table(run, con).row_count == 0
    assert view.render_pages_png(run, tmp_path / "png") == []
    assert "no reviews yet" in con.export_text()


def test_a_revision_renders_kept_sections_from_the_new_data(srv, tmp_path):
    writer = script(srv, Writer())
    srv.on("RevisionPlan", {"sections": [], "instructions": {}})
    llm, s = make_llm(srv, tmp_path, report_fix_rounds=1)
    run = make_run(tmp_path)
    ctx = load_ctx()
    write_report(ctx, s, llm, run, lambda m: None)
    assert not [k for k in writer.seen if k[0] == "fix"]
    # a new experiment pass changed the proposed method's perplexity: its seeds file is elsewhere in the repo
    ctx2 = load_ctx(run.repo_dir, proposed=15.1, paths={"seeds": "experiments/p2/seeds-1/results.json"})
    ctx2.update(revision=2, memo_prefix="write_report/v2/rev2")
    rep2 = write_report(ctx2, s, llm, run, lambda m: None)
    assert any("chose no section" in p for p in rep2["problems"])
    # the kept sections reference values by name: code renders the new numbers, nothing is typed to go stale
    rows = [t for t in rep2["trace"] if t["section"] == "abstract" and t.get("ref") == "seeds:proposed:ppl"]
    assert rows and all(t["number"] == "15.1" and t["source"].startswith("experiments/p2/seeds-1/results.json")
                        for t in rows)
    assert not [t for t in rep2["trace"] if t["number"] == "14.24" and t["section"] in ("abstract", "results")]
    assert "15.1" in " ".join(subprocess.run(["pdftotext", str(run.repo_dir / "report" / "main.pdf"), "-"],
                                             capture_output=True, text=True).stdout.split())
