"""Chain of clarification with a scripted clarifier over real HTTP: pointback ids map to the right
chunks, the context per call stays under the budget on a 128k-token document, branching, ablations."""

from __future__ import annotations

import re

import pytest

from agentlab.config import Settings
from agentlab.eval.synthetic import make_item
from agentlab.literature.pdftext import chunk_text, estimate_tokens
from agentlab.literature.store import PaperStore
from agentlab.llm import LLM, Ledger
from agentlab.retrieval import ask, passages_for
from agentlab.retrieval.coc import CocConfig, CocEngine, Passage, fence, grounding_score
from tests.retrieval.scripted_coc import PARA, install


@pytest.fixture
def env(llm_server, tmp_path):
    install(llm_server)
    s = Settings(base_url=llm_server.base_url, model="scripted-model", backoff_base=0.01, context_budget_tokens=2000)
    store = PaperStore(tmp_path / "papers.sqlite", chunk_tokens=256)
    return s, LLM(s, Ledger(None)), store, llm_server


def _doc_tokens_per_call(srv) -> list[int]:
    out = []
    for r in srv.requests:
        text = "\n".join(m["content"] for m in r["messages"])
        out.append(sum(estimate_tokens(t) + 8 for _, t in PARA.findall(text)))
    return out


def test_pointback_ids_map_to_the_right_chunks_across_papers(env):
    s, llm, store, srv = env
    a = make_item("needle", 8000, 1)
    b = make_item("twohop", 8000, 2)
    store.put({"id": "paper-a"}, a.text, full_text=True)
    store.put({"id": "paper-b"}, b.text, full_text=True)
    # labels are global: paper-b's chunks are shown with ids offset by paper-a's chunk count
    assert passages_for(store, ["paper-a", "paper-b"])[store.n_chunks("paper-a")].chunk_id == 0
    ans = ask(b.question, ["paper-a", "paper-b"], store, s, llm)
    assert ans.text == b.answer
    assert sorted(ans.grounding) == [("paper-b", c) for c in b.gold_chunks]
    for pid, cid in ans.grounding:
        assert store.chunk(pid, cid) is not None
    assert ans.calls == len(srv.requests) and ans.tokens > 0
    # the two hops were clarified in order: owner first, then the owner's city
    clar = [r for r in srv.requests if r["key"] == "CocPointback"]
    assert "belong to" in clar[0]["messages"][-1]["content"] and "live?" in clar[1]["messages"][-1]["content"]
    ans_a = ask(a.question, ["paper-a", "paper-b"], store, s, llm)
    assert ans_a.text == a.answer and ans_a.grounding == [("paper-a", a.gold_chunks[0])]


def test_context_per_call_stays_under_budget_on_128k_tokens(env):
    s, llm, store, srv = env
    item = make_item("twohop", 128_000, 3)
    store.put({"id": "long"}, item.text, full_text=True)
    assert sum(c.tokens for c in store.chunks("long")) >= 128_000
    ans = ask(item.question, ["long"], store, s, llm, depth=3)
    assert ans.text == item.answer and {c for _, c in ans.grounding} == set(item.gold_chunks)
    doc = _doc_tokens_per_call(srv)
    assert max(doc) <= s.context_budget_tokens
    # whole prompts (as the server counts them) stay bounded too: budget + instructions + notes
    assert max(r["prompt_tokens"] for r in srv.requests) <= s.context_budget_tokens + 1000


def test_branching_picks_the_grounded_clarification(env):
    s, llm, store, srv = env
    item = make_item("needle", 8000, 4)
    store.put({"id": "p"}, item.text, full_text=True)
    ans = ask(item.question, ["p"], store, s, llm, depth=1, branching=2)
    assert ans.text == item.answer and ans.grounding == [("p", item.gold_chunks[0])]
    keys = srv.keys_seen()
    assert keys.count("CocClarify") == 1 and keys.count("CocPointback") == 2 and keys[-1] == "CocFinal"
    assert "Ask up to 2 clarifying" in srv.requests[0]["messages"][-1]["content"]


def test_ablations_and_baselines(env):
    s, llm, store, srv = env
    item = make_item("needle", 32000, 5)
    chunks = [Passage(c.id, "x", c.id, c.text, c.tokens) for c in chunk_text(item.text)]
    engine = CocEngine(chunks, llm, CocConfig(context_budget=2000))
    assert engine.topk_answer(item.question) == (item.answer, item.gold_chunks)
    truncated = engine.truncated_answer(item.question)
    if item.gold_chunks[0] > 10:  # the needle lies beyond the first 2k tokens
        assert truncated == ("not found", [])
    engine.cfg = CocConfig(context_budget=2000, clarify=False)
    assert engine.run(item.question)[:2] == (item.answer, item.gold_chunks)


def test_pointback_ids_not_shown_are_dropped(env):
    s, llm, store, srv = env
    item = make_item("needle", 8000, 6)
    store.put({"id": "p"}, item.text, full_text=True)
    srv.replace("CocPointback", {"para_ids": [item.gold_chunks[0], 99999, -1]})
    ans = ask(item.question, ["p"], store, s, llm, depth=1)
    assert ans.grounding == [("p", item.gold_chunks[0])]


def test_fence_and_grounding_score():
    assert fence("</para> <para 3> <<system>>") == "‹/para› ‹para 3› ‹‹system››"
    p = [Passage(0, "x", 0, "The access code of the amber falcon is 4821.", 12)]
    assert grounding_score("4821", p, True) > grounding_score("9999", p, True) > grounding_score("4821", [], True)


def test_no_text_means_no_call(env):
    s, llm, store, srv = env
    ans = ask("anything?", ["missing"], store, s, llm)
    assert ans.grounding == [] and not srv.requests
    assert re.search("no paper text", ans.text)


def test_memo_key_makes_a_repeated_question_free(env, tmp_path):
    s, _, store, srv = env
    item = make_item("needle", 8000, 7)
    store.put({"id": "p"}, item.text, full_text=True)
    llm = LLM(s, Ledger(None), memo_dir=tmp_path / "memo")
    first = ask(item.question, ["p"], store, s, llm, memo_key="plan/v1/ask/0")
    n = len(srv.requests)
    again = ask(item.question, ["p"], store, s, llm, memo_key="plan/v1/ask/0")
    assert len(srv.requests) == n and again.calls == 0
    assert (again.text, again.grounding) == (first.text, first.grounding)
