"""The checkpoint: the human stop after every phase, and how an answer becomes the graph's next step.

("Checkpoint" here always means this stop; the persistence of state after every step is the
*saver*, see agentlab.graph. Vocabulary: agentlab/phases/spec.py.)

The `checkpoint` node runs after every phase. It interrupts when the settings stop after this phase
(its stop label is in `checkpoints`), or when the phase stopped on a problem (budget, endpoint, bad
output). What it shows, which answers it takes and where they lead come from the phase table.
Answers are plain dicts so they travel through `Command(resume=...)` and the CLI alike:

  {"action": "approve"}
  {"action": "feedback", "text": "..."}              go on; the next phase must take the text into account
  {"action": "edit", "plan": {...}}                  replace the plan (plan checkpoint), then go on
  {"action": "back", "phase": "plan", "text": "..."} return to an earlier phase with feedback
  {"action": "retry"}                                after a stop: run the stopped phase again
  {"action": "reject"}                               end the run without accepting the report
"""

from __future__ import annotations

import time
from typing import Any, Literal

from langgraph.runtime import Runtime
from langgraph.types import Command, interrupt
from pydantic import ValidationError

from agentlab.phases import spec
from agentlab.phases.common import RunContext
from agentlab.schemas import Plan
from agentlab.state import Decision, ResearchState

ACTIONS = ("approve", "feedback", "edit", "back", "retry", "reject")
#: where the checkpoint may go: any phase, itself (an answer was refused), or the end (tested against the table)
CheckpointExit = Literal["literature_review", "plan", "experiment", "interpret", "write_report", "review",
                         "checkpoint", "__end__"]


class BadDecision(ValueError):
    pass


def exits() -> tuple[str, ...]:
    """Every node the checkpoint may go to, from the table."""
    return (*spec.phase_names(), spec.CHECKPOINT, spec.END)


def phase_name(text: str) -> str:
    """The phase a `back` answer names (a phase name or one of its back aliases)."""
    try:
        return spec.resolve_back(text)
    except spec.UnknownName as exc:
        raise BadDecision(str(exc)) from None


def validate_decision(decision: Any, payload: dict) -> dict:
    """Check an answer before it is sent to the graph (the CLI calls this; the node calls it again)."""
    if not isinstance(decision, dict) or decision.get("action") not in ACTIONS:
        raise BadDecision(f"an answer must be one of {', '.join(ACTIONS)}")
    a = decision["action"]
    names = spec.phase_names()
    if a == "feedback" and not str(decision.get("text", "")).strip():
        raise BadDecision("feedback needs some text")
    if a == "back":
        target = phase_name(str(decision.get("phase", "")))
        done = payload.get("phase")
        if done in names and names.index(target) > names.index(done):
            raise BadDecision(f"cannot go back to {target}: it comes after {done}")
        decision = {**decision, "phase": target}
    if a == "edit":
        if "edit" not in _answers(payload.get("phase")):
            raise BadDecision("edit applies to the plan, at the plan checkpoint")
        try:
            decision = {**decision, "plan": Plan.model_validate(decision.get("plan")).model_dump(mode="json")}
        except ValidationError as exc:
            raise BadDecision(f"the edited plan is invalid: {exc}") from exc
    blocked = (payload.get("summary") or {}).get("blocked") if isinstance(payload.get("summary"), dict) else None
    if a == "approve" and blocked and payload.get("kind") == "checkpoint":
        raise BadDecision(blocked)
    if a == "retry" and payload.get("kind") == "checkpoint":
        raise BadDecision("retry is for a stopped phase; use approve, feedback or back here")
    return decision


def _answers(phase: Any) -> tuple[str, ...]:
    return spec.spec(phase).answers if phase in spec.phase_names() else ()


def checkpoint_payload(state: ResearchState, ctx: RunContext) -> dict | None:
    """What the person is shown (the interrupt's value), or None when this checkpoint does not stop."""
    stop = state.get("stop")
    if stop:
        return {"kind": stop["kind"], "phase": stop["phase"], "message": stop["message"],
                "options": ["retry", "back <phase>", "feedback <text>"]}
    phase = state.get("phase", "")
    stage = stage_in_progress(state, phase)
    if stage:
        asks = ctx.settings.stops_after(phase, stage)
    else:
        last = spec.spec(phase).stages[-1:] if phase in spec.phase_names() else ()
        asks = ctx.settings.stops_after(phase) or any(ctx.settings.stops_after(phase, s) for s in last)
    shown = summary(state, phase)
    if shown.get("blocked"):  # a report that cannot be accepted always stops, and says why
        return {"kind": "checkpoint", "phase": phase, "summary": shown, "message": shown["blocked"],
                "options": ["back <phase>", *_answers(phase)]}
    if not asks:
        return None
    options = ["approve", "feedback <text>", "back <phase>", *_answers(phase)]
    out = {"kind": "checkpoint", "phase": phase, "summary": shown, "options": options}
    if stage:
        out["stage"] = stage
    return out


def stage_in_progress(state: ResearchState, phase: str) -> str | None:
    """The stage just finished when `phase` has stages and more remain (its record `state[phase]` is not done)."""
    if phase not in spec.phase_names() or not spec.spec(phase).stages:
        return None
    rec = state.get(phase) or {}  # type: ignore[misc]
    return None if rec.get("done") or not rec.get("stage") else rec["stage"]


def summary(state: ResearchState, phase: str) -> dict:
    """The table's summary of what `phase` produced."""
    return spec.spec(phase).summary(state) if phase in spec.phase_names() else {}


def checkpoint(state: ResearchState, runtime: Runtime[RunContext]) -> Command[CheckpointExit]:
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
            return Command(goto=spec.CHECKPOINT, update={"human": _log(state, {"refused": str(exc), **decision})})
    return apply_decision(state, decision, stopped)


def _log(state: ResearchState, entry: dict) -> list[Decision]:
    return list(state.get("human") or []) + [{**entry, "ts": time.time()}]


def apply_decision(state: ResearchState, decision: dict, stopped: bool) -> Command[CheckpointExit]:
    """Where a (validated) answer leads, and what it changes in the state."""
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
        return Command(goto=spec.END, update=update)
    if a == "back":
        target = decision["phase"]
        if decision.get("text"):
            feedback[target] = feedback.get(target, []) + [decision["text"]]
        update["feedback"] = feedback
        return Command(goto=target, update=update)
    nxt = phase if stopped or stage_in_progress(state, phase) else spec.next_phase(phase)
    if nxt == spec.END:
        revise = spec.spec(phase).revise
        if a == "feedback" and revise:  # feedback on the last phase's output means: redo `revise` with it
            feedback[revise] = feedback.get(revise, []) + [decision["text"]]
            update["feedback"] = feedback
            return Command(goto=revise, update=update)
        update["done"] = True
        return Command(goto=spec.END, update=update)
    if a == "feedback":
        feedback[nxt] = feedback.get(nxt, []) + [decision["text"]]
        update["feedback"] = feedback
    if a == "edit":
        update["plan"] = decision["plan"]
    return Command(goto=nxt, update=update)
