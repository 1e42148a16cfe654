"""write_report end to end: scripted writer over HTTP, real LaTeX compile, real pdftotext."""

import json
import subprocess

import pytest

from agentlab.report import ReportFailed, integrity, write_report
from tests.report.scripted import Writer, ledger_phases, load_ctx, make_llm, make_run, script, sections, user_text


def pdf_text(run) -> str:
    return subprocess.run(["pdftotext", str(run.repo_dir / "report" / "main.pdf"), "-"],
                          capture_output=True, text=True, check=True).stdout


def _write(srv, tmp_path, writer=None, ctx=None, outline=None, **settings):
    writer = script(srv, writer or Writer(), outline)
    llm, s = make_llm(srv, tmp_path, **settings)
    run = make_run(tmp_path)
    out = write_report(ctx or load_ctx(), s, llm, run, lambda m: None)
    return out, run, writer


def test_report_compiles_with_result_numbers_and_cited_titles(srv, tmp_path):
    out, run, _ = _write(srv, tmp_path)
    assert out["compiled"] and out["problems"] == [] and (run.repo_dir / out["pdf"]).exists()
    text = " ".join(pdf_text(run).split())
    for number in ("14.24", "13.9", "14.6", "16.9", "14.02", "2.4%", "4.00"):  # prose and the stage tables
        assert number in text
    for title in ("The linear representation hypothesis and the geometry of large language models",
                  "Heat-bath random walks with Markov bases", "Causal parrots"):
        assert title in text
    assert all(t["status"] == "ok" and t["source"] for t in out["trace"])
    assert any(t["number"] == "27 concepts" and t["source"] == "paper park2023linear, chunk 3 (verbatim)"
               for t in out["trace"])
    pct = next(t for t in out["trace"] if t.get("ref") == "pct(seeds:proposed:ppl, seeds:full:ppl)")
    assert pct["number"] == "2.4%" and pct["source"].startswith("derived: pct(") and "seeds-1" in pct["source"]
    assert out["integrity"] == {"revision": 1, "flagged": 0, "fixed": 0, "dropped": 0, "open": []}
    saved = json.loads((run.repo_dir / "report" / "trace-rev-1.json").read_text())
    assert saved == out["trace"]
    repo = run.repo()
    assert repo.tags["report-rev-1"].commit.hexsha == out["commit"]
    assert "report/main.tex" in repo.git.ls_tree("-r", "--name-only", out["commit"])
    assert ledger_phases(tmp_path) == {"write_report"}


def test_results_section_has_one_table_per_stage_and_the_figures(srv, tmp_path):
    out, run, _ = _write(srv, tmp_path)
    tex = (run.repo_dir / "report" / "main.tex").read_text()
    results = tex[tex.index(r"\section{Results}"):tex.index(r"\section{Discussion")]
    for stage in ("baselines", "implement", "sweep", "ablations", "seeds"):
        assert f"\\input{{tables/stage-{stage}}}" in results
    assert r"\input{tables/comparisons}" in results
    assert "figures/sweep.pdf" in results and "figures/pareto.pdf" in results and "figures/fig-1.pdf" in results
    assert r"\input{tables/table-1}" not in tex  # the outline's table repeats a stage table: not drawn twice
    for f in ("sweep.pdf", "sweep.png", "pareto.pdf", "pareto.png"):
        assert (run.repo_dir / "report" / "figures" / f).stat().st_size > 1000
    outline_req = next(r for r in srv.requests if r["key"] == "ReportOutline")
    assert 'name="stage.seeds"' in user_text(outline_req) and "There are NO results" not in user_text(outline_req)
    # table numbers are traced to the stage's results file, cell and column
    rows = [t for t in out["trace"] if t["section"] == "table stage-seeds"]
    assert {t["source"].split(":")[0] for t in rows} == {"experiments/p1/seeds-1/results.json"}
    assert any(t["number"] == "14.24" and t["source"].endswith("pool=5]].ppl") for t in rows)
    sweep = [t for t in out["trace"] if t["section"] == "table stage-sweep"]
    assert sweep and all(t["source"].startswith("experiments/p1/sweep-1/results.json: cells[") for t in sweep)
    section = next(r for r in srv.requests if r["key"] == "SectionDraft" and "SECTION: results" in user_text(r))
    assert "tab:stage-seeds" in user_text(section) and "fig:pareto" in user_text(section)
    assert '"strongest_baseline"' in user_text(section)


