"""run_literature_review end to end: real arxiv client + fake Atom server, real PDFs, scripted LLM."""

from __future__ import annotations

import json
import shutil
from dataclasses import replace
from pathlib import Path

import pytest

from agentlab.config import Settings
from agentlab.literature.arxiv_source import LiteratureUnavailable
from agentlab.literature.local import parse_bibtex
from agentlab.literature.review import run_literature_review
from agentlab.llm import LLM, Ledger
from agentlab.retrieval import open_store
from agentlab.runs import RunDir
from tests.fakes.arxiv_server import FakeArxiv
from tests.literature.fixture_paths import HAVE_PDFS, PDFS
from tests.retrieval.scripted_coc import install

pytestmark = pytest.mark.skipif(not HAVE_PDFS, reason="real PDF fixtures not available")
IDEA = "testing deep learning models for robustness"
FEEDBACK = ["focus on H2O and SnapKV"]


@pytest.fixture
def setup(tmp_path, llm_server):
    bad = tmp_path / "corrupt.pdf"
    bad.write_bytes(b"%PDF-1.5\n%%garbage, not a real PDF body\n")
    pdfs = {"2202.12139v1": PDFS / "2501.10120v1_pasa.pdf", "2405.13786v1": PDFS / "2304.02623v1.pdf",
            "2503.05378v2": bad}
    with FakeArxiv(pdfs=pdfs) as fa:
        install(llm_server)
        llm_server.on("SearchQueries", {"queries": ["testing deep learning", "test prioritisation"]},
                      {"queries": ["web testing survey"]})
        s = Settings(base_url=llm_server.base_url, model="scripted-model", backoff_base=0.01, arxiv_url=fa.url,
                     arxiv_delay=0, max_papers=4, cache_dir=str(tmp_path / "cache"), context_budget_tokens=3000)
        yield s, fa, llm_server, tmp_path


def _review(s: Settings, tmp_path: Path, name: str = "r1", feedback=FEEDBACK) -> tuple[dict, RunDir, list[str]]:
    run = RunDir.create(tmp_path / "runs", name)
    lines: list[str] = []
    out = run_literature_review(IDEA, feedback, s, LLM(s, Ledger(None)), run, "literature_review/v1", lines.append)
    return out, run, lines


def test_review_reads_full_papers_and_grounds_notes(setup):
    s, fa, srv, tmp = setup
    out, run, lines = _review(s, tmp)
    json.dumps(out)  # JSON-serialisable
    assert len(json.dumps(out)) < 40_000  # small: no full text in state
    assert out["queries"] == ["testing deep learning", "test prioritisation", "web testing survey"]
    ids = [p["id"] for p in out["papers"]]
    assert ids[0] == "2202.12139v1" and len(ids) == 4 and len(set(ids)) == 4  # ranked by relevance, deduped
    full = {p["id"]: p["full_text"] for p in out["papers"]}
    assert full["2202.12139v1"] and full["2405.13786v1"]
    reasons = {f["paper_id"]: f["reason"] for f in out["failures"]}
    assert "unreadable PDF" in reasons["2503.05378v2"] or "no extractable text" in reasons["2503.05378v2"]
    assert any("HTTP 404" in r for r in reasons.values())
    assert all(f["stage"] == "fulltext" for f in out["failures"])
    store = open_store(run)
    assert (run.path / "papers.sqlite").exists()
    pasa = next(p for p in out["papers"] if p["id"] == "2202.12139v1")
    assert pasa["n_chunks"] == store.n_chunks("2202.12139v1") > 20
    assert store.chunk("2202.12139v1", 0).text.startswith("PaSa: An LLM Agent")
    for p in out["papers"]:
        entry = parse_bibtex(p["bibtex"])[0]
        assert entry["ID"] == p["bibkey"] and entry["eprint"] == p["id"].split("v")[0]
    assert len(out["notes"]) == 4
    for note in out["notes"]:
        assert {"paper_id", "problem", "method", "datasets", "metrics", "key_numbers", "limitations", "grounding"} <= set(note)
        assert note["grounding"] and note["claims"]
        for pid, cid in note["grounding"]:
            assert pid == note["paper_id"] and store.chunk(pid, cid) is not None
        for claim in note["claims"]:  # the scripted note copies the first sentence of the cited chunk
            (pid, cid), = claim["grounding"]
            assert claim["text"][:40] in " ".join(store.chunk(pid, cid).text.split())
    long_note = next(n for n in out["notes"] if n["paper_id"] == "2202.12139v1")
    assert long_note["clarification_steps"] >= 1  # 69 chunks > budget: CoC ran
    assert any("notes on 2202.12139v1" in ln for ln in lines)


