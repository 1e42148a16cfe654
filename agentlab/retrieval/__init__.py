"""Grounded question answering over the run's papers (chain of clarification).

    from agentlab.retrieval import ask, open_store
    ans = ask("Which eviction policy does H2O use?", ["2306.14048"], open_store(run), settings, llm)
    ans.text, ans.grounding  # -> "...", [("2306.14048", 12), ...]
"""

from __future__ import annotations

from dataclasses import dataclass, field

from agentlab.config import Settings
from agentlab.literature.store import PaperStore
from agentlab.retrieval.coc import CocConfig, CocEngine, Passage


@dataclass
class Answer:
    text: str
    grounding: list[tuple[str, int]] = field(default_factory=list)  # (paper_id, chunk_id)
    calls: int = 0
    tokens: int = 0

    def to_dict(self) -> dict:
        return {"text": self.text, "grounding": [list(g) for g in self.grounding],
                "calls": self.calls, "tokens": self.tokens}


def open_store(run, settings: Settings | None = None) -> PaperStore:
    """The run's paper store (`<run>/papers.sqlite`)."""
    chunk_tokens = settings.chunk_tokens if settings else _stored_chunk_tokens(run.path / "papers.sqlite")
    return PaperStore(run.path / "papers.sqlite", chunk_tokens=chunk_tokens)


def _stored_chunk_tokens(path) -> int:
    import sqlite3
    from contextlib import closing

    if path.exists():
        with closing(sqlite3.connect(path)) as c:
            try:
                row = c.execute("SELECT value FROM settings WHERE key='chunk_tokens'").fetchone()
            except sqlite3.OperationalError:
                row = None
        if row:
            return int(row[0])
    return Settings().chunk_tokens


def passages_for(store: PaperStore, paper_ids: list[str]) -> list[Passage]:
    """All chunks of these papers as passages with one global label each (paper order, then chunk)."""
    out: list[Passage] = []
    for pid in paper_ids:
        for ch in store.chunks(pid):
            out.append(Passage(len(out), pid, ch.id, ch.text, ch.tokens))
    return out


def ask(question: str, paper_ids: list[str], store: PaperStore, settings: Settings, llm,
        depth: int | None = None, branching: int | None = None, phase: str = "ask",
        memo_key: str | None = None) -> Answer:
    """Answer `question` from the papers' full text by chain of clarification; the answer carries
    the (paper_id, chunk_id) pairs it rests on. LLMError/BudgetExceeded propagate."""
    passages = passages_for(store, paper_ids)
    if not passages:
        return Answer("no paper text is available for this question", [])
    cfg = CocConfig(depth=settings.coc_depth if depth is None else depth,
                    branching=settings.coc_branching if branching is None else branching,
                    context_budget=settings.context_budget_tokens, retriever=settings.retriever,
                    phase=phase, memo_prefix=memo_key)
    meter = _Meter()
    llm.listeners.append(meter)
    try:
        engine = CocEngine(passages, llm, cfg)
        text, labels, _ = engine.run(question)
    finally:
        llm.listeners.remove(meter)
    by_label = engine.by_label
    return Answer(text, [(by_label[i].paper_id, by_label[i].chunk_id) for i in labels], meter.calls, meter.tokens)


class _Meter:
    """Counts the LLM calls and tokens of one question (a ledger listener)."""

    def __init__(self) -> None:
        self.calls = self.tokens = 0

    def __call__(self, entry) -> None:
        self.calls += 1
        self.tokens += entry.prompt_tokens + entry.completion_tokens
