"""The literature review: queries from the idea (and feedback), refined from what is found; papers
from the configured sources (arXiv, a local folder, the offline cache, plugins: see paper_source.py);
full text into the run's paper store; grounded per-paper notes by chain of clarification.

    run_literature_review(idea, feedback, settings, llm, run, memo_prefix, progress) -> {
        "queries": [...], "papers": [...], "notes": [...], "failures": [{"paper_id", "stage", "reason"}]}
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

from agentlab.config import Settings
from agentlab.literature.bibtex import safe_key
from agentlab.literature.notes import write_note
from agentlab.literature.paper_source import Sources
from agentlab.literature.sources import Candidates, bibtex_of, cacheable, fetch_text, gather, metadata_text, rank
from agentlab.literature.store import PaperStore
from agentlab.prompts import render_messages
from agentlab.schemas import SearchQueries

PHASE = "literature_review"
_PAPER_KEYS = ("id", "title", "authors", "year", "primary_category", "abstract", "url", "pdf_url", "bibkey")


def cache_store(settings: Settings) -> PaperStore:
    return PaperStore(Path(settings.cache_dir).expanduser() / "papers.sqlite", chunk_tokens=None)  # text only


def run_store(run, settings: Settings) -> PaperStore:
    return PaperStore(run.path / "papers.sqlite", chunk_tokens=settings.chunk_tokens)


def make_queries(idea: str, feedback: list[str], llm, memo_prefix: str) -> list[str]:
    msgs = render_messages("literature_queries", idea=idea, feedback=feedback, n=4)
    got = llm.structured(msgs, SearchQueries, phase=PHASE, purpose="search queries", memo_key=f"{memo_prefix}/queries")
    return list(dict.fromkeys(got.queries))


def refine_queries(idea: str, feedback: list[str], queries: list[str], found: list[dict], llm,
                   memo_prefix: str, round_no: int) -> list[str]:
    papers = [{"title": p.get("title", ""), "abstract": (p.get("abstract") or "")[:400]} for p in found[:8]]
    msgs = render_messages("literature_refine", idea=idea, feedback=feedback, queries=queries, papers=papers, n=3)
    got = llm.structured(msgs, SearchQueries, phase=PHASE, purpose="refined search queries",
                         memo_key=f"{memo_prefix}/queries{round_no}")
    return [q for q in dict.fromkeys(got.queries) if q not in queries]


def _unique_bibkeys(papers: list[dict]) -> None:
    seen: dict[str, int] = {}
    for p in papers:
        key = safe_key(p)  # the key references.bib will use, so the notes' bibkeys match it
        if key in seen:
            seen[key] += 1
            key = f"{key}{chr(ord('a') + seen[key] - 1)}" if seen[key] <= 26 else f"{key}{seen[key]}"
        else:
            seen[key] = 0
        p["bibkey"] = key


def run_literature_review(idea: str, feedback: list[str], settings: Settings, llm, run, memo_prefix: str,
                          progress: Callable[[str], None]) -> dict:
    """Find, read and take grounded notes on papers for `idea`. LiteratureUnavailable (arXiv down),
    LLMError and BudgetExceeded propagate; a paper that fails is recorded in "failures" and skipped."""
    feedback = [f for f in (feedback or []) if f and f.strip()]
    failures: list[dict] = []
    cache = cache_store(settings)
    store = run_store(run, settings)
    sources = Sources(settings, cache, progress)
    cands = Candidates()
    ranking_query = " ".join([idea, *feedback, *feedback])  # feedback counts twice: it must steer

    progress("writing search queries")
    queries = make_queries(idea, feedback, llm, memo_prefix)
    per_query = max(10, 2 * settings.max_papers)
    gather(sources.configured, queries, cands, per_query, failures)
    searching = [src for src in sources.configured if src.query_driven]  # refined queries go to these
    for round_no in range(2, settings.search_rounds + 1):
        found = rank(cands, ranking_query, settings.max_papers, settings.retriever) if searching else []
        if not found:
            break
        more = refine_queries(idea, feedback, queries, found, llm, memo_prefix, round_no)
        if not more:
            break
        progress(f"refined queries: {'; '.join(more)}")
        gather(searching, more, cands, per_query, failures)
        queries += more
    selected = [{k: p.get(k) for k in _PAPER_KEYS} for p in
                rank(cands, ranking_query, settings.max_papers, settings.retriever)]
    _unique_bibkeys(selected)
    run.log(f"literature: {len(cands.papers)} candidates, {len(selected)} selected")

    papers: list[dict] = []
    for i, paper in enumerate(selected, 1):
        progress(f"[{i}/{len(selected)}] reading {paper['id']}: {(paper.get('title') or '')[:70]}")
        text, reason = fetch_text(paper, sources, cands)
        full = text is not None
        if not full:
            failures.append({"paper_id": paper["id"], "stage": "fulltext", "reason": reason or "unknown"})
            run.log(f"literature: {paper['id']} full text failed: {reason}")
            text = metadata_text(paper)
            if not cache.has(paper["id"]) and cacheable(paper, sources, cands):
                cache.put(paper, text, full_text=False, source="metadata")
        if not text.strip():
            failures.append({"paper_id": paper["id"], "stage": "fulltext", "reason": "no text and no abstract"})
            continue
        n = store.put(paper, text, full_text=full, source="fulltext" if full else "metadata")
        papers.append({**paper, "bibtex": bibtex_of(paper, sources, cands), "n_chunks": n, "full_text": full})

    notes: list[dict] = []
    for i, paper in enumerate(papers, 1):
        progress(f"[{i}/{len(papers)}] notes on {paper['id']} ({paper['n_chunks']} chunks)")
        notes.append(write_note(paper, store, idea, feedback, llm, settings, memo_prefix, phase=PHASE))
    progress(f"done: {len(papers)} papers, {len(notes)} notes, {len(failures)} failures")
    return {"queries": queries, "papers": papers, "notes": notes, "failures": failures}
