"""literature_review: find papers for the idea and take notes the later phases can ground on."""

from __future__ import annotations

from typing import Literal

from langgraph.runtime import Runtime
from langgraph.types import Command

from agentlab.phases.common import RunContext, memo_prefix, run_phase
from agentlab.state import ResearchState


def _body(state: ResearchState, ctx: RunContext, visit: int, feedback: list[str]) -> dict:
    from agentlab.literature.review import run_literature_review

    out = run_literature_review(
        state["idea"], feedback, ctx.settings, ctx.llm, ctx.run, memo_prefix("literature_review", visit),
        lambda msg: ctx.progress("literature_review", msg),
    )
    return {"queries": out["queries"], "papers": out["papers"], "notes": out["notes"],
            "literature_failures": out.get("failures", [])}


def literature_review(state: ResearchState, runtime: Runtime[RunContext]) -> Command[Literal["checkpoint"]]:
    return run_phase("literature_review", state, runtime.context, _body)
