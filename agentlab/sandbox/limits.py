"""Host-side resource limits for local sandboxes: a per-job cgroup (v2 or v1) with rlimit fallbacks,
and an output pump that caps what a job may write to stdout/stderr."""

from __future__ import annotations

import os
import resource
import signal
import threading
import time
from collections import deque
from pathlib import Path
from typing import BinaryIO

from agentlab.sandbox.base import Limits

CGROUP_ROOT = Path("/sys/fs/cgroup")
#: a job that keeps writing past this many times `max_output_bytes` is killed (reason "output_limit")
HARD_OUTPUT_FACTOR = 8


def _own_cgroup_path(controller: str | None) -> str:
    """Our own cgroup path for `controller` (None = the v2 unified hierarchy), from /proc/self/cgroup."""
    try:
        lines = Path("/proc/self/cgroup").read_text().splitlines()
    except OSError:
        return "/"
    for line in lines:
        _, ctrls, path = line.split(":", 2)
        if controller is None and ctrls == "":
            return path
        if controller is not None and controller in ctrls.split(","):
            return path
    return "/"


class JobCgroup:
    """One cgroup per job: memory + pids limits, CPU accounting, OOM detection, kill-everything."""

    def __init__(self, version: int, dirs: dict[str, Path]):
        self.version = version
        self.dirs = dirs  # controller -> directory ("unified" for v2)

    # ---- creation -------------------------------------------------------------------------
    @staticmethod
    def probe() -> tuple[int, str]:
        """(cgroup version usable here or 0, explanation)."""
        if os.environ.get("AGENTLAB_SANDBOX_NO_CGROUP"):
            return 0, "cgroups disabled by AGENTLAB_SANDBOX_NO_CGROUP"
        if (CGROUP_ROOT / "cgroup.controllers").exists():
            parent = CGROUP_ROOT / _own_cgroup_path(None).lstrip("/")
            ctrls = (parent / "cgroup.controllers").read_text().split() if parent.exists() else []
            if {"memory", "pids"} <= set(ctrls) and os.access(parent, os.W_OK):
                return 2, f"cgroup v2 at {parent}"
            return 0, f"cgroup v2 at {parent} is not writable or lacks memory/pids controllers"
        need = [CGROUP_ROOT / c / _own_cgroup_path(c).lstrip("/") for c in ("memory", "pids")]
        if all(p.is_dir() and os.access(p, os.W_OK) for p in need):
            return 1, "cgroup v1 (memory, pids)"
        return 0, "no writable cgroup hierarchy (not root, or /sys/fs/cgroup read-only)"

    @classmethod
    def works(cls) -> tuple[bool, str]:
        """Really create (and remove) a job cgroup: (usable?, explanation)."""
        version, why = cls.probe()
        if not version:
            return False, why
        cg = cls.create(f"probe-{os.getpid()}", Limits(memory_mb=64, max_processes=8))
        if cg is None:
            return False, f"{why} exists but a job cgroup with memory and pids limits cannot be created"
        cg.remove()
        return True, why

    @classmethod
    def create(cls, name: str, limits: Limits) -> "JobCgroup | None":
        """Create and configure the job's cgroup; None when cgroups cannot be used here."""
        version, _ = cls.probe()
        try:
            if version == 2:
                return cls._create_v2(name, limits)
            if version == 1:
                dirs = {}
                for c in ("memory", "pids", "cpuacct"):
                    p = CGROUP_ROOT / c / _own_cgroup_path(c).lstrip("/") / f"agentlab-{name}"
                    if c == "cpuacct" and not p.parent.is_dir():
                        continue
                    _sweep_stale(p.parent, "agentlab-")
                    p.mkdir(exist_ok=True)
                    dirs[c] = p
                (dirs["memory"] / "memory.limit_in_bytes").write_text(str(limits.memory_mb * 1024 * 1024))
                _try_write(dirs["memory"] / "memory.memsw.limit_in_bytes", str(limits.memory_mb * 1024 * 1024))
                (dirs["pids"] / "pids.max").write_text(str(limits.max_processes))
                return cls(1, dirs)
        except OSError:
            return None
        return None

    @classmethod
    def _create_v2(cls, name: str, limits: Limits) -> "JobCgroup | None":
        """v2 forbids processes in inner nodes that delegate controllers, so job cgroups live in an
        `agentlab-jobs` child of our own cgroup if that can enable memory+pids, else of the root cgroup."""
        own = CGROUP_ROOT / _own_cgroup_path(None).lstrip("/")
        for parent in dict.fromkeys([own, CGROUP_ROOT]):
            base = parent / "agentlab-jobs"
            try:
                base.mkdir(exist_ok=True)
                _sweep_stale(base, "")
                for c in ("+memory", "+pids", "+cpu"):
                    _try_write(parent / "cgroup.subtree_control", c)
                    _try_write(base / "cgroup.subtree_control", c)
                d = base / name
                d.mkdir(exist_ok=True)
                try:
                    (d / "memory.max").write_text(str(limits.memory_mb * 1024 * 1024))
                    (d / "pids.max").write_text(str(limits.max_processes))
                except OSError:
                    d.rmdir()
                    raise
                _try_write(d / "memory.swap.max", "0")
                return cls(2, {"unified": d})
            except OSError:
                continue
        return None

    # ---- use ------------------------------------------------------------------------------
    def join(self) -> None:
        """Move the calling process into the cgroup (call from the child before exec)."""
        for d in self.dirs.values():
            (d / "cgroup.procs").write_text("0")

    def pids(self) -> list[int]:
        d = self.dirs.get("unified") or self.dirs.get("pids") or self.dirs["memory"]
        try:
            return [int(x) for x in (d / "cgroup.procs").read_text().split()]
        except OSError:
            return []

    def cpu_seconds(self) -> float | None:
        try:
            if self.version == 2:
                for line in (self.dirs["unified"] / "cpu.stat").read_text().splitlines():
                    if line.startswith("usage_usec"):
                        return int(line.split()[1]) / 1e6
            elif "cpuacct" in self.dirs:
                return int((self.dirs["cpuacct"] / "cpuacct.usage").read_text()) / 1e9
        except (OSError, ValueError):
            pass
        return None

    def oom_killed(self) -> bool:
        try:
            if self.version == 2:
                text = (self.dirs["unified"] / "memory.events").read_text()
            else:
                text = (self.dirs["memory"] / "memory.oom_control").read_text()
        except OSError:
            return False
        stats = dict(line.split() for line in text.splitlines() if len(line.split()) == 2)
        return int(stats.get("oom_kill", "0")) > 0

    def kill_all(self, timeout: float = 5.0) -> None:
        """SIGKILL every process in the cgroup until it is empty."""
        if self.version == 2 and _try_write(self.dirs["unified"] / "cgroup.kill", "1"):
            pass
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            pids = self.pids()
            if not pids:
                return
            for pid in pids:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            time.sleep(0.02)

    def remove(self) -> None:
        for d in self.dirs.values():
            for _ in range(50):
                try:
                    d.rmdir()
                    break
                except FileNotFoundError:
                    break
                except OSError:
                    time.sleep(0.02)


