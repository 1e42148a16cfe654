"""Typed graph state. It holds plain data only (JSON-able dicts and lists), so checkpoints stay
portable across processes, machines (Postgres) and versions; pydantic models in `schemas.py`
validate what goes in.

Shapes (dicts are `model_dump()`s of the schemas):
  papers:   [{id, title, authors, year, primary_category, abstract, url, pdf_url, bibkey, bibtex}]
  notes:    [{paper_id, problem, method, datasets, metrics, key_numbers, limitations, grounding}]
  plan:     schemas.Plan
  attempts: [{n, status, reason, metrics, files, commit, job, error_tail}]
  report:   {revision, tex, pdf, compiled, problems, trace}
  reviews:  [{revision, reviews: [schemas.Review], overall, decision}]
  stop:     {kind: budget|error, phase, message} while the run waits for a fix; else absent/None
"""

from __future__ import annotations

from typing import Any, TypedDict


class ResearchState(TypedDict, total=False):
    idea: str
    phase: str  # the last phase that completed
    visits: dict[str, int]  # phase -> how many times it has started (keys memo entries)
    feedback: dict[str, list[str]]  # phase -> human feedback it must take into account
    human: list[dict]  # every human decision, in order
    queries: list[str]
    papers: list[dict[str, Any]]
    notes: list[dict[str, Any]]
    literature_failures: list[dict[str, Any]]
    plan: dict[str, Any]
    attempts: list[dict[str, Any]]
    best_attempt: int | None
    results: dict[str, Any]
    interpretation: dict[str, Any]
    report: dict[str, Any]
    revision: int
    reviews: list[dict[str, Any]]
    stop: dict[str, Any] | None
    done: bool
    rejected: bool
