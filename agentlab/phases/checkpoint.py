"""The checkpoint: the human stop after every phase, and how an answer becomes the graph's next step.

("Checkpoint" here always means this stop; the persistence of state after every step is the
*saver*, see agentlab.graph. Vocabulary: agentlab/phases/spec.py.)

The `checkpoint` node runs after every phase. It interrupts when the settings stop after this phase
(its stop label is in `checkpoints`), or when the phase stopped on a problem (budget, endpoint, bad
output). What it shows, which answers it takes and where they lead come from the phase table.
Answers are plain dicts so they travel through `Command(resume=...)` and the CLI alike:

  {"action": "approve"}
  {"action": "feedback", "text": "..."}              go on; the next phase must take the text into account
                                                     (at the plan checkpoint: re-plan with it, then ask again)
  {"action": "edit", "plan": {...}}                  replace the plan (plan checkpoint), then go on
  {"action": "back", "phase": "plan", "text": "..."} return to an earlier phase with feedback
  {"action": "retry"}                                after a stop: run the stopped phase again
  {"action": "retry", "settings": {"max_tokens": N}} after a budget stop: raise a budget (max_tokens, max_cost,
                                                     max_minutes), then run the stopped phase again
  {"action": "reject"}                               end the run without accepting the report (review checkpoint)

Only the answers a checkpoint offers (the payload's `options`) are taken; any other is refused with a
message naming them (`BadDecision`), whether it was typed at the prompt or given by resume flags.
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
#: the action each answer word of an option line becomes (`raise` is a retry with raised budgets)
WORD_ACTION = {"approve": "approve", "feedback": "feedback", "edit": "edit", "back": "back", "retry": "retry",
               "raise": "retry", "reject": "reject"}
#: the budgets `raise` may set: the word a person types -> the setting it changes
BUDGETS = {"tokens": "max_tokens", "cost": "max_cost", "minutes": "max_minutes"}
RAISE_OPTION = f"raise <{'|'.join(BUDGETS)}> N"
#: phases whose checkpoint feedback is about their own output: the phase runs again with it, then asks again
REDO_WITH_FEEDBACK = ("plan",)
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


def stop_options(kind: str) -> list[str]:
    """The answers a stopped phase offers: a budget stop is answered by raising a budget, any other by retrying."""
    return [RAISE_OPTION if kind == "budget" else "retry", "back <phase>", "feedback <text>"]


def offered(payload: dict) -> list[str]:
    """The answers this checkpoint (or stop) offers, as its option line shows them."""
    if isinstance(payload.get("options"), list):
        return list(payload["options"])
    if payload.get("kind", "checkpoint") != "checkpoint":
        return stop_options(payload.get("kind", ""))
    return ["approve", "feedback <text>", "back <phase>", *_answers(payload.get("phase"))]


def offered_actions(payload: dict) -> set[str]:
    """The actions of the answers offered here."""
    return {WORD_ACTION.get(o.split()[0], o.split()[0]) for o in offered(payload) if o.split()}


def where(payload: dict) -> str:
    """`the plan checkpoint`, or `this stop (budget in plan)`."""
    if payload.get("kind", "checkpoint") == "checkpoint":
        return f"the {payload.get('phase')} checkpoint"
    return f"this stop ({payload.get('kind')} in {payload.get('phase')})"


def refusal(what: str, payload: dict) -> BadDecision:
    """An answer that is not offered here, refused with the answers that are."""
    return BadDecision(f"{what} is not an answer at {where(payload)}; answer one of: {', '.join(offered(payload))}")


def validate_decision(decision: Any, payload: dict) -> dict:
    """Check an answer before it is sent to the graph (the CLI calls this; the node calls it again).

    Only the answers the checkpoint offers (`offered(payload)`) are taken."""
    if not isinstance(decision, dict) or decision.get("action") not in ACTIONS:
        what = repr(decision.get("action")) if isinstance(decision, dict) else repr(decision)
        raise refusal(what, payload)
    a = decision["action"]
    summary_ = payload.get("summary") if isinstance(payload.get("summary"), dict) else {}
    if a == "approve" and summary_.get("blocked") and payload.get("kind") == "checkpoint":
        raise BadDecision(summary_["blocked"])
    if a not in offered_actions(payload):
        hint = {"edit": "edit applies to the plan, at the plan checkpoint",
                "retry": "retry is for a stopped phase"}.get(a)
        raise refusal(f"{a} ({hint})" if hint else a, payload)
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
        try:
            decision = {**decision, "plan": Plan.model_validate(decision.get("plan")).model_dump(mode="json")}
        except ValidationError as exc:
            raise BadDecision(f"the edited plan is invalid: {exc}") from exc
    if decision.get("settings") is not None:
        decision = {**decision, "settings": raised_budgets(decision, payload)}
    return decision


def raised_budgets(decision: dict, payload: dict) -> dict:
    """The budgets a `retry` raises (`{"max_tokens": N}`, ...), checked: a budget stop, known names, each above
    what is already used."""
    settings = decision.get("settings")
    if decision.get("action") != "retry" or payload.get("kind") != "budget":
        raise BadDecision(f"raising a budget is an answer to a budget stop, not to {where(payload)}")
    if not isinstance(settings, dict) or not settings:
        raise BadDecision(f"say which budget to raise and to what: {RAISE_OPTION}")
    usage = payload.get("budget") if isinstance(payload.get("budget"), dict) else {}
    out: dict[str, float | int] = {}
    for key, val in settings.items():
        which = next((w for w, k in BUDGETS.items() if k == key), None)
        if which is None:
            raise BadDecision(f"unknown budget {key!r}: raise one of {', '.join(BUDGETS)}")
        if isinstance(val, bool) or not isinstance(val, (int, float)) or not val > 0:
            raise BadDecision(f"the {which} budget must be a positive number, not {val!r}")
        if which == "tokens" and float(val) != int(val):
            raise BadDecision(f"the tokens budget is a whole number, not {val!r}")
        used = (usage.get(which) or {}).get("used")
        exceeded = payload.get("exceeded") if isinstance(payload.get("exceeded"), dict) else {}
        if exceeded.get("which") == which and isinstance(exceeded.get("used"), (int, float)):
            need = exceeded["used"] + (exceeded.get("estimate") or 0)  # what stopped it: used + the next call
            if val < need:
                raise BadDecision(f"{_n(val)} {which} would stop the run again: {_n(exceeded['used'])} are used and "
                                  f"the next call may take up to {_n(exceeded.get('estimate') or 0)}; raise it to at "
                                  f"least {_n(need)} (suggested: {_n(exceeded.get('suggested', need))})")
        elif isinstance(used, (int, float)) and val <= used:
            raise BadDecision(f"{_n(val)} {which} would stop the run again: {_n(used)} are used already; "
                              f"raise it above that")
        out[key] = int(val) if which == "tokens" else float(val)
    return out


def _n(x: Any) -> str:
    """A number as a person writes it: 5000000, 2.5 (never 5e+06)."""
    return str(int(x)) if isinstance(x, (int, float)) and float(x).is_integer() else f"{x:.6g}" \
        if isinstance(x, float) else str(x)


def _answers(phase: Any) -> tuple[str, ...]:
    return spec.spec(phase).answers if phase in spec.phase_names() else ()


def checkpoint_payload(state: ResearchState, ctx: RunContext) -> dict | None:
    """What the person is shown (the interrupt's value), or None when this checkpoint does not stop."""
    stop = state.get("stop")
    if stop:
        out = {"kind": stop["kind"], "phase": stop["phase"], "message": stop["message"],
               "options": stop_options(stop["kind"])}
        if stop["kind"] == "budget":
            out["budget"] = budget_usage(ctx)
            if stop.get("exceeded"):  # which limit, used, limit, estimate, suggested: see agentlab/llm/budget.py
                out["exceeded"] = stop["exceeded"]
        return out
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


def budget_usage(ctx: Any) -> dict:
    """Each budget's use and limit now (what a budget stop shows): {"tokens": {"used": .., "limit": ..}, ...}."""
    llm = getattr(ctx, "llm", None)
    budget = getattr(llm, "budget", None)
    settings = getattr(ctx, "settings", None)
    try:
        totals = llm.ledger.totals() if llm is not None else {}
    except (OSError, ValueError, AttributeError):
        totals = {}
    minutes = budget.minutes_used() if budget is not None else None
    used = {"tokens": totals.get("tokens"), "cost": totals.get("cost"),
            "minutes": round(minutes, 2) if minutes is not None else None}
    return {which: {"used": used[which], "limit": getattr(budget if budget is not None else settings, key, None)}
            for which, key in BUDGETS.items()}


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
    if a == "feedback" and not stopped and phase in REDO_WITH_FEEDBACK:  # re-plan with it; the checkpoint asks again
        feedback[phase] = feedback.get(phase, []) + [decision["text"]]
        update["feedback"] = feedback
        return Command(goto=phase, update=update)
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
