"""Driving a run: start or resume the graph, show progress, answer or park at checkpoints.

The same loop serves the interactive CLI (a person answers at each interrupt), headless runs
(`approve` answers automatically, `park` exits and prints how to resume) and batch runs.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from typing import Any, Callable

from langgraph.types import Command
from rich.console import Console

from agentlab.config import Settings
from agentlab.endpoint import resolve_endpoint
from agentlab.graph import compile_graph, open_checkpointer
from agentlab.llm import LLM, Budget
from agentlab.phases.common import RunContext
from agentlab.progress import Progress
from agentlab.runs import RunDir

Asker = Callable[[dict], dict]


@dataclass
class Outcome:
    status: str  # done | parked | stopped | rejected | interrupted
    payload: dict | None = None

    @property
    def exit_code(self) -> int:
        return {"done": 0, "parked": 0, "rejected": 0, "stopped": 3, "interrupted": 130}[self.status]


def graph_config(run: RunDir) -> dict:
    return {"configurable": {"thread_id": run.id}, "recursion_limit": 200}


def pending_interrupt(run: RunDir, settings: Settings) -> tuple[dict | None, dict]:
    """(the payload the run waits on or None, the current state values), read without running anything."""
    with open_checkpointer(run.checkpoint_db, settings.checkpointer_url) as saver:
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
                with open_checkpointer(run.checkpoint_db, settings.checkpointer_url) as saver:
                    outcome = _loop(run, settings, compile_graph(saver), ctx, first, prog, asker)
    finally:
        active = float(meta.get("active_minutes", 0.0)) + (time.monotonic() - started) / 60.0
        run.write_meta(status=outcome.status, active_minutes=round(active, 4), pid=None,
                       waiting=outcome.payload if outcome.status in ("parked", "stopped") else None)
    return outcome


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
        elif payload["kind"] == "checkpoint" and settings.on_checkpoint == "approve":
            decision = {"action": "approve"}
        else:
            return Outcome("parked" if payload["kind"] == "checkpoint" else "stopped", payload)
        run.log(f"human at {payload.get('phase')}: {decision}")
        inp = Command(resume=decision)
    raise RuntimeError("too many checkpoint turns")  # pragma: no cover
