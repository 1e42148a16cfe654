"""Where a run is and what it is doing: the one answer `agentlab runs` and `agentlab status` both give.

meta.json holds what the driving process recorded: its status (running | parked | stopped | done | rejected |
interrupted), its pid, the phase it is in, what it parked or stopped on (`waiting`) and each phase's state and
time (`phases`, see `RunDir.record_phase`). The saved graph says whether a checkpoint is pending. Where they
differ, the graph is the truth:

  running, its process alive, a checkpoint pending       waiting: a person is being asked, at that checkpoint
  interrupted (or its process gone), a checkpoint pending parked / stopped (budget | error) as it was: nothing
                                                          was in flight when it ended (Ctrl-C at the prompt)

`run_state(run)` computes it; `short_ids` and `command_id` give the ids a person reads and types.
"""

from __future__ import annotations

import re
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from agentlab.runs import RunDir, _alive, list_runs

STATUSES = ("created", "running", "waiting", "parked", "stopped", "done", "rejected", "interrupted")
_UNKNOWN = object()


@dataclass
class RunState:
    status: str  # one of STATUSES
    phase: str = ""  # the phase the run is in (or stopped in, or waits after)
    stage: str = ""  # the experiment stage, when known
    kind: str = ""  # what it waits on: checkpoint | budget | error
    message: str = ""  # why it stopped (or why a report cannot be accepted)
    waiting: dict | None = None  # the checkpoint payload it waits on
    pid: int | None = None  # the process driving it (running / waiting)
    phases: dict = field(default_factory=dict)  # {phase: {status, elapsed}} as recorded

    @property
    def checkpoint(self) -> str:
        """The checkpoint's name as `--checkpoints` spells it: `plan`, `literature`, or the stage (`sweep`)."""
        if self.stage:
            return self.stage
        from agentlab.phases.spec import phase_names, spec

        return (spec(self.phase).stop or self.phase) if self.phase in phase_names() else self.phase

    @property
    def label(self) -> str:
        """`waiting (plan)`, `waiting (budget)`, `parked (sweep)`, `stopped (budget)`, `stopped (report blocked)`,
        `done`, ..."""
        if self.status == "stopped" and self.kind:
            return f"stopped ({'report blocked' if self.kind == 'checkpoint' else self.kind})"
        if self.status == "waiting" and self.kind and self.kind != "checkpoint":  # asked at a stop
            return f"waiting ({self.kind})"
        if self.status in ("waiting", "parked") and self.checkpoint:
            return f"{self.status} ({self.checkpoint})"
        return self.status

    def as_dict(self) -> dict:
        return {**asdict(self), "label": self.label}


def pending_checkpoint(run: RunDir) -> dict | None:
    """What the saved graph waits on (a checkpoint or stop payload), or None; None too when it cannot be read."""
    try:
        from agentlab.config import settings_from_run
        from agentlab.runner import pending_interrupt

        return pending_interrupt(run, settings_from_run(run.settings_path, validate=False))[0]
    except Exception:  # a locked or missing database, a run from an older version: meta.json alone decides
        return None


def run_state(run: RunDir, pending: object = _UNKNOWN, values: dict | None = None) -> RunState:
    """Where `run` is. `pending`: the graph's pending payload when the caller has read it already (else it is read
    only where meta.json cannot tell: a run running or interrupted); `values`: the graph's state values, for the
    experiment stage."""
    m = run.meta()
    status = m.get("status") or "created"
    pid = m.get("pid")
    if status == "running" and not (pid and _alive(pid)):
        status = "interrupted"
    waiting = m.get("waiting") if status in ("parked", "stopped") else None
    if status in ("running", "interrupted"):
        payload = pending_checkpoint(run) if pending is _UNKNOWN else pending
        if isinstance(payload, dict):
            waiting = payload
            blocked = payload.get("kind") != "checkpoint" or payload.get("message")
            status = "waiting" if status == "running" else ("stopped" if blocked else "parked")
    w = waiting if isinstance(waiting, dict) else {}
    phase = w.get("phase") or m.get("phase") or ""
    stage = w.get("stage") or ""
    exp = (values or {}).get("experiment") or {}
    if not stage and phase == "experiment" and status in ("running", "interrupted") and not exp.get("done"):
        stage = exp.get("stage") or ""
    kind = w.get("kind") or ""
    if status == "stopped" and kind == "checkpoint" and not w.get("message"):
        status = "parked"
    return RunState(status=status, phase=phase, stage=stage, kind=kind, message=str(w.get("message") or ""),
                    waiting=waiting, pid=pid if status in ("running", "waiting") else None,
                    phases=dict(m.get("phases") or {}))