FABRICATED = r" Our method is 41.3\% faster than H2O \cite{zhang2023h2o}."


def test_fabricated_number_and_unknown_cite_go_back_to_the_writer(srv, tmp_path):
    writer = Writer(drafts={"results": [sections()["results"] + FABRICATED]})  # the fix reply is the clean section
    out, run, _ = _write(srv, tmp_path, writer)
    fix = [r for r in srv.requests if r["key"] == "SectionDraft" and "FIX SECTION: results" in user_text(r)]
    assert len(fix) == 1
    assert "41.3 is typed" in user_text(fix[0]) and "zhang2023h2o" in user_text(fix[0])
    tex = (run.repo_dir / "report" / "main.tex").read_text()
    assert "41.3" not in tex and "zhang2023h2o" not in tex
    assert out["problems"] == [] and all(t["status"] == "ok" for t in out["trace"])
    trail = integrity.read(run.repo_dir / "report" / "integrity.jsonl")
    flagged = {r["kind"] for r in trail if r["event"] == "flagged"}
    assert {"digit", "unknown_cite"} <= flagged
    assert [r["replacement"] for r in trail if r["event"] == "rewritten"] == [sections()["results"]]
    assert {r["decision"] for r in trail if r["event"] == "decided"} == {"fixed"}
    assert out["integrity"]["fixed"] >= 2 and out["integrity"]["open"] == []


def test_fabrication_the_writer_keeps_is_removed_from_the_pdf_with_its_sentence(srv, tmp_path):
    bad = sections()["results"] + FABRICATED
    writer = Writer(drafts={"results": [bad]}, fixes={"results": [bad, bad]})
    out, run, _ = _write(srv, tmp_path, writer, report_fix_rounds=2)
    assert writer.seen.count(("fix", "results")) == 2  # bounded
    text = " ".join(pdf_text(run).split())
    assert "41.3" not in text and "faster than H2O" not in text  # the whole sentence, not only its digits
    assert "a compression of 4.00" in text  # the rest of the section stays
    assert "zhang2023h2o" not in (run.repo_dir / "report" / "main.tex").read_text()
    assert any("removed the sentence" in p and "41.3" in p for p in out["problems"])
    trail = integrity.read(run.repo_dir / "report" / "integrity.jsonl")
    assert len([r for r in trail if r["event"] == "rewritten"]) == 2
    dropped = [r for r in trail if r["decision"] == "dropped"]
    assert dropped and all("41.3" in r["claim"] for r in dropped) and out["integrity"]["dropped"] == len(dropped)
    assert [t["context"] for t in out["trace"] if t["status"] == "removed"] == [FABRICATED.strip()]


# an allowed command used wrongly (an unknown one never reaches pdflatex: the sanitizer removes it)
BROKEN = r" The cache \item is small."


def test_latex_error_is_repaired_by_the_writer(srv, tmp_path):
    broken = sections()["results"] + BROKEN
    writer = Writer(drafts={"results": [broken]})
    out, run, _ = _write(srv, tmp_path, writer)
    fix = [r for r in srv.requests if "FIX SECTION: results" in user_text(r)]
    assert len(fix) == 1 and "Lonely \\item" in user_text(fix[0])
    assert out["compiled"] and out["problems"] == []
    assert "\\item" not in (run.repo_dir / "report" / "main.tex").read_text()


