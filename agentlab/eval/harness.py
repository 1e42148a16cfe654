"""Evaluate chain of clarification against baselines and ablations on any endpoint.

Methods: coc (clarify -> pointback -> answer, depth D, branching B), coc_no_clarify (point back on the
question itself), coc_no_pointback (retriever's top passages instead of the model's choice), topk
(question-only retrieval, one call), truncated (the document's start up to the budget, one call).
Per method: answer accuracy (gold contained in the answer; token F1 too), pointback recall/precision
of the cited chunks against gold chunks, LLM calls and tokens per question, largest prompt.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, replace
from typing import Callable

from agentlab.eval.qa import contains, f1
from agentlab.eval.synthetic import Item
from agentlab.literature.pdftext import chunk_text
from agentlab.llm import BudgetExceeded, LLMError
from agentlab.retrieval.coc import CocConfig, CocEngine, Passage

METHODS = ("coc", "coc_no_clarify", "coc_no_pointback", "topk", "truncated")


@dataclass
class Meter:
    calls: int = 0
    tokens: int = 0
    max_prompt: int = 0

    def __call__(self, entry) -> None:
        self.calls += 1
        self.tokens += entry.prompt_tokens + entry.completion_tokens
        self.max_prompt = max(self.max_prompt, entry.prompt_tokens)


def run_method(engine: CocEngine, method: str, question: str) -> tuple[str, list[int], list[dict]]:
    """(answer, cited labels, clarification steps) for one method."""
    base = engine.cfg
    variants = {"coc": {}, "coc_no_clarify": {"clarify": False}, "coc_no_pointback": {"pointback": False}}
    try:
        if method in variants:
            engine.cfg = replace(base, **variants[method])
            answer, cited, trail = engine.run(question)
            steps = [{"clarification": s.clarification, "paras": s.labels, "answer": s.answer, "score": s.score}
                     for s in trail.steps]
            return answer, cited, steps
        if method == "topk":
            return (*engine.topk_answer(question), [])
        if method == "truncated":
            return (*engine.truncated_answer(question), [])
    finally:
        engine.cfg = base
    raise ValueError(f"unknown method {method!r} (use {', '.join(METHODS)})")


def evaluate(items: list[Item], llm, cfg: CocConfig, chunk_tokens: int, methods: tuple[str, ...] = METHODS,
             progress: Callable[[str], None] = lambda s: None) -> list[dict]:
    """One row per (item, method)."""
    rows = []
    for n, item in enumerate(items, 1):
        chunks = chunk_text(item.text, chunk_tokens)
        engine = CocEngine([Passage(c.id, item.id, c.id, c.text, c.tokens) for c in chunks], llm, cfg)
        for method in methods:
            meter = Meter()
            llm.listeners.append(meter)
            t0 = time.monotonic()
            error = ""
            try:
                answer, cited, steps = run_method(engine, method, item.question)
            except (LLMError, ValueError) as exc:  # one bad reply is a wrong answer, not a crashed eval
                answer, cited, steps, error = "", [], [], str(exc)[:300]
            except BudgetExceeded:
                raise
            finally:
                llm.listeners.remove(meter)
            gold = set(item.gold_chunks)
            hit = len(gold & set(cited))
            rows.append({
                "item": item.id, "kind": item.kind, "length": item.length, "n_chunks": len(chunks),
                "method": method, "question": item.question, "gold": item.answer, "answer": answer,
                "correct": contains(answer, item.answer), "f1": round(f1(answer, item.answer), 4),
                "gold_chunks": sorted(gold), "cited": cited,
                "recall": (hit / len(gold)) if gold else None,
                "precision": (hit / len(cited) if cited else 0.0) if gold else None,
                "calls": meter.calls, "tokens": meter.tokens, "max_prompt_tokens": meter.max_prompt,
                "seconds": round(time.monotonic() - t0, 3), "error": error, "steps": steps,
            })
        progress(f"[{n}/{len(items)}] {item.id} done")
    return rows


def _mean(xs: list[float]) -> float | None:
    return round(sum(xs) / len(xs), 4) if xs else None


def summarize(rows: list[dict], by: tuple[str, ...] = ("dataset", "method")) -> list[dict]:
    groups: dict[tuple, list[dict]] = {}
    for r in rows:
        groups.setdefault(tuple(r.get(k) for k in by), []).append(r)
    out = []
    for key, rs in groups.items():
        out.append({**dict(zip(by, key)), "n": len(rs),
                    "accuracy": _mean([float(r["correct"]) for r in rs]),
                    "f1": _mean([r["f1"] for r in rs]),
                    "recall": _mean([r["recall"] for r in rs if r["recall"] is not None]),
                    "precision": _mean([r["precision"] for r in rs if r["precision"] is not None]),
                    "calls_per_q": _mean([r["calls"] for r in rs]),
                    "tokens_per_q": _mean([r["tokens"] for r in rs]),
                    "max_prompt_tokens": max(r["max_prompt_tokens"] for r in rs),
                    "errors": sum(1 for r in rs if r["error"])})
    return out


def table(summary: list[dict]) -> str:
    cols = ["dataset", "method", "n", "accuracy", "f1", "recall", "precision", "calls_per_q", "tokens_per_q",
            "max_prompt_tokens"]
    fmt = lambda v: "-" if v is None else (f"{v:.3f}" if isinstance(v, float) else str(v))  # noqa: E731
    cells = [[fmt(s.get(c)) for c in cols] for s in summary]
    widths = [max([len(c)] + [len(row[i]) for row in cells]) for i, c in enumerate(cols)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(cols, widths))]
    lines += ["  ".join(v.ljust(w) for v, w in zip(row, widths)) for row in cells]
    return "\n".join(line.rstrip() for line in lines)
