"""Batch scheduling: every workflow becomes (or continues) one run, N at a time, in threads.

A workflow's run is found again by `meta.json["workflow"]`, so running the same batch again
continues what was unfinished: interrupted runs resume from their last checkpoint, finished ones
are skipped, parked ones are listed with the command that resumes them. One run failing never
stops the others. Before touching a workflow an orchestrator takes its lease (see lease.py); a
workflow leased by a live orchestrator elsewhere is retried once that lease expires or its run ends.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import time
import traceback
import uuid
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from rich.console import Console

from agentlab.batch.lease import Heartbeat, Leases
from agentlab.batch.workflow import Workflow
from agentlab.config import Settings, settings_from_run
from agentlab.runs import RunDir, _alive, list_runs

FINAL = ("done", "rejected", "parked", "stopped", "failed", "skipped")


@dataclass
class Slot:
    """What this orchestrator knows about one workflow of the batch."""

    wf: Workflow
    state: str = "queued"  # queued | waiting | running | interrupted | one of FINAL
    run_id: str | None = None
    run_path: Path | None = None
    note: str = ""
    waiting: dict | None = None
    started: float | None = None
    ended: float | None = None
    drive_seconds: float = 0.0  # time inside runner.drive (the research itself)
    not_before: float = 0.0  # for `waiting` slots: when to try the lease again
    by_us: bool = False  # this orchestrator drove the run (vs. found it finished / parked)
    resumed_from: str = ""  # the status the run had when this orchestrator continued it

    @property
    def final(self) -> bool:
        return self.state in FINAL


def batch_id(runs_dir: Path) -> str:
    """A stable id for a runs directory (shared by every orchestrator that mounts it)."""
    p = runs_dir / ".batch" / "id"
    p.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(p, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
        os.write(fd, uuid.uuid4().hex.encode())
        os.close(fd)
    except FileExistsError:
        for _ in range(50):
            if p.read_text().strip():
                break
            time.sleep(0.02)
    return p.read_text().strip()


def find_run(runs_dir: Path, name: str) -> RunDir | None:
    """The (newest) run created for workflow `name` in this runs directory."""
    found = [r for r in list_runs(runs_dir) if r.meta().get("workflow") == name]
    return found[-1] if found else None


class Batch:
    def __init__(self, workflows: list[Workflow], runs_dir: Path, parallel: int, leases: Leases,
                 settings_for: Callable[[Workflow], Settings], run_overrides: dict[str, Any] | None = None,
                 wait_for_others: bool = True, on_change: Callable[[Slot], None] | None = None,
                 isolation: str = "thread"):
        self.slots = [Slot(wf) for wf in workflows]
        self.runs_dir = Path(runs_dir).resolve()  # absolute: GitPython's index.add chdir()s the whole process
        self.parallel = max(1, parallel)
        self.leases = leases
        self.settings_for = settings_for
        self.run_overrides = run_overrides or {}
        self.wait_for_others = wait_for_others
        self.on_change = on_change or (lambda s: None)
        self.host = socket.gethostname()
        self.ns = batch_id(self.runs_dir)
        self.heartbeat = Heartbeat(leases, on_lost=self._lost)
        self._children: dict[str, subprocess.Popen] = {}  # lease key -> worker process (isolation=process)
        self.stopping = threading.Event()
        if isolation not in ("thread", "process"):
            raise ValueError("isolation must be thread or process")
        self.isolation = isolation

    def key(self, slot: Slot) -> str:
        return f"{self.ns}/{slot.wf.name}"

    def _lost(self, key: str) -> None:
        """Another orchestrator holds our lease now (we were paused or cut off): stop driving the run.
        A child process is killed (its run continues elsewhere from the last checkpoint); a thread cannot
        be stopped, which is why `--isolation process` is the safer choice across machines."""
        child = self._children.get(key)
        if child is not None and child.poll() is None:
            child.kill()

    # ---- the loop ---------------------------------------------------------------------------
    def run(self, tick: Callable[[], None] = lambda: None) -> list[Slot]:
        """Drive every workflow to a final state (or, without wait_for_others, skip leased ones)."""
        futures: dict[Future, Slot] = {}
        with self.heartbeat, ThreadPoolExecutor(self.parallel, thread_name_prefix="batch") as pool:
            while not self.stopping.is_set():
                now = time.time()
                ready = [s for s in self.slots if s.state in ("queued", "waiting") and s.not_before <= now
                         and all(s is not o for o in futures.values())]
                for s in ready[: self.parallel - len(futures)]:
                    futures[pool.submit(self._one, s)] = s
                if not futures and not any(s.state in ("queued", "waiting") for s in self.slots):
                    break
                done, _ = wait(list(futures), timeout=0.25, return_when=FIRST_COMPLETED)
                for f in done:
                    futures.pop(f)
                tick()
        tick()
        return self.slots

    def _set(self, slot: Slot, state: str, note: str | None = None) -> None:
        slot.state = state
        if note is not None:
            slot.note = note
        if state in FINAL or state == "interrupted":
            slot.ended = time.time()
        self.on_change(slot)

    # ---- one workflow -----------------------------------------------------------------------
    def _one(self, slot: Slot) -> None:
        key = self.key(slot)
        try:
            got = self.leases.acquire(key)
            h = None if got else self.leases.holder(key)
        except Exception as exc:  # the lease store is unreachable: try again later, never drive unleased
            slot.not_before = time.time() + max(1.0, self.leases.ttl / 3)
            return self._set(slot, "waiting", f"lease store error: {type(exc).__name__}: {exc}"[:200])
        if not got:
            run = find_run(self.runs_dir, slot.wf.name)
            if run is not None and run.meta().get("status") in ("done", "rejected"):
                slot.run_id, slot.run_path = run.id, run.path
                return self._set(slot, run.meta()["status"], "finished by another orchestrator")
            if not self.wait_for_others:
                return self._set(slot, "skipped", f"leased by {h.owner if h else '?'}")
            slot.not_before = time.time() + max(0.5, min(self.leases.ttl / 3, (h.expires_in if h else 0) + 0.2))
            return self._set(slot, "waiting", f"leased by {h.owner if h else '?'} ({h.expires_in:.0f}s left)" if h
                             else "lease busy")
        self.heartbeat.hold(key)
        run: RunDir | None = None
        try:
            run, settings, first = self._prepare(slot)
            if first is _SKIP:
                return
            slot.run_id, slot.run_path, slot.by_us = run.id, run.path, True
            slot.started = slot.started or time.time()
            self._set(slot, "running", None)
            self._drive(slot, run, settings, first)
        except Exception as exc:  # one run failing never stops the batch
            if run is not None:
                run.log(f"batch: {type(exc).__name__}: {exc}\n{traceback.format_exc()}")
                run.write_meta(pid=None, batch_error=f"{type(exc).__name__}: {exc}")
            self._set(slot, "failed", f"{type(exc).__name__}: {exc}"[:300])
        finally:
            self.heartbeat.drop(key)
            if key in self.heartbeat.lost and slot.state == "running":
                self._set(slot, "interrupted", "lease lost to another orchestrator")
            self.leases.release(key)

    def _prepare(self, slot: Slot) -> tuple[RunDir, Settings, Any]:
        """Find or create the workflow's run; return (run, settings, first input) or first=_SKIP."""
        wf = slot.wf
        run = find_run(self.runs_dir, wf.name)
        if run is None:
            settings = self.settings_for(wf)
            with _CREATE_LOCK:  # RunDir.create -> git index.add changes the process's cwd for a moment
                run = RunDir.create(self.runs_dir, wf.idea)
            settings.save(run.settings_path)
            run.write_meta(workflow=wf.name, workflow_file=wf.source, workflow_digest=wf.digest)
            run.log(f"batch: created for workflow {wf.name} ({wf.source})")
            return run, settings, {"idea": wf.idea}
        slot.run_id, slot.run_path = run.id, run.path
        settings = settings_from_run(run.settings_path, self.run_overrides)
        meta = run.meta()
        status = meta.get("status", "created")
        if meta.get("workflow_digest") not in (None, wf.digest):
            slot.note = "workflow file changed since the run started; continuing the run as started"
        if status == "running" and meta.get("host", self.host) == self.host and meta.get("pid") \
                and meta["pid"] != os.getpid() and _alive(meta["pid"]):
            self._set(slot, "skipped", f"driven by process {meta['pid']} on this host (not a batch lease)")
            return run, settings, _SKIP
        if status in ("done", "rejected"):
            self._set(slot, status, "already finished")
            return run, settings, _SKIP
        if status == "parked":  # a person answers it (`agentlab resume`); a batch never does
            slot.waiting = meta.get("waiting")
            self._set(slot, status, "waits for a person")
            return run, settings, _SKIP
        from agentlab.runner import pending_interrupt

        payload, values = pending_interrupt(run, settings)
        if values.get("done"):
            run.write_meta(status="done", pid=None)
            self._set(slot, "done", "already finished")
            return run, settings, _SKIP
        if payload is not None and payload.get("kind") == "checkpoint":  # parked (or a report that cannot pass)
            st = "stopped" if status == "stopped" or payload.get("message") else "parked"
            run.write_meta(status=st, pid=None, waiting=payload)
            slot.waiting = payload
            self._set(slot, st, "waits for a person")
            return run, settings, _SKIP
        _save_changes(run, settings)  # e.g. a budget raised on this command line: the run keeps it
        slot.resumed_from = "interrupted" if status == "running" else status  # we hold the lease: its owner is gone
        if payload is not None:  # stopped on a problem (budget, endpoint, sandbox, ...): retry the phase
            slot.note = f"retrying {payload.get('phase')} (stopped: {str(payload.get('message', ''))[:120]})"
            return run, settings, {RETRY_KEY: {"action": "retry"}}
        slot.note = f"continuing ({status})"
        return run, settings, (None if values else {"idea": wf.idea})

    def _drive(self, slot: Slot, run: RunDir, settings: Settings, first: Any) -> None:
        from agentlab.llm import LLMError
        from agentlab.runner import drive

        run.write_meta(host=self.host, batch_owner=self.leases.owner)
        t0 = time.monotonic()
        if self.isolation == "process":
            try:
                return self._drive_in_child(slot, run, first)
            finally:
                slot.drive_seconds += time.monotonic() - t0
        with (run.path / "logs" / "batch.log").open("a") as f:
            con = Console(file=f, width=120, force_terminal=False, soft_wrap=True)
            try:
                outcome = drive(run, settings, graph_input(first), con, asker=None, live=False)
            except LLMError as exc:
                run.write_meta(status="stopped", pid=None, waiting={"kind": "error", "phase": run.meta().get("phase"),
                                                                    "message": str(exc)})
                slot.waiting = run.meta().get("waiting")
                return self._set(slot, "stopped", str(exc)[:300])
            finally:
                slot.drive_seconds += time.monotonic() - t0
        slot.waiting = outcome.payload
        note = f"continued ({slot.resumed_from})" if slot.resumed_from else ""
        if outcome.status == "stopped":
            note = str((outcome.payload or {}).get("message", ""))[:300]
        self._set(slot, outcome.status, note)


    def _drive_in_child(self, slot: Slot, run: RunDir, first: Any) -> None:
        """`python -m agentlab.batch.worker`: the run in its own process (no GIL sharing, crash-contained)."""
        outcome_path = run.path / "logs" / "batch-outcome.json"
        outcome_path.unlink(missing_ok=True)
        cmd = [sys.executable, "-m", "agentlab.batch.worker", str(run.path), json.dumps(first),
               json.dumps(self.run_overrides), str(outcome_path), str(os.getpid())]
        key = self.key(slot)
        with (run.path / "logs" / "batch-worker.err").open("ab") as err:
            child = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=err, stderr=err)
            self._children[key] = child
            try:
                rc = child.wait()
            finally:
                self._children.pop(key, None)
        if key in self.heartbeat.lost:
            return self._set(slot, "interrupted", "lease lost to another orchestrator; worker stopped")
        if not outcome_path.exists():
            tail = (run.path / "logs" / "batch-worker.err").read_text(errors="replace").strip().splitlines()[-1:]
            run.write_meta(pid=None, batch_error=f"worker exited {rc}: {' '.join(tail)}")
            return self._set(slot, "failed", f"worker exited {rc}: {' '.join(tail)}"[:300])
        out = json.loads(outcome_path.read_text())
        slot.waiting = out.get("payload")
        note = f"continued ({slot.resumed_from})" if slot.resumed_from else ""
        if out["status"] == "stopped":
            note = str((out.get("payload") or {}).get("message", ""))[:300]
        self._set(slot, out["status"], note)