def test_feedback_reaches_the_prompts(setup):
    s, fa, srv, tmp = setup
    _review(s, tmp)
    for key in ("SearchQueries", "GroundedNote", "CocClarify"):
        req = next(r for r in srv.requests if r["key"] == key)
        assert "focus on H2O and SnapKV" in json.dumps(req["messages"]), key
    assert all(r["status"] == 200 for r in srv.requests)


def test_second_run_uses_the_shared_cache_and_offline_mode(setup):
    s, fa, srv, tmp = setup
    _review(s, tmp, "r1")
    first = [r for r in fa.requests if r.startswith("/pdf/")]
    out2, _, _ = _review(s, tmp, "r2")
    assert [r for r in fa.requests if r.startswith("/pdf/")][len(first):] == \
        [r for r in first if not r.endswith(("2202.12139v1", "2405.13786v1"))]  # good PDFs fetched once
    assert {p["id"] for p in out2["papers"] if p["full_text"]} == {"2202.12139v1", "2405.13786v1"}
    fa.fail_with = 503
    offline = replace(s, offline=True)
    n_req = len(fa.requests)
    out3, _, lines = _review(offline, tmp, "r3")
    assert len(fa.requests) == n_req  # nothing went to the network
    assert {p["id"] for p in out3["papers"] if p["full_text"]} == {"2202.12139v1", "2405.13786v1"}
    assert any("offline" in ln for ln in lines)


def test_arxiv_unreachable_raises_and_resume_does_not_repay(setup):
    s, fa, srv, tmp = setup
    fa.fail_with = 503
    run = RunDir.create(tmp / "runs", "down")
    llm = LLM(s, Ledger(None), memo_dir=run.memo_dir)
    with pytest.raises(LiteratureUnavailable, match="resume"):
        run_literature_review(IDEA, [], s, llm, run, "literature_review/v1", lambda m: None)
    calls = len(srv.requests)
    fa.fail_with = None
    out = run_literature_review(IDEA, [], s, llm, run, "literature_review/v1", lambda m: None)
    assert len(out["papers"]) == 4
    assert [r["key"] for r in srv.requests[calls:]].count("SearchQueries") == 1  # first-round queries memoised


def test_local_papers_dir(setup):
    s, fa, srv, tmp = setup
    folder = tmp / "reading"
    folder.mkdir()
    shutil.copy(PDFS / "attention_is_all_you_need_neurips2017.pdf", folder / "vaswani.pdf")
    shutil.copy(PDFS / "2304.02623v1.pdf", folder)
    (folder / "list.bib").write_text("@misc{vaswani, title={Attention Is All You Need}, author={Ashish Vaswani},"
                                     " year={2017}}\n")
    local = replace(s, papers_dir=str(folder), offline=True)
    out, run, _ = _review(local, tmp, "local")
    assert not [r for r in fa.requests if not r.startswith("/pdf/")]  # no arXiv search
    by_id = {p["id"]: p for p in out["papers"]}
    assert set(by_id) == {"local:vaswani", "2304.02623v1"} and all(p["full_text"] for p in out["papers"])
    assert by_id["2304.02623v1"]["title"].startswith("Beyond Summarization")
    store = open_store(run)
    assert "Transformer" in " ".join(c.text for c in store.chunks("local:vaswani"))
    assert len(out["notes"]) == 2 and not out["failures"]