def short_ids(ids: list[str], minimum: int = 8) -> dict[str, str]:
    """Each id's shortest prefix of at least `minimum` characters that no other id in `ids` shares
    (`RunDir.open` takes such a prefix)."""
    out = {}
    for i in ids:
        n = min(minimum, len(i))
        while n < len(i) and any(o != i and o.startswith(i[:n]) for o in ids):
            n += 1
        out[i] = i[:n]
    return out


def command_id(run: RunDir) -> str:
    """The id to put in a command a person copies: unique among the runs now, and at least the creation time
    (`20261201-195313`), so that runs created later do not make it ambiguous."""
    ids = [r.id for r in list_runs(run.path.parent)]
    return short_ids(ids if run.id in ids else [*ids, run.id], minimum=15)[run.id]


def budget_flag(state: RunState) -> tuple[str, str]:
    """For a budget stop: (the resume flag, a new limit to suggest: twice what is used); ('', '') otherwise."""
    if state.kind != "budget":
        return "", ""
    ex = (state.waiting or {}).get("exceeded")
    if isinstance(ex, dict) and ex.get("flag") in ("--max-tokens", "--max-cost", "--max-minutes") and \
            isinstance(ex.get("suggested"), (int, float)):  # the stop's own payload: what the next call needs
        v = ex["suggested"]
        return ex["flag"], str(v) if isinstance(v, int) else f"{v:.10g}"
    said = re.search(r"`agentlab resume \S+ (--max-(?:tokens|cost|minutes)) ([\d.]+)`", state.message)
    if said:  # the stop's own suggestion (it knows what the next call needs)
        return said.group(1), said.group(2)
    flags = {"tokens": "--max-tokens", "cost": "--max-cost", "minutes": "--max-minutes"}
    usage = (state.waiting or {}).get("budget") if isinstance((state.waiting or {}).get("budget"), dict) else {}
    which, used = "", None
    for name, b in usage.items():
        if isinstance(b, dict) and isinstance(b.get("used"), (int, float)) and \
                isinstance(b.get("limit"), (int, float)) and b["used"] >= b["limit"]:
            which, used = name, b["used"]
    found = re.match(r"(cost|tokens|minutes) budget exhausted: used ([\d.e+]+) of ([\d.e+]+)", state.message)
    if found and not which:
        which, used = found.group(1), max(float(found.group(2)), float(found.group(3)))
    if which not in flags:
        return "--max-tokens", "N"
    if not used:
        return flags[which], "N"
    return flags[which], str(int(used * 2)) if which == "tokens" else f"{round(float(used) * 2 + 0.005, 2):g}"


def ago(ts: float | None, now: float | None = None) -> str:
    """`45s ago`, `12m ago`, `5h ago`, `3d ago`; the date after 30 days; '' without a time."""
    if not ts:
        return ""
    s = max(0.0, (now or time.time()) - float(ts))
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if s >= size:
            return time.strftime("%Y-%m-%d", time.localtime(ts)) if unit == "d" and s >= 30 * 86400 \
                else f"{int(s // size)}{unit} ago"
    return f"{int(s)}s ago"


def duration(seconds: float | None) -> str:
    """`4.2s`, `3m 05s`, `1h 02m`; '-' when unknown."""
    if seconds is None:
        return "-"
    s = float(seconds)
    if s < 60:
        return f"{s:.1f}s"
    if s < 3600:
        return f"{int(s // 60)}m {int(s % 60):02d}s"
    return f"{int(s // 3600)}h {int(s % 3600 // 60):02d}m"


def phase_time(rec: dict | None, now: float | None = None) -> float | None:
    """A phase's recorded time, the current visit included while it runs; None when nothing was recorded."""
    if not isinstance(rec, dict):
        return None
    extra = (now or time.time()) - rec["since"] if rec.get("status") == "running" and rec.get("since") else 0.0
    return float(rec.get("elapsed") or 0.0) + extra


def runs_listing(runs_dir: Path) -> list[dict]:
    """Every run in `runs_dir` (oldest first) with its state, short id and usage: what `agentlab runs` shows."""
    runs = list_runs(runs_dir)
    short = short_ids([r.id for r in runs])
    out = []
    for r in runs:
        m, tot, st = r.meta(), r.ledger.totals(), run_state(r)
        out.append({"id": r.id, "short_id": short[r.id], "path": str(r.path), "topic": m.get("topic", ""),
                    **{k: v for k, v in st.as_dict().items() if k != "phases"},
                    "created": m.get("created"), "updated": m.get("updated"), "tokens": tot["tokens"],
                    "cost": tot["cost"], "calls": tot["calls"]})
    return out