def _sweep_stale(parent: Path, prefix: str, min_age: float = 600.0) -> None:
    """Remove empty job cgroups left by orchestrators that were killed before cleaning up."""
    now = time.time()
    try:
        children = [d for d in parent.iterdir() if d.is_dir() and d.name.startswith(prefix)]
    except OSError:
        return
    for d in children:
        try:
            if now - d.stat().st_mtime > min_age and not (d / "cgroup.procs").read_text().strip():
                d.rmdir()
        except OSError:
            pass


def _try_write(path: Path, value: str) -> bool:
    try:
        path.write_text(value)
        return True
    except OSError:
        return False


def cpu_limit(limits: Limits) -> float:
    """The CPU-seconds budget: explicit, or wall clock times the cores we have."""
    if limits.cpu_seconds is not None:
        return float(limits.cpu_seconds)
    return float(limits.wall_seconds) * (os.cpu_count() or 1)


def apply_rlimits(limits: Limits, with_memory: bool, nproc: int | None = None) -> None:
    """Set rlimits in the calling process (a child before exec); inherited by the whole job. `nproc` is only
    meaningful for an uid that runs nothing else (the kernel ignores RLIMIT_NPROC for root)."""
    cpu = int(cpu_limit(limits)) + 1
    resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu + 5))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    fsize = limits.disk_mb * 1024 * 1024  # no single file (in /job, /tmp or /dev/shm) beyond the disk cap
    resource.setrlimit(resource.RLIMIT_FSIZE, (fsize, fsize))
    if with_memory:
        mem = limits.memory_mb * 1024 * 1024
        resource.setrlimit(resource.RLIMIT_AS, (mem, mem))
    if nproc is not None:
        if os.getuid() != 0 and os.environ.get("AGENTLAB_SANDBOX_SHARED_UID", "1") == "1":
            nproc += _processes_of_uid(os.getuid())  # our own uid: count what already runs under it
        resource.setrlimit(resource.RLIMIT_NPROC, (nproc, nproc))


def _processes_of_uid(uid: int) -> int:
    n = 0
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                n += os.stat(f"/proc/{d}").st_uid == uid
            except OSError:
                pass
    return n


class OutputPump(threading.Thread):
    """Drains one pipe: keeps the first `cap` bytes in a log file and a rolling tail in memory."""

    def __init__(self, stream: BinaryIO, log_path: Path, cap: int, on_hard_limit):
        super().__init__(daemon=True)
        self.stream, self.log_path, self.cap = stream, log_path, cap
        self.on_hard_limit = on_hard_limit
        self.total = 0
        self._tail: deque[bytes] = deque()
        self._tail_len = 0

    def run(self) -> None:
        with open(self.log_path, "wb") as log:
            while True:
                chunk = self.stream.read1(65536) if hasattr(self.stream, "read1") else self.stream.read(65536)
                if not chunk:
                    break
                self.feed(chunk, log)
        self.stream.close()

    def feed(self, chunk: bytes, log: BinaryIO | None = None) -> None:
        if log is not None and self.total < self.cap:
            log.write(chunk[: self.cap - self.total])
        self.total += len(chunk)
        self._tail.append(chunk)
        self._tail_len += len(chunk)
        while self._tail_len - len(self._tail[0]) >= 8192:
            self._tail_len -= len(self._tail.popleft())
        if self.total > self.cap * HARD_OUTPUT_FACTOR:
            self.on_hard_limit()

    @property
    def truncated(self) -> bool:
        return self.total > self.cap

    def tail_bytes(self) -> bytes:
        return b"".join(self._tail)
