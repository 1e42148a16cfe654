"""review: an ensemble of automated reviewers; a low score sends the report back for a revision."""

from __future__ import annotations

from typing import Literal

from langgraph.runtime import Runtime
from langgraph.types import Command

from agentlab.phases.common import RunContext, memo_prefix, run_phase
from agentlab.phases.write_report import report_context
from agentlab.state import ResearchState


def _body(state: ResearchState, ctx: RunContext, visit: int, feedback: list[str]) -> dict:
    from agentlab.report import review_report

    revision = state.get("revision") or 1
    rctx = report_context(state, revision, feedback, f"{memo_prefix('review', visit)}/rev{revision}")
    result = review_report(state["report"], rctx, ctx.settings, ctx.llm, ctx.run, lambda m: ctx.progress("review", m))
    reviews = list(state.get("reviews") or []) + [result]
    revise = result["decision"] == "revise" and revision <= ctx.settings.max_revisions
    # on "revise" the writer sees these reviews as `prior_reviews` (report_context) and rewrites what they criticise
    return {"reviews": reviews, "_next": "write_report" if revise else "checkpoint"}


def _route(update: dict) -> str:
    return update.pop("_next")


def review(state: ResearchState, runtime: Runtime[RunContext]) -> Command[Literal["write_report", "checkpoint"]]:
    return run_phase("review", state, runtime.context, _body, goto=_route)
