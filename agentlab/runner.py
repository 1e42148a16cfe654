"""Driving a run: start or resume the graph, show progress, answer or park at checkpoints.

The same loop serves the interactive CLI (a person answers at each interrupt), headless runs
(`approve` answers automatically, `park` exits and prints how to resume) and batch runs.

The API the commands call (`agentlab run`, `agentlab resume`, `agentlab review --accept/--revise`):

  create_run(settings, idea) -> RunDir              a new run directory with its settings frozen
  start_run(run, settings, idea, console, ...)      drive a new run until it ends, parks or stops
  resume_run(run, decision, overrides=..., ...)     answer what the run waits on (or continue it)

Both return an `Outcome`; a request that cannot be carried out raises `RunnerError` (the message
says why and what to do), `NeedsDecision` when a checkpoint waits and nobody answered it.
"""

from __future__ import annotations

import os
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from langgraph.types import Command
from rich.console import Console

from agentlab.config import ConfigError, Settings, settings_from_run
from agentlab.endpoint import resolve_endpoint
from agentlab.graph import compile_graph, open_saver
from agentlab.llm import LLM, Budget, LLMError
from agentlab.phases.common import RunContext
from agentlab.progress import Progress
from agentlab.runs import RunDir

Asker = Callable[[dict], dict]


@dataclass
class Outcome:
    """How driving a run ended; `payload` is what it waits on when parked or stopped."""

    status: str  # done | parked | stopped | rejected | interrupted
    payload: dict | None = None
    ran: bool = True  # False: the run was already finished and nothing was driven

    @property
    def exit_code(self) -> int:
        return {"done": 0, "parked": 0, "rejected": 0, "stopped": 3, "interrupted": 130}[self.status]


class RunnerError(Exception):
    """A start or resume request that cannot be carried out; the message says why and what to do."""


class NeedsDecision(RunnerError):
    """The run waits at a checkpoint, and neither a decision nor an asker was given to answer it."""

    def __init__(self, run: RunDir, payload: dict):
        super().__init__(f"run {run.id} waits at the {payload.get('phase')} checkpoint")
        self.run, self.payload = run, payload


def graph_config(run: RunDir) -> dict:
    """The LangGraph config that addresses this run's thread."""
    return {"configurable": {"thread_id": run.id}, "recursion_limit": 200}


def pending_interrupt(run: RunDir, settings: Settings) -> tuple[dict | None, dict]:
    """(the payload the run waits on or None, the current state values), read without running anything."""
    with open_saver(run.checkpoint_db, settings.checkpointer_url) as saver:
        snap = compile_graph(saver).get_state(graph_config(run))
        payload = snap.interrupts[0].value if snap.interrupts else None
        return payload, dict(snap.values or {})


def drive(run: RunDir, settings: Settings, first: Any, console: Console, asker: Asker | None = None,
          live: bool | None = None) -> Outcome:
    """Run the graph from `first` (initial state, a Command, or None to continue) until it ends or parks."""
    meta = run.meta()
    budget = Budget(settings.max_cost, settings.max_tokens, settings.max_minutes,
                    minutes_before=float(meta.get("active_minutes", 0.0)))
    started = time.monotonic()
    run.write_meta(status="running", pid=os.getpid())
    outcome = Outcome("interrupted")
    try:
        with resolve_endpoint(settings, console) as eff:
            ledger = run.ledger
            llm = LLM(eff, ledger, budget, memo_dir=run.memo_dir)
            live = console.is_terminal if live is None else live
            with Progress(console, ledger, live=live) as prog:
                llm.listeners.append(prog.on_llm)
                ctx = RunContext(settings=eff, run=run, llm=llm, progress=lambda ph, m: _on_progress(run, prog, ph, m))
                with open_saver(run.checkpoint_db, settings.checkpointer_url) as saver:
                    outcome = _loop(run, settings, compile_graph(saver), ctx, first, prog, asker)
    finally:
        active = float(meta.get("active_minutes", 0.0)) + (time.monotonic() - started) / 60.0
        run.write_meta(status=outcome.status, active_minutes=round(active, 4), pid=None,
                       waiting=outcome.payload if outcome.status in ("parked", "stopped") else None)
    return outcome


def create_run(settings: Settings, idea: str) -> RunDir:
    """A new run directory under settings.runs_dir for `idea`, with the settings it will run with."""
    run = RunDir.create(Path(settings.runs_dir), idea.strip())
    settings.save(run.settings_path)
    return run