_SKIP = object()
_CREATE_LOCK = threading.Lock()
#: a first input `{RETRY_KEY: decision}` (JSON, so a worker process can take it) answers the run's stop
RETRY_KEY = "__batch_resume__"


def graph_input(first: Any) -> Any:
    """What `drive` gets for a first input: the answer to a stop becomes the graph's resume Command."""
    if isinstance(first, dict) and RETRY_KEY in first:
        from langgraph.types import Command

        return Command(resume=first[RETRY_KEY])
    return first


def _save_changes(run: RunDir, settings: Settings) -> None:
    """Save (and log) what this command line changes in a continued run's settings, as `agentlab resume` does."""
    before = json.loads(run.settings_path.read_text())
    after = json.loads(json.dumps(settings.public_dict(), default=str))
    diff = {k: (before.get(k), v) for k, v in after.items() if k != "runs_dir" and before.get(k) != v}
    if diff:
        settings.save(run.settings_path)
        for k, (old, new) in sorted(diff.items()):
            run.event("settings", why="batch", setting=k, old=old, new=new, source="agentlab batch")
        run.log("batch: settings changed: " + ", ".join(f"{k}: {o!r} -> {n!r}" for k, (o, n) in sorted(diff.items())))


def resume_command(slot: Slot) -> str:
    """The command that continues a parked / stopped / failed run."""
    if slot.state == "parked":
        return f"agentlab resume {slot.run_id} --approve   (or --feedback \"...\" / --back PHASE)"
    if slot.state == "stopped" and (slot.waiting or {}).get("kind") == "checkpoint":
        return f"agentlab review {slot.run_id}   (then agentlab resume {slot.run_id} --back write_report ... | --reject)"
    if slot.state == "stopped":
        return (f"agentlab resume {slot.run_id}   (after fixing the cause), or the same `agentlab batch` again: it "
                "retries stopped runs (add e.g. --model NAME for a model the endpoint does not serve, "
                "--max-cost N / --max-tokens N for a budget stop)")
    return "agentlab batch ... again (continues unfinished runs)"
