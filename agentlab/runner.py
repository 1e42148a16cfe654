"""Driving a run: start or resume the graph, show progress, answer or park at checkpoints.

The same loop serves the interactive CLI (a person answers at each interrupt), headless runs
(`approve` answers automatically, `park` exits and prints how to resume) and batch runs.

The API the commands call (`agentlab run`, `agentlab resume`, `agentlab review --accept/--revise`):

  create_run(settings, idea) -> RunDir              a new run directory with its settings frozen (after preflight)
  start_run(run, settings, idea, console, ...)      drive a new run until it ends, parks or stops
  resume_run(run, decision, overrides=..., ...)     answer what the run waits on (or continue it); the settings
                                                    are the saved ones < TOML file < environment < --set < flags

A decision may carry `"settings": {name: value}` (e.g. "raise tokens 50000" at a budget stop): they are
validated like resume flags, saved to settings.json, logged as an event, and the run goes on with them
(a new budget) before the answer itself is applied.

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

from agentlab.config import ConfigError, Settings, check_idea, describe_change, resume_settings, with_settings
from agentlab.endpoint import resolve_endpoint
from agentlab.graph import compile_graph, open_saver
from agentlab.llm import LLM, Budget, LLMError
from agentlab.llm.client import announce_prices
from agentlab.phases.common import RunContext
from agentlab.progress import Progress
from agentlab.runs import RunDir

Asker = Callable[[dict], dict]


@dataclass
class Outcome:
    """How driving a run ended; `payload` is what it waits on when parked or stopped."""

    status: str  # done | parked | stopped | rejected | interrupted (| reconfigure: inside the runner only)
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
    announce_prices(settings, console)  # models without a price: warn; refuse --max-cost (an LLMError) before any call
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
            with Progress(console, ledger, live=live, budget=budget) as prog:
                llm.listeners.append(prog.on_llm)
                ctx = RunContext(settings=eff, run=run, llm=llm, progress=lambda ph, m: _on_progress(run, prog, ph, m))
                with open_saver(run.checkpoint_db, settings.checkpointer_url) as saver:
                    outcome = _loop(run, settings, compile_graph(saver), ctx, first, prog, asker)
    finally:
        active = float(meta.get("active_minutes", 0.0)) + (time.monotonic() - started) / 60.0
        status = "running" if outcome.status == "reconfigure" else outcome.status  # reconfigure: driven again
        run.write_meta(status=status, active_minutes=round(active, 4), pid=None,
                       waiting=outcome.payload if outcome.status in ("parked", "stopped") else None)
    return outcome


def preflight(settings: Settings) -> None:
    """Refuse, before any LLM call, what the code can cheaply tell will not work: the sandbox backend's own
    availability check (auto: the first isolated backend that works here)."""
    from agentlab.sandbox import SandboxUnavailable, get_backend

    try:
        get_backend(settings.sandbox)
    except SandboxUnavailable as exc:
        raise RunnerError(f"{exc} (sandbox = {settings.sandbox!r}; e.g. --set sandbox=auto)") from None
    _check_prices(settings)


def _check_prices(settings: Settings) -> None:
    """--max-cost with a model that has no price cannot hold: refused before anything is created or saved."""
    from agentlab.llm.budget import check_prices

    try:
        check_prices(settings)
    except ConfigError as exc:
        raise RunnerError(f"{exc}. Nothing changed.") from None


def create_run(settings: Settings, idea: str) -> RunDir:
    """A new run directory under settings.runs_dir for `idea`, with the settings it will run with.
    The idea and the settings are checked first (ConfigError / RunnerError): nothing is created for a bad one."""
    idea = check_idea(idea)
    preflight(settings)
    run = RunDir.create(Path(settings.runs_dir), idea)
    settings.save(run.settings_path)
    return run


def record_changes(run: RunDir, changes: list[dict], console: Console | None, why: str) -> None:
    """Log settings changes as run events and say them (old -> new, and the source of each)."""
    for c in changes:
        run.event("settings", why=why, **c)
        if console is not None:
            console.print(f"setting changed: {describe_change(c)}", highlight=False, markup=False)


def start_run(run: RunDir, settings: Settings, idea: str, console: Console, asker: Asker | None = None,
              live: bool | None = None) -> Outcome:
    """Drive a new run from its idea until it ends, parks or stops (asker: who answers checkpoints)."""
    return _drive_guarded(run, settings, {"idea": idea.strip()}, console, asker, live)


def resume_run(run: RunDir, decision: dict | None = None, *, console: Console,
               overrides: Mapping[str, Any] | None = None, asker: Asker | None = None,
               live: bool | None = None, config_file: str | Path | None = None,
               set_values: Mapping[str, Any] | None = None, env: Mapping[str, str] | None = None) -> Outcome:
    """Continue `run` in this process: answer the checkpoint (or stop) it waits on, then drive it on.

    decision: an answer dict (see agentlab.phases.checkpoint); `approve` on a stopped phase means retry it; an
    `edit` plan may be partial (its fields replace the current plan's). Without one, a stopped phase is retried
    and a checkpoint is put to `asker`, approved when headless with on_checkpoint = approve, else NeedsDecision.
    overrides / set_values / config_file / env: the flags, --set, TOML file and environment layered over the
    saved settings (in that order of precedence, flags highest); what they change is saved, logged and printed.
    Nothing is saved or changed when the request is refused (RunnerError).
    """
    if run.effective_status() == "running":
        raise RunnerError(f"run {run.id} is running in process {run.meta().get('pid')}; stop it first")
    try:
        settings, changes = resume_settings(run.settings_path, config_file, overrides, set_values, env)
        if decision and decision.get("settings"):  # names and values checked like flags, before anything is read
            with_settings(settings, decision["settings"], "answer")
    except ConfigError as exc:
        raise RunnerError(f"{exc}. Nothing changed; the run is as it was.") from exc
    payload, values = pending_interrupt(run, settings)
    if values.get("done"):
        return Outcome("done", ran=False)
    preflight(settings)
    if payload is not None:  # the answer, checked by the checkpoint (a budget raised must be above what is used)
        decision = _answer(run, payload, values, decision, settings, asker)
    if decision and decision.get("settings"):
        decision = dict(decision)
        try:
            settings, more = with_settings(settings, decision.pop("settings"), "answer")
        except ConfigError as exc:
            raise RunnerError(f"{exc}. Nothing changed; the run is as it was.") from exc
        changes = [c for c in changes if c["setting"] not in {m["setting"] for m in more}] + more
        _check_prices(settings)
    settings.save(run.settings_path)
    record_changes(run, changes, console, "resume")
    if payload is None:
        if decision is not None:
            console.print("[yellow]The run is not waiting at a checkpoint; continuing where it stopped.[/]")
        return _drive_guarded(run, settings, None, console, asker, live)
    return _drive_guarded(run, settings, Command(resume=decision), console, asker, live)


def _answer(run: RunDir, payload: dict, values: dict, decision: dict | None, settings: Settings,
            asker: Asker | None) -> dict:
    """The validated answer to what the run waits on (see resume_run), settings it carries included;
    RunnerError when it is refused."""
    from agentlab.phases.checkpoint import BadDecision, validate_decision

    if decision is None:
        if payload["kind"] != "checkpoint":
            decision = {"action": "retry"}
        elif asker is not None:
            decision = asker(payload)
        elif settings.on_checkpoint == "approve" and "approve" in payload.get("options", ["approve"]):
            decision = {"action": "approve"}
        else:
            raise NeedsDecision(run, payload)
    elif decision.get("action") == "approve" and payload["kind"] != "checkpoint":
        decision = {**decision, "action": "retry"}
    if decision.get("action") == "edit" and isinstance(decision.get("plan"), dict):  # a partial plan: merge it
        decision = {**decision, "plan": {**(values.get("plan") or {}), **decision["plan"]}}
    try:
        return validate_decision(decision, payload)
    except BadDecision as exc:
        raise RunnerError(f"{exc}. Nothing changed; the run still waits at {payload['phase']}.") from exc


def _drive_guarded(run: RunDir, settings: Settings, first: Any, console: Console, asker: Asker | None,
                   live: bool | None) -> Outcome:
    """drive(), with Ctrl-C as an `interrupted` outcome and an endpoint failure as a RunnerError; an answer that
    changes settings (a `reconfigure` outcome) saves them and drives on with them (a new budget)."""
    try:
        while True:
            outcome = drive(run, settings, first, console, asker=asker, live=live)
            if outcome.status != "reconfigure":
                return outcome
            decision = dict(outcome.payload or {})
            settings, changes = with_settings(settings, decision.pop("settings"), "answer")
            settings.save(run.settings_path)
            record_changes(run, changes, console, "answer")
            first = Command(resume=decision)
    except KeyboardInterrupt:
        run.write_meta(status="interrupted", pid=None)
        return Outcome("interrupted")
    except LLMError as exc:
        run.write_meta(status="stopped", pid=None)
        raise RunnerError(f"{exc}\nThe run is saved: agentlab resume {run.id}") from exc


def _on_progress(run: RunDir, prog: Progress, phase: str, msg: str) -> None:
    run.record_phase(phase, msg)  # the phase the run is in, each phase's state and time (meta.json)
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
            decision = _ask(asker, payload, settings, prog)
            if decision.get("settings"):  # new settings (a budget): drive again with them, then answer
                run.log(f"human at {payload.get('phase')}: {decision}")
                return Outcome("reconfigure", decision)
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


def _ask(asker: Asker, payload: dict, settings: Settings, prog: Progress) -> dict:
    """The asker's answer; one whose `settings` are invalid is refused (said) and asked again."""
    from agentlab.phases.checkpoint import BadDecision, validate_decision

    prog.pause()
    try:
        for _ in range(20):
            decision = asker(payload)
            if not decision.get("settings"):
                return decision
            try:
                with_settings(settings, decision["settings"], "answer")
                return validate_decision(decision, payload)
            except (ConfigError, BadDecision) as exc:
                getattr(prog, "console", Console(stderr=True)).print(f"[red]{exc}[/]", highlight=False)
        raise RunnerError("no valid answer after 20 tries")
    finally:
        prog.resume()
