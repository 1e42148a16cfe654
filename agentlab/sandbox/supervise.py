"""Host side of one supervised sandbox run, shared by the bwrap and docker backends.

`follow_supervisor` reads the supervisor's frames (job output, the files left in /job, how the job ended),
enforces the host's backstops (wall clock, CPU budget, output cap) and returns what happened; `end_reason`
turns that into the `JobResult` reason a user reads.
"""

from __future__ import annotations

import signal
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO, Callable, Iterable

from agentlab.sandbox.base import Limits
from agentlab.sandbox.frames import Caps, Channel, FrameReader
from agentlab.sandbox.limits import HARD_OUTPUT_FACTOR, OutputPump, cpu_limit

#: the supervisor enforces the wall clock itself and then collects; the host kills only this much later
HOST_GRACE_SECONDS = 60.0


@dataclass
class SupervisedRun:
    channel: Channel
    pumps: list[OutputPump]
    supervisor_err: bytes = b""
    killed_for: list[tuple[str, str]] = field(default_factory=list)


def follow_supervisor(out: BinaryIO | None, err: BinaryIO | None, workdir: Path, inputs: set[str], caps: Caps,
                      lim: Limits, alive: Callable[[], bool], kill: Callable[[], None],
                      cpu_seconds: Callable[[], float | None] | None = None,
                      lines: Callable[[], Iterable[bytes]] | None = None,
                      deadline: float | None = None) -> SupervisedRun:  # fmt: skip
    """Run the host half until the supervisor is gone and its channel is drained."""
    meta = workdir / ".job"
    meta.mkdir(parents=True, exist_ok=True)
    logs = [open(meta / "stdout.log", "wb"), open(meta / "stderr.log", "wb")]
    run = SupervisedRun(Channel(), [])

    def hard_kill(why: str, detail: str) -> None:
        if not run.killed_for:
            run.killed_for.append((why, detail))
        kill()

    cap_msg = f"output cap of {lim.max_output_bytes * HARD_OUTPUT_FACTOR} bytes exceeded"
    run.pumps = [OutputPump(None, meta / n, lim.max_output_bytes, lambda: hard_kill("output_limit", cap_msg))  # type: ignore[arg-type]
                 for n in ("stdout.log", "stderr.log")]  # fmt: skip

    def on_output(i: int, chunk: bytes) -> None:
        run.pumps[i].feed(chunk, logs[i])

    reader = FrameReader(out, workdir, inputs, caps, on_output, lines=lines)
    run.channel = reader.ch
    sup = OutputPump(err, meta / "supervisor.log", 64 * 1024, lambda: None) if err is not None else None
    reader.start()
    if sup is not None:
        sup.start()
    end_by = deadline if deadline is not None else time.time() + lim.wall_seconds + HOST_GRACE_SECONDS
    budget = cpu_limit(lim)
    try:
        while reader.is_alive() or alive():
            if time.time() > end_by:
                hard_kill("timeout", f"wall-clock limit of {lim.wall_seconds:g} s reached (the host stopped the sandbox)")
            elif cpu_seconds is not None and (cpu_seconds() or 0.0) > budget:
                hard_kill("timeout", f"CPU time limit of {budget:g} s reached")
            reader.join(timeout=0.05)
            if not alive() and reader.is_alive():
                reader.join(timeout=10)  # the supervisor is gone: what it sent is in the pipe already
                break
    finally:
        reader.join(timeout=10)
        if sup is not None:
            sup.join(timeout=5)
            run.supervisor_err = sup.tail_bytes()
        for f in logs:
            f.close()
    return run


def end_reason(run: SupervisedRun, rc: int | None, oom: bool, lim: Limits, has_cgroup: bool = True) -> tuple[str, int | None, str]:
    """(reason, exit code, detail) for the JobResult, from the supervisor's own report where there is one."""
    end = run.channel.end
    err_tail = run.pumps[1].tail_bytes()[-2000:]
    code: int | None = None
    if run.killed_for:
        reason, detail = run.killed_for[0]
    elif end is None:
        sup = run.supervisor_err.decode(errors="replace").strip()
        if oom:
            reason, detail = "memory", f"memory limit of {lim.memory_mb} MB exceeded"
        elif sup.startswith("bwrap:") or "bwrap:" in sup[:300]:
            reason, detail = "error", sup[:500]
        else:
            reason = "error"
            detail = f"the sandbox's supervisor ended without a report (exit status {rc})" + (f": {sup[-300:]}" if sup else "")
    elif end.get("timed_out"):
        reason, detail = "timeout", f"wall-clock limit of {lim.wall_seconds:g} s reached"
    else:
        sig = end.get("signal")
        code = end.get("exit_code") if sig is None else 128 + int(sig)
        if oom or (not has_cgroup and code not in (0, None) and b"MemoryError" in err_tail):
            reason, detail = "memory", f"memory limit of {lim.memory_mb} MB exceeded"
        elif sig == signal.SIGXCPU:
            reason, detail = "timeout", "CPU time limit reached (SIGXCPU)"
        elif sig in (signal.SIGKILL, signal.SIGTERM):
            reason, detail = "killed", f"killed by signal {sig}"
        else:
            reason, detail = "finished", ""
    notes = [detail] if detail else []
    if any(p.truncated for p in run.pumps):
        notes.append(f"output beyond {lim.max_output_bytes} bytes per stream was dropped")
    if run.channel.error:
        notes.append(run.channel.error)
    if run.channel.skipped:
        shown = "; ".join(run.channel.skipped[:5]) + (" ..." if len(run.channel.skipped) > 5 else "")
        notes.append(f"not brought back from /job: {shown}")
    return reason, (None if run.killed_for or (end or {}).get("timed_out") else code), "; ".join(notes)
