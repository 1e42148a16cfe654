"""plan: a structured research plan (hypothesis, method, metrics with direction, baselines)."""

from __future__ import annotations

from typing import Literal

from langgraph.runtime import Runtime
from langgraph.types import Command

from agentlab.phases.common import RunContext, clip, memo_prefix, run_phase
from agentlab.prompts import render_messages, render_text
from agentlab.schemas import Plan
from agentlab.state import ResearchState

MAX_NOTES = 12  # the prompt stays bounded however many papers the review found


def notes_digest(state: ResearchState, limit: int = MAX_NOTES) -> list[dict]:
    """A bounded view of the literature for prompts: title, bibkey and the note's main fields."""
    papers = {p["id"]: p for p in state.get("papers") or []}
    out = []
    for n in (state.get("notes") or [])[:limit]:
        p = papers.get(n.get("paper_id"), {})
        out.append({"bibkey": p.get("bibkey", ""), "title": p.get("title", n.get("paper_id", "")),
                    "problem": clip(str(n.get("problem", "")), 300), "method": clip(str(n.get("method", "")), 300),
                    "key_numbers": [clip(str(k), 160) for k in (n.get("key_numbers") or [])[:4]]})
    return out


def grounded_evidence(state: ResearchState, ctx: RunContext, visit: int) -> dict | None:
    """One chain-of-clarification question over the papers' full text; the answer carries its grounding."""
    ids = [p["id"] for p in state.get("papers") or [] if p.get("full_text")]
    if not ids or not ctx.settings.plan_grounded_question:
        return None
    from agentlab.retrieval import ask, open_store

    bibkeys = {p["id"]: p.get("bibkey", p["id"]) for p in state.get("papers") or []}
    question = render_text("plan_question", idea=state["idea"])
    ans = ask(question, ids, open_store(ctx.run, ctx.settings), ctx.settings, ctx.llm, phase="plan",
              memo_key=f"{memo_prefix('plan', visit)}/ask")
    return {"question": question, "answer": clip(ans.text, 2500),
            "grounding": [f"{bibkeys.get(pid, pid)} para {cid}" for pid, cid in ans.grounding][:12]}


def _body(state: ResearchState, ctx: RunContext, visit: int, feedback: list[str]) -> dict:
    evidence = grounded_evidence(state, ctx, visit)
    msgs = render_messages("plan", idea=state["idea"], notes=notes_digest(state), feedback=feedback,
                           previous_plan=state.get("plan"), evidence=evidence)
    plan = ctx.llm.structured(msgs, Plan, phase="plan", purpose="plan",
                              memo_key=f"{memo_prefix('plan', visit)}/plan")
    out = {"plan": plan.model_dump(mode="json")}
    if evidence:
        out["plan"]["evidence"] = evidence
    return out


def plan(state: ResearchState, runtime: Runtime[RunContext]) -> Command[Literal["checkpoint"]]:
    return run_phase("plan", state, runtime.context, _body)