def start_run(run: RunDir, settings: Settings, idea: str, console: Console, asker: Asker | None = None,
              live: bool | None = None) -> Outcome:
    """Drive a new run from its idea until it ends, parks or stops (asker: who answers checkpoints)."""
    return _drive_guarded(run, settings, {"idea": idea.strip()}, console, asker, live)


def resume_run(run: RunDir, decision: dict | None = None, *, console: Console,
               overrides: Mapping[str, Any] | None = None, asker: Asker | None = None,
               live: bool | None = None) -> Outcome:
    """Continue `run` in this process: answer the checkpoint (or stop) it waits on, then drive it on.

    decision: an answer dict (see agentlab.phases.checkpoint); `approve` on a stopped phase means retry it. Without
    one, a stopped phase is retried and a checkpoint is put to `asker` (NeedsDecision if there is none).
    overrides: settings to change for this and later resumes (budgets, endpoint, sandbox, ...).
    """
    from agentlab.phases.checkpoint import BadDecision, validate_decision

    if run.effective_status() == "running":
        raise RunnerError(f"run {run.id} is running in process {run.meta().get('pid')}; stop it first")
    try:
        settings = settings_from_run(run.settings_path, dict(overrides or {}))
    except ConfigError as exc:
        raise RunnerError(str(exc)) from exc
    settings.save(run.settings_path)
    payload, values = pending_interrupt(run, settings)
    if values.get("done"):
        return Outcome("done", ran=False)
    if payload is None:
        if decision is not None:
            console.print("[yellow]The run is not waiting at a checkpoint; continuing where it stopped.[/]")
        return _drive_guarded(run, settings, None, console, asker, live)
    if decision is None:
        if payload["kind"] != "checkpoint":
            decision = {"action": "retry"}
        elif asker is None:
            raise NeedsDecision(run, payload)
        else:
            decision = asker(payload)
    elif decision.get("action") == "approve" and payload["kind"] != "checkpoint":
        decision = {**decision, "action": "retry"}
    try:
        decision = validate_decision(decision, payload)
    except BadDecision as exc:
        raise RunnerError(f"{exc}. Nothing changed; the run still waits at {payload['phase']}.") from exc
    return _drive_guarded(run, settings, Command(resume=decision), console, asker, live)


def _drive_guarded(run: RunDir, settings: Settings, first: Any, console: Console, asker: Asker | None,
                   live: bool | None) -> Outcome:
    """drive(), with Ctrl-C as an `interrupted` outcome and an endpoint failure as a RunnerError."""
    try:
        return drive(run, settings, first, console, asker=asker, live=live)
    except KeyboardInterrupt:
        run.write_meta(status="interrupted", pid=None)
        return Outcome("interrupted")
    except LLMError as exc:
        run.write_meta(status="stopped", pid=None)
        raise RunnerError(f"{exc}\nThe run is saved: agentlab resume {run.id}") from exc


def _on_progress(run: RunDir, prog: Progress, phase: str, msg: str) -> None:
    if msg == "started":
        run.write_meta(phase=phase)
    prog.on_phase(phase, msg)


def _loop(run: RunDir, settings: Settings, graph, ctx: RunContext, first: Any, prog: Progress,
          asker: Asker | None) -> Outcome:
    config = graph_config(run)
    inp = first
    for _ in range(1000):  # bounded: each turn is one human answer
        for _chunk in graph.stream(inp, config, context=ctx, stream_mode="updates", durability="sync"):
            pass
        snap = graph.get_state(config)
        if not snap.interrupts:
            values = snap.values or {}
            return Outcome("rejected" if values.get("rejected") else "done")
        payload = snap.interrupts[0].value
        run.write_meta(phase=payload.get("phase", ""))
        if asker is not None:
            prog.pause()
            decision = asker(payload)
            prog.resume()
        elif payload["kind"] == "checkpoint" and settings.on_checkpoint == "approve" and \
                "approve" in payload.get("options", ["approve"]):
            decision = {"action": "approve"}
        elif payload["kind"] == "checkpoint" and payload.get("message"):  # it cannot be approved (a blocked report)
            return Outcome("stopped", payload)
        else:
            return Outcome("parked" if payload["kind"] == "checkpoint" else "stopped", payload)
        run.log(f"human at {payload.get('phase')}: {decision}")
        inp = Command(resume=decision)
    raise RuntimeError("too many checkpoint turns")  # pragma: no cover
