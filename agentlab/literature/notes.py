"""Per-paper notes written by chain of clarification; every claim carries (paper, chunk) grounding.

The model only fills a fixed schema (`GroundedNote`); the paper id, title and grounding ids are set
or checked here, so text inside a paper ("ignore previous instructions…") cannot change the note's
shape, its paper, or make anything run.
"""

from __future__ import annotations

from pydantic import BaseModel, Field, field_validator

from agentlab.literature.store import PaperStore
from agentlab.prompts import render_messages, render_text
from agentlab.retrieval import passages_for
from agentlab.retrieval.coc import CocConfig, CocEngine, Trail, fence

FIELDS = ("problem", "method", "datasets", "metrics", "key_numbers", "limitations")
_LIST_FIELDS = ("datasets", "metrics", "key_numbers")


class Claim(BaseModel):
    text: str = Field(description="one short factual statement from the paper")
    para_ids: list[int] = Field(default_factory=list, max_length=8, description="ids of the <para> blocks it rests on")

    @field_validator("text")
    @classmethod
    def _clean(cls, v: str) -> str:
        return " ".join(str(v).split())[:600]


class GroundedNote(BaseModel):
    problem: list[Claim] = Field(default_factory=list, max_length=4)
    method: list[Claim] = Field(default_factory=list, max_length=6)
    datasets: list[Claim] = Field(default_factory=list, max_length=10)
    metrics: list[Claim] = Field(default_factory=list, max_length=10)
    key_numbers: list[Claim] = Field(default_factory=list, max_length=12)
    limitations: list[Claim] = Field(default_factory=list, max_length=6)
    relevance: str = Field(default="", description="how the paper bears on the research idea")

    @field_validator("relevance")
    @classmethod
    def _clean(cls, v: str) -> str:
        return " ".join(str(v).split())[:800]


def write_note(paper: dict, store: PaperStore, idea: str, feedback: list[str], llm, settings,
               memo_prefix: str, phase: str = "literature_review") -> dict:
    """Notes for one paper from its chunks in the store (CoC when the text exceeds the budget)."""
    pid = paper["id"]
    passages = passages_for(store, [pid])  # one paper: label == chunk id
    cfg = CocConfig(depth=settings.coc_depth, branching=settings.coc_branching,
                    context_budget=settings.context_budget_tokens, retriever=settings.retriever,
                    phase=phase, memo_prefix=f"{memo_prefix}/note/{pid}")
    engine = CocEngine(passages, llm, cfg)
    task = render_text("paper_note_task", idea=idea, feedback=feedback, title=fence(paper.get("title") or ""))
    question = render_text("paper_note_question")
    if sum(p.tokens for p in passages) + 8 * len(passages) <= cfg.context_budget:
        trail, shown = Trail(question), passages  # the whole paper fits in one call: no clarification needed
    else:
        trail = engine.gather(question, task=task)
        reserve = 800
        labels = [0] + trail.evidence + engine.ranked(question + " " + idea + " " + " ".join(feedback))
        budget = max(0, cfg.context_budget - reserve - engine._trail_tokens(trail.steps))
        shown = engine.pack(list(dict.fromkeys(labels)), budget)
        shown.sort(key=lambda p: p.label)
    msgs = render_messages("paper_note", idea=idea, feedback=feedback, title=fence(paper.get("title") or ""),
                           notes=engine._notes(trail.steps), passages=engine.shown(shown))
    got = llm.structured(msgs, GroundedNote, phase=phase, purpose=f"note {pid}", memo_key=f"{memo_prefix}/note/{pid}")
    return note_dict(paper, got, {p.label: p for p in shown}, steps=len(trail.steps))


def note_dict(paper: dict, got: GroundedNote, shown: dict, steps: int = 0) -> dict:
    """The JSON-serialisable note: plain fields for the prompts, grounded claims, and the grounding
    union. Claim ids the model was not shown are dropped; a claim left without grounding is dropped."""
    pid = paper["id"]
    note: dict = {"paper_id": pid, "title": paper.get("title", ""), "bibkey": paper.get("bibkey", ""),
                  "relevance": got.relevance, "claims": [], "grounding": [], "ungrounded_claims": 0,
                  "clarification_steps": steps}
    seen: set[tuple[str, int]] = set()
    for name in FIELDS:
        texts = []
        for claim in getattr(got, name):
            ids = [i for i in dict.fromkeys(claim.para_ids) if i in shown]
            if not ids or not claim.text:
                note["ungrounded_claims"] += 1
                continue
            grounding = [[pid, shown[i].chunk_id] for i in ids]
            note["claims"].append({"field": name, "text": claim.text, "grounding": grounding})
            texts.append(claim.text)
            for g in grounding:
                if tuple(g) not in seen:
                    seen.add(tuple(g))
                    note["grounding"].append(g)
        note[name] = texts if name in _LIST_FIELDS else " ".join(texts)
    return note
