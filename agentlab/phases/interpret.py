"""interpret: what the measured results say about the hypothesis (numbers come from results files)."""

from __future__ import annotations

import json
from typing import Literal

from langgraph.runtime import Runtime
from langgraph.types import Command

from agentlab.phases.common import RunContext, clip, memo_prefix, run_phase
from agentlab.prompts import render_messages
from agentlab.schemas import Interpretation
from agentlab.state import ResearchState


def attempts_digest(state: ResearchState) -> list[dict]:
    return [{"n": a["n"], "status": a["status"], "reason": clip(a.get("reason", ""), 200),
             "metrics": a.get("metrics", {})} for a in (state.get("attempts") or [])[-8:]]


def _body(state: ResearchState, ctx: RunContext, visit: int, feedback: list[str]) -> dict:
    results = state.get("results") or {}
    msgs = render_messages("interpret", idea=state["idea"], plan=state["plan"],
                           results_json=clip(json.dumps(results, indent=1), 6000),
                           attempts=attempts_digest(state), feedback=feedback)
    interp = ctx.llm.structured(msgs, Interpretation, phase="interpret", purpose="interpret",
                                memo_key=f"{memo_prefix('interpret', visit)}/interpretation")
    return {"interpretation": interp.model_dump(mode="json")}


def interpret(state: ResearchState, runtime: Runtime[RunContext]) -> Command[Literal["checkpoint"]]:
    return run_phase("interpret", state, runtime.context, _body)
