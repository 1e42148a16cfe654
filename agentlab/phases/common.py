"""What every phase node shares: the run context, the visit counter, and turning failures into stops.

A phase that fails for a reason a person can fix (budget, endpoint down, bad model output, sandbox
missing, LaTeX that would not compile) does not crash the run: it records a `stop` and goes to the
checkpoint node, which parks the run at an interrupt. `agentlab resume` then retries the phase;
memoised LLM calls and finished sandbox jobs are reused, so nothing that succeeded is paid twice.
"""

from __future__ import annotations

import traceback
from dataclasses import dataclass, field
from typing import Any, Callable

from langgraph.types import Command

from agentlab.config import PHASES, Settings
from agentlab.llm import LLM, BudgetExceeded, LLMError
from agentlab.runs import RunDir
from agentlab.state import ResearchState


@dataclass
class RunContext:
    """Handed to every node through LangGraph's runtime context (never checkpointed)."""

    settings: Settings
    run: RunDir
    llm: LLM
    progress: Callable[[str, str], None] = field(default=lambda phase, msg: None)


class PhaseStop(RuntimeError):
    """A phase cannot go on; the message tells the person what to do. The run stays resumable."""


def _stop_errors() -> tuple[type[BaseException], ...]:
    from agentlab.literature.arxiv_source import LiteratureUnavailable
    from agentlab.report import ReportFailed
    from agentlab.sandbox.base import SandboxUnavailable

    return (BudgetExceeded, LLMError, PhaseStop, LiteratureUnavailable, SandboxUnavailable, ReportFailed)


def next_phase(phase: str) -> str:
    i = PHASES.index(phase)
    return PHASES[i + 1] if i + 1 < len(PHASES) else "__end__"


def run_phase(name: str, state: ResearchState, ctx: RunContext,
              body: Callable[[ResearchState, RunContext, int, list[str]], dict[str, Any]],
              goto: str | Callable[[dict[str, Any]], str] = "checkpoint") -> Command:
    """Run a phase body with its visit number and pending feedback; map failures to a stop."""
    visits = dict(state.get("visits") or {})
    visit = visits.get(name, 0) + 1
    feedback = list((state.get("feedback") or {}).get(name, []))
    ctx.progress(name, "started")
    ctx.run.log(f"phase {name} started (visit {visit})")
    try:
        update = body(state, ctx, visit, feedback)
    except _stop_errors() as exc:
        kind = "budget" if isinstance(exc, BudgetExceeded) else "error"
        ctx.run.log(f"phase {name} stopped: {exc}")
        ctx.progress(name, f"stopped: {exc}")
        return Command(goto="checkpoint", update={"stop": {"kind": kind, "phase": name, "message": str(exc),
                                                           "error_type": type(exc).__name__}})
    except Exception as exc:  # a bug or an unexpected failure: stop resumably, keep the traceback in the log
        ctx.run.log(f"phase {name} crashed:\n{traceback.format_exc()}")
        ctx.progress(name, f"stopped: {type(exc).__name__}: {exc}")
        return Command(goto="checkpoint", update={"stop": {
            "kind": "error", "phase": name, "error_type": type(exc).__name__,
            "message": f"unexpected {type(exc).__name__}: {exc} (traceback in {ctx.run.log_path})"}})
    visits[name] = visit
    pending = dict(update.get("feedback", state.get("feedback") or {}))
    pending.pop(name, None)
    update.update({"phase": name, "visits": visits, "feedback": pending, "stop": None})
    ctx.run.log(f"phase {name} done")
    ctx.progress(name, "done")
    target = goto(update) if callable(goto) else goto
    return Command(goto=target, update=update)


def memo_prefix(name: str, visit: int) -> str:
    return f"{name}/v{visit}"


def clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 15] + " …[truncated]"
