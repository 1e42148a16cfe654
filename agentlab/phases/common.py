"""What every phase node shares: the run context, the visit counter, and turning failures into stops.

A phase that fails with a `Resumable` error (agentlab.errors: budget, endpoint down, bad model output,
sandbox missing, LaTeX that would not compile) does not crash the run: it records a `stop` and goes
to the checkpoint node, which parks the run at an interrupt. `agentlab resume` then retries the phase;
memoised LLM calls and finished sandbox jobs are reused, so nothing that succeeded is paid twice.
"""

from __future__ import annotations

import traceback
from dataclasses import dataclass, field
from typing import Any, Callable

from langgraph.types import Command

from agentlab.config import Settings
from agentlab.errors import Resumable
from agentlab.llm import LLM
from agentlab.phases import spec
from agentlab.runs import RunDir
from agentlab.state import ResearchState


@dataclass
class RunContext:
    """Handed to every node through LangGraph's runtime context (never checkpointed)."""

    settings: Settings
    run: RunDir
    llm: LLM
    progress: Callable[[str, str], None] = field(default=lambda phase, msg: None)


class PhaseStop(Resumable, RuntimeError):
    """A phase cannot go on; the message tells the person what to do. The run stays resumable."""


def next_phase(phase: str) -> str:
    """The phase after `phase` in the table's order, or END."""
    return spec.next_phase(phase)


def run_phase(name: str, state: ResearchState, ctx: RunContext,
              body: Callable[[ResearchState, RunContext, int, list[str]], dict[str, Any]],
              goto: str | Callable[[dict[str, Any]], str] = spec.CHECKPOINT) -> Command:
    """Run a phase body with its visit number and pending feedback; map failures to a stop.

    The body's update goes to `goto` (a node, or a function of the update); a failure goes to the
    checkpoint. Either way the target must be one of the phase's exits in the table."""
    visits = dict(state.get("visits") or {})
    visit = visits.get(name, 0) + 1
    feedback = list((state.get("feedback") or {}).get(name, []))
    ctx.progress(name, "started")
    ctx.run.log(f"phase {name} started (visit {visit})")
    try:
        update = body(state, ctx, visit, feedback)
    except Resumable as exc:  # a failure a person can fix: budget, endpoint, sandbox, LaTeX, ...
        ctx.run.log(f"phase {name} stopped: {exc}")
        ctx.progress(name, f"stopped: {exc}")
        return _stop(name, exc, exc.stop_kind, str(exc), getattr(exc, "update", None))
    except Exception as exc:  # a bug or an unexpected failure: stop resumably, keep the traceback in the log
        ctx.run.log(f"phase {name} crashed:\n{traceback.format_exc()}")
        ctx.progress(name, f"stopped: {type(exc).__name__}: {exc}")
        return _stop(name, exc, "error", f"unexpected {type(exc).__name__}: {exc} (traceback in {ctx.run.log_path})")
    visits[name] = visit
    pending = dict(update.get("feedback", state.get("feedback") or {}))
    pending.pop(name, None)
    update.update({"phase": name, "visits": visits, "feedback": pending, "stop": None})
    ctx.run.log(f"phase {name} done")
    ctx.progress(name, "done")
    target = goto(update) if callable(goto) else goto
    assert target in spec.spec(name).exits, f"{name} may not go to {target}: see agentlab/phases/spec.py"
    return Command(goto=target, update=update)


def _stop(name: str, exc: Exception, kind: str, message: str, keep: dict | None = None) -> Command:
    """The stop record that parks the run at the checkpoint (one shape for every kind of stop); `keep` is
    state the phase made before it stopped and must not lose (an experiment stage's nodes so far)."""
    return Command(goto=spec.CHECKPOINT, update={**(keep or {}), "stop": {
        "kind": kind, "phase": name, "message": message, "error_type": type(exc).__name__,
        **({"exceeded": exc.payload} if kind == "budget" and isinstance(getattr(exc, "payload", None), dict) else {})}})


def memo_prefix(name: str, visit: int) -> str:
    return f"{name}/v{visit}"


def clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 15] + " …[truncated]"