@pytest.mark.slow
def test_latex_error_that_is_never_repaired_ends_as_plain_text(srv, tmp_path):
    broken = sections()["results"] + BROKEN
    writer = Writer(drafts={"results": [broken]}, fixes={"results": [broken, broken]})
    out, run, _ = _write(srv, tmp_path, writer, latex_repairs=2)
    assert writer.seen.count(("fix", "results")) == 2
    assert out["compiled"] and any("plain text" in p for p in out["problems"])
    assert "14.24" in pdf_text(run)  # its \\val references survive the plain-text fallback


def test_failed_experiment_is_reported_honestly_without_numbers(srv, tmp_path):
    ctx = load_ctx()
    for st in ctx["experiment"]["stages"].values():
        st.update(status="failed", reason="ImportError in method.py", results_path=None)
    ctx.update(results={}, analysis={}, interpretation={"summary": "No results.", "verdict": "inconclusive"})
    outline = {"title": "KV-Cache Eviction: an Experiment That Did Not Run", "tables": [], "figures": []}
    writer = Writer(drafts={"abstract": ["The experiment failed (ImportError), so this report has no results."],
                            "results": [r"No stage produced results; perplexity 14.24 was expected."]},
                    fixes={"results": [r"No stage produced results; perplexity 14.24 was expected."]})
    out, run, _ = _write(srv, tmp_path, writer, ctx=ctx, outline=outline, report_fix_rounds=1)
    outline_req = next(r for r in srv.requests if r["key"] == "ReportOutline")
    assert "There are NO results" in user_text(outline_req)
    text = " ".join(pdf_text(run).split())
    assert "this report has no results" in text and "14.24" not in text
    assert list((run.repo_dir / "report" / "tables").iterdir()) == []
    assert "was expected" not in text  # the sentence with the typed number is gone
    removed = [t["context"] for t in out["trace"] if t["status"] == "removed"]
    assert "No stage produced results; perplexity 14.24 was expected." in removed
    assert any(r"\val{count:seeds}" in r for r in removed)  # a reference to a value this run does not have


def test_run_without_papers_has_no_citations_and_no_bibliography(srv, tmp_path):
    ctx = {**load_ctx(), "papers": [], "notes": []}
    out, run, writer = _write(srv, tmp_path, ctx=ctx, report_fix_rounds=1)
    assert ("fix", "introduction") in writer.seen  # its \cite keys were sent back first
    tex = (run.repo_dir / "report" / "main.tex").read_text()
    assert "\\cite" not in tex and "\\bibliography{" not in tex
    assert any("removed the sentence" in p and "park2023linear" in p for p in out["problems"])
    assert "References" not in pdf_text(run)


def test_conference_template_compiles(srv, tmp_path):
    out, run, _ = _write(srv, tmp_path, template="conference")
    assert out["compiled"] and (run.repo_dir / "report" / "agentlabconf.sty").exists()
    assert "Heat-bath random walks" in pdf_text(run)


def test_rerun_pays_nothing_twice(srv, tmp_path):
    writer = script(srv, Writer())
    llm, s = make_llm(srv, tmp_path)
    run = make_run(tmp_path)
    first = write_report(load_ctx(), s, llm, run, lambda m: None)
    n = len(srv.requests)
    again = write_report(load_ctx(), s, llm, run, lambda m: None)
    assert len(srv.requests) == n and again["trace"] == first["trace"] and writer.seen


def test_unknown_template_is_a_report_failure(srv, tmp_path):
    with pytest.raises(ReportFailed, match="unknown report template 'nope'"):
        _write(srv, tmp_path, template="nope")


def test_a_report_that_cannot_compile_stops_with_the_log(srv, tmp_path, monkeypatch):
    import shutil

    from agentlab.paths import templates_dir

    broken = tmp_path / "templates"
    shutil.copytree(templates_dir(), broken)
    main = broken / "article" / "main.tex.j2"
    main.write_text(main.read_text().replace(r"\begin{document}", "\\begin{document}\n\\brokenpreamblemacro"))
    monkeypatch.setenv("AGENTLAB_TEMPLATES_DIR", str(broken))
    with pytest.raises(ReportFailed, match=r"(?s)does not compile.*Undefined control sequence.*brokenpreamblemacro"):
        _write(srv, tmp_path)
