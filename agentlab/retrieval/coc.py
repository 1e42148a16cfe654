"""Chain-of-clarification (CoC) over long text cut into numbered passages, after AgenticLU
(arXiv 2502.15920): clarify -> point back to passages -> answer the clarification, up to depth D,
then a final answer citing the passages it rests on. With branching B > 1, each step tries B
clarifications and keeps the one whose answer is best grounded in its cited passages.

Every call sees at most `context_budget` tokens of document text, whatever the document's length:
a retriever (BM25 by default) pre-selects the candidate passages the model may point back to.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import TypeVar

from pydantic import BaseModel

from agentlab.literature.pdftext import estimate_tokens
from agentlab.prompts import render_messages
from agentlab.retrieval.retriever import make_retriever
from agentlab.retrieval.schemas import CocAnswer, CocClarify, CocFinal, CocPointback

T = TypeVar("T", bound=BaseModel)
_WORD = re.compile(r"[A-Za-z0-9][A-Za-z0-9.\-]*")
_STOP = frozenset("the a an of and or to in on for is are was were be by with that this it as at from "
                  "which what who whom whose where when how why not no yes its their his her they".split())
PASSAGE_OVERHEAD = 8  # tokens for the <para i> ... </para> wrapper


@dataclass(frozen=True)
class Passage:
    label: int  # the id the model sees in <para label>
    paper_id: str
    chunk_id: int
    text: str
    tokens: int


@dataclass
class CocConfig:
    depth: int = 2
    branching: int = 1
    context_budget: int = 6000
    retriever: str = "bm25"
    clarify: bool = True  # ablation "no clarification": point back on the question itself
    pointback: bool = True  # ablation "no pointback": use the retriever's top passages instead
    no_pointback_k: int = 3
    phase: str = "coc"
    memo_prefix: str | None = None


@dataclass
class Step:
    clarification: str
    labels: list[int]
    answer: str
    sufficient: bool
    score: float


@dataclass
class Trail:
    question: str
    steps: list[Step] = field(default_factory=list)
    evidence: list[int] = field(default_factory=list)  # labels, in order of first use


def fence(text: str) -> str:
    """Paper text is data: neutralise anything that could close or forge our <para>/<document> tags."""
    return text.replace("<", "‹").replace(">", "›")


def content_words(text: str) -> set[str]:
    return {w.lower().strip(".-") for w in _WORD.findall(text) if w.lower() not in _STOP and len(w) > 1}


def grounding_score(answer: str, passages: list[Passage], sufficient: bool) -> float:
    """How well an answer is supported by its cited passages: the share of its content words found
    in them, plus one if the model judged them sufficient. No citation, no grounding."""
    if not passages:
        return 0.0
    words = content_words(answer)
    support = content_words(" ".join(p.text for p in passages))
    overlap = len(words & support) / len(words) if words else 0.0
    return overlap + (1.0 if sufficient else 0.0)


class CocEngine:
    def __init__(self, passages: list[Passage], llm, cfg: CocConfig):
        self.passages = passages
        self.by_label = {p.label: p for p in passages}
        self.llm = llm
        self.cfg = cfg
        self.retriever = make_retriever(cfg.retriever, [p.text for p in passages])

    # ---- helpers ------------------------------------------------------------------------------
    def pack(self, labels: list[int], budget: int) -> list[Passage]:
        """The passages for `labels`, in that order, while they fit in `budget` tokens."""
        out, used = [], 0
        for lab in labels:
            p = self.by_label[lab]
            cost = p.tokens + PASSAGE_OVERHEAD
            if used + cost > budget:
                if p.tokens > budget:  # a single oversize passage never fits: skip it
                    continue
                break
            out.append(p)
            used += cost
        return out

    def ranked(self, query: str) -> list[int]:
        return [self.passages[i].label for i, _ in self.retriever.rank(query)]

    @staticmethod
    def shown(passages: list[Passage]) -> list[dict]:
        return [{"id": p.label, "paper": p.paper_id, "text": fence(p.text)} for p in passages]

    def _key(self, *parts: object) -> str | None:
        if not self.cfg.memo_prefix:
            return None
        return "/".join([self.cfg.memo_prefix, *(str(p) for p in parts)])

    def call(self, prompt: str, schema: type[T], purpose: str, key: str | None, **vars) -> T:
        return self.llm.structured(render_messages(prompt, **vars), schema, phase=self.cfg.phase,
                                   purpose=purpose, memo_key=key)

    @staticmethod
    def _notes(steps: list[Step]) -> list[dict]:
        return [{"question": fence(s.clarification), "answer": fence(s.answer), "paras": s.labels} for s in steps]

    def _trail_tokens(self, steps: list[Step]) -> int:
        return sum(estimate_tokens(s.clarification + " " + s.answer) + 4 for s in steps)

    # ---- the steps ----------------------------------------------------------------------------
    def clarify(self, question: str, steps: list[Step], depth: int, task: str) -> CocClarify:
        budget = max(0, self.cfg.context_budget // 4 - self._trail_tokens(steps))
        preview = self.pack(self.ranked(" ".join([question] + [s.answer for s in steps])), budget)
        return self.call("coc_clarify", CocClarify, "coc clarify", self._key("d", depth, "clarify"),
                         question=question, task=task, notes=self._notes(steps),
                         branching=self.cfg.branching, passages=self.shown(preview))

    def point_back(self, question: str, clarification: str, query: str, key: str | None) -> list[int]:
        candidates = self.pack(self.ranked(query), self.cfg.context_budget)
        if not candidates:
            return []
        allowed = {p.label for p in candidates}
        got = self.call("coc_pointback", CocPointback, "coc pointback", key, question=question,
                        clarification=fence(clarification), passages=self.shown(candidates))
        return list(dict.fromkeys(i for i in got.para_ids if i in allowed))  # only ids it was shown

    def answer_step(self, question: str, clarification: str, labels: list[int], key: str | None) -> CocAnswer:
        passages = self.pack(labels, self.cfg.context_budget)
        if not passages:
            return CocAnswer(answer="not found in the document", sufficient=False)
        return self.call("coc_answer", CocAnswer, "coc answer", key, question=question,
                         clarification=fence(clarification), passages=self.shown(passages))

    def gather(self, question: str, task: str = "") -> Trail:
        """Clarify / point back / answer, up to depth D (branching B per step)."""
        trail = Trail(question)
        if not self.cfg.clarify:
            labels = self.point_back(question, question, question, self._key("direct", "pointback"))
            trail.steps.append(Step(question, labels, "", bool(labels), 0.0))
            trail.evidence = labels
            return trail
        for d in range(self.cfg.depth):
            clar = self.clarify(question, trail.steps, d, task)
            if not clar.clarifications or (clar.done and d > 0):
                break
            best: Step | None = None
            for b, cq in enumerate(clar.clarifications[: max(1, self.cfg.branching)]):
                query = " ".join([question, cq] + [s.answer for s in trail.steps])
                if self.cfg.pointback:
                    labels = self.point_back(question, cq, query, self._key("d", d, "b", b, "pointback"))
                else:
                    labels = [p.label for p in self.pack(self.ranked(query)[: self.cfg.no_pointback_k],
                                                         self.cfg.context_budget)]
                ans = self.answer_step(question, cq, labels, self._key("d", d, "b", b, "answer"))
                score = grounding_score(ans.answer, [self.by_label[i] for i in labels], ans.sufficient)
                step = Step(cq, labels, ans.answer, ans.sufficient, round(score, 4))
                if best is None or step.score > best.score:
                    best = step
            assert best is not None
            trail.steps.append(best)
            trail.evidence.extend(i for i in best.labels if i not in trail.evidence)
        return trail

    def evidence_passages(self, trail: Trail, reserve: int = 0) -> list[Passage]:
        """The passages the trail pointed to (or, if none, the question's top passages), within budget."""
        budget = max(0, self.cfg.context_budget - reserve - self._trail_tokens(trail.steps))
        labels = trail.evidence or self.ranked(trail.question)
        return self.pack(labels, budget)

    def final(self, question: str, trail: Trail, passages: list[Passage] | None = None,
              key_name: str = "final") -> tuple[str, list[int]]:
        """The final answer and the (validated) passage labels it cites."""
        passages = self.evidence_passages(trail) if passages is None else passages
        got = self.call("coc_final", CocFinal, "coc final", self._key(key_name), question=question,
                        notes=self._notes(trail.steps), passages=self.shown(passages))
        allowed = {p.label for p in passages}
        return got.answer, list(dict.fromkeys(i for i in got.para_ids if i in allowed))

    def run(self, question: str) -> tuple[str, list[int], Trail]:
        trail = self.gather(question)
        answer, labels = self.final(question, trail)
        return answer, labels, trail

    # ---- baselines ----------------------------------------------------------------------------
    def topk_answer(self, question: str) -> tuple[str, list[int]]:
        """Baseline: question-only retrieval, top passages within the budget, one call."""
        passages = self.pack(self.ranked(question), self.cfg.context_budget)
        return self.final(question, Trail(question), passages, key_name="topk")

    def truncated_answer(self, question: str) -> tuple[str, list[int]]:
        """Baseline: the document from its start, truncated to the budget, one call."""
        passages = self.pack([p.label for p in self.passages], self.cfg.context_budget)
        return self.final(question, Trail(question), passages, key_name="truncated")
