"""Human checkpoints: what the person is asked, and how an answer becomes the graph's next step.

The `checkpoint` node runs after every phase. It interrupts when the settings say this phase stops
for a human, or when the phase stopped on a problem (budget, endpoint, bad output). Answers are
plain dicts so they travel through `Command(resume=...)` and the CLI alike:

  {"action": "approve"}
  {"action": "feedback", "text": "..."}              go on; the next phase must take the text into account
  {"action": "edit", "plan": {...}}                  replace the plan (plan checkpoint), then go on
  {"action": "back", "phase": "plan", "text": "..."} return to an earlier phase with feedback
  {"action": "retry"}                                after a stop: run the stopped phase again
  {"action": "reject"}                               end the run without accepting the report
"""

from __future__ import annotations

import time
from typing import Any

from langgraph.runtime import Runtime
from langgraph.types import Command, interrupt
from pydantic import ValidationError

from agentlab.config import CHECKPOINTS, PHASES
from agentlab.phases.common import RunContext, next_phase
from agentlab.schemas import Plan
from agentlab.state import ResearchState

ALIASES = {"literature": "literature_review", "report": "write_report", "experiments": "experiment",
           "interpretation": "interpret"}
ACTIONS = ("approve", "feedback", "edit", "back", "retry", "reject")


class BadDecision(ValueError):
    pass


def phase_name(text: str) -> str:
    name = ALIASES.get(text, text)
    if name not in PHASES:
        raise BadDecision(f"unknown phase {text!r}: use one of {', '.join(list(CHECKPOINTS) + list(PHASES))}")
    return name


def validate_decision(decision: Any, payload: dict) -> dict:
    """Check an answer before it is sent to the graph (the CLI calls this; the node calls it again)."""
    if not isinstance(decision, dict) or decision.get("action") not in ACTIONS:
        raise BadDecision(f"an answer must be one of {', '.join(ACTIONS)}")
    a = decision["action"]
    if a == "feedback" and not str(decision.get("text", "")).strip():
        raise BadDecision("feedback needs some text")
    if a == "back":
        target = phase_name(str(decision.get("phase", "")))
        done = payload.get("phase")
        if done in PHASES and PHASES.index(target) > PHASES.index(done):
            raise BadDecision(f"cannot go back to {target}: it comes after {done}")
        decision = {**decision, "phase": target}
    if a == "edit":
        if payload.get("phase") != "plan":
            raise BadDecision("edit applies to the plan, at the plan checkpoint")
        try:
            decision = {**decision, "plan": Plan.model_validate(decision.get("plan")).model_dump(mode="json")}
        except ValidationError as exc:
            raise BadDecision(f"the edited plan is invalid: {exc}") from exc
    if a == "retry" and payload.get("kind") == "checkpoint":
        raise BadDecision("retry is for a stopped phase; use approve, feedback or back here")
    return decision


def checkpoint_payload(state: ResearchState, ctx: RunContext) -> dict | None:
    stop = state.get("stop")
    if stop:
        return {"kind": stop["kind"], "phase": stop["phase"], "message": stop["message"],
                "options": ["retry", "back <phase>", "feedback <text>"]}
    phase = state.get("phase", "")
    if not ctx.settings.stops_after(phase):
        return None
    options = ["approve", "feedback <text>", "back <phase>"] + (["edit"] if phase == "plan" else [])
    if phase == "review":
        options.append("reject")
    return {"kind": "checkpoint", "phase": phase, "summary": summary(state, phase), "options": options}


def summary(state: ResearchState, phase: str) -> dict:
    if phase == "literature_review":
        return {"papers": [f"[{p['id']}] {p['title']}" for p in state.get("papers") or []],
                "failures": state.get("literature_failures") or []}
    if phase == "plan":
        return {"plan": state.get("plan")}
    if phase == "experiment":
        return {"attempts": [{k: a.get(k) for k in ("n", "status", "reason", "metrics")} for a in state.get("attempts") or []],
                "best_attempt": state.get("best_attempt")}
    if phase == "interpret":
        return {"interpretation": state.get("interpretation")}
    if phase == "review":
        rep = state.get("report") or {}
        last = (state.get("reviews") or [{}])[-1]
        return {"pdf": rep.get("pdf"), "revision": state.get("revision"), "overall": last.get("overall"),
                "decision": last.get("decision")}
    return {}


def checkpoint(state: ResearchState, runtime: Runtime[RunContext]) -> Command:
    ctx = runtime.context
    payload = checkpoint_payload(state, ctx)
    stopped = bool(state.get("stop"))
    if payload is None:
        decision = {"action": "approve"}
    else:
        decision = interrupt(payload)
        try:
            decision = validate_decision(decision, payload)
        except BadDecision as exc:  # refuse it and ask again, losing nothing
            ctx.run.log(f"checkpoint answer refused: {exc}")
            return Command(goto="checkpoint", update={"human": _log(state, {"refused": str(exc), **decision})})
    return apply_decision(state, decision, stopped)


def _log(state: ResearchState, entry: dict) -> list[dict]:
    return list(state.get("human") or []) + [{**entry, "ts": time.time()}]


def apply_decision(state: ResearchState, decision: dict, stopped: bool) -> Command:
    a = decision["action"]
    phase = state["stop"]["phase"] if stopped else state.get("phase", "")
    update: dict[str, Any] = {"human": _log(state, {"at": phase, **decision})}
    feedback = dict(state.get("feedback") or {})
    if stopped:
        update["stop"] = None
        if a in ("retry", "approve"):
            return Command(goto=phase, update=update)
    if a == "reject":
        update["done"] = True
        update["rejected"] = True
        return Command(goto="__end__", update=update)
    if a == "back":
        target = decision["phase"]
        if decision.get("text"):
            feedback[target] = feedback.get(target, []) + [decision["text"]]
        update["feedback"] = feedback
        return Command(goto=target, update=update)
    nxt = phase if stopped else next_phase(phase)
    if phase == "review" and nxt == "__end__":
        if a == "feedback":  # feedback on the final report means: revise it
            feedback["write_report"] = feedback.get("write_report", []) + [decision["text"]]
            update["feedback"] = feedback
            return Command(goto="write_report", update=update)
        update["done"] = True
        return Command(goto="__end__", update=update)
    if a == "feedback":
        feedback[nxt] = feedback.get(nxt, []) + [decision["text"]]
        update["feedback"] = feedback
    if a == "edit":
        update["plan"] = decision["plan"]
    return Command(goto=nxt, update=update)
