"""The sandbox interface: one base class, one subclass per backend, a registry (`SANDBOX_BACKENDS`).

A `Job` is a directory of files plus a command. Its `id` is deterministic (run, node, attempt),
so a resumed run can `attach(id)` to a job that already ran (or is still running) instead of
starting a duplicate. Every backend writes the same `JobResult` into `<workdir>/.job/result.json`.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator, Mapping
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Callable, Literal

from agentlab.errors import Resumable
from agentlab.registry import Registry, UnknownName

EndReason = Literal["finished", "timeout", "memory", "killed", "output_limit", "error"]


class SandboxUnavailable(Resumable, RuntimeError):
    """The backend cannot run on this machine; the message says how to fix it."""


@dataclass(frozen=True)
class Limits:
    wall_seconds: float = 600.0
    cpu_seconds: float | None = None  # defaults to wall_seconds * cores when None
    memory_mb: int = 4096
    max_processes: int = 256
    max_output_bytes: int = 1_000_000  # per stream; the rest is dropped and the job marked
    gpus: int = 0  # docker/ray only
    #: /job is a tmpfs of this size (and RLIMIT_FSIZE caps any one file at it); what is left there comes back
    disk_mb: int = 1024
    max_inodes: int = 20_000  # files + dirs in /job (root orchestrators; elsewhere only what comes back is capped)
    max_files_back: int = 1000  # files brought back to the host's work dir
    max_file_mb_back: int = 64  # one file brought back


@dataclass(frozen=True)
class Job:
    """A job: the regular files in `workdir` when it starts are its inputs, mounted read-only at /job (the host's
    copy is the truth); /job itself is a fresh capped tmpfs, and what the job leaves there is brought back."""

    id: str  # deterministic: f"{run_id}-{node}-{attempt}", safe for file names and labels
    workdir: str  # host directory: its files are the inputs; what the job leaves in /job comes back here
    command: list[str]  # e.g. ["python", "main.py"], run with workdir as cwd
    limits: Limits = field(default_factory=Limits)
    env: dict[str, str] = field(default_factory=dict)  # extra env vars; the host env is NOT inherited
    labels: dict[str, str] = field(default_factory=dict)  # run/node/attempt, for reattach
    #: extra host paths the job may read (e.g. a local model cache); mounted read-only at the same path
    readonly_paths: tuple[str, ...] = ()
    #: the files of `workdir` mounted read-only into /job; None: every regular file there when the job starts
    inputs: tuple[str, ...] | None = None


@dataclass
class JobResult:
    job_id: str
    backend: str
    exit_code: int | None
    reason: EndReason
    wall_seconds: float
    stdout_tail: str
    stderr_tail: str
    output_truncated: bool = False
    detail: str = ""
    files: list[str] = field(default_factory=list)  # what the job left in /job that came back to the work dir
    not_collected: list[str] = field(default_factory=list)  # "path: why" for what did not (links, dotfiles, caps)
    guarantees: list[str] = field(default_factory=list)  # what held for this run (host uid, seccomp, quotas...)

    @property
    def ok(self) -> bool:
        return self.reason == "finished" and self.exit_code == 0

    def to_dict(self) -> dict:
        return asdict(self)


def result_path(workdir: str | Path) -> Path:
    return Path(workdir) / ".job" / "result.json"


def save_result(workdir: str | Path, result: JobResult) -> None:
    p = result_path(workdir)
    p.parent.mkdir(parents=True, exist_ok=True)
    tmp = p.with_suffix(".tmp")
    tmp.write_text(json.dumps(result.to_dict(), indent=2))
    tmp.replace(p)


def load_result(workdir: str | Path) -> JobResult | None:
    p = result_path(workdir)
    if not p.exists():
        return None
    data = json.loads(p.read_text())
    known = {f.name for f in fields(JobResult)}
    return JobResult(**{k: v for k, v in data.items() if k in known})


class Sandbox:
    """Base class. Subclasses implement `_start_and_wait` (and `_attach_running` if they can)."""

    name: str = "base"
    #: True when the backend isolates the job (network, filesystem, secrets). Only unsafe-local is False.
    isolated: bool = True
    #: True when jobs run on other machines (ray): their guarantees are those of the workers' own backend
    remote: bool = False

    @classmethod
    def check(cls) -> tuple[bool, str]:
        """(usable here?, a sentence saying why not and the exact fix)."""
        raise NotImplementedError

    def run(self, job: Job) -> JobResult:
        """Run `job` to completion, or return the result of an earlier run of the same job id."""
        done = load_result(job.workdir)
        if done is not None and done.job_id == job.id:
            return done
        attached = self._attach_running(job)
        result = attached if attached is not None else self._start_and_wait(job)
        save_result(job.workdir, result)
        return result

    def _attach_running(self, job: Job) -> JobResult | None:  # pragma: no cover - backend specific
        return None

    def _start_and_wait(self, job: Job) -> JobResult:  # pragma: no cover - abstract
        raise NotImplementedError


#: every sandbox backend: the built-ins below plus plugins of the entry-point group `agentlab.sandbox_backends`
#: (each a `Sandbox` subclass; `isolated` says whether it isolates the job)
SANDBOX_BACKENDS: Registry[type[Sandbox]] = Registry("sandbox_backends", "sandbox backend")
#: what "auto" tries, in order: the isolated backends that run a job on this machine
AUTO_BACKENDS = ("bwrap", "docker")


def register(name: str, loader: Callable[[], type[Sandbox]] | type[Sandbox]) -> None:
    """Add a backend: a `Sandbox` subclass or a zero-argument loader returning one (imported on first use)."""
    if isinstance(loader, type) and issubclass(loader, Sandbox):
        SANDBOX_BACKENDS.register(name, loader)
    else:
        SANDBOX_BACKENDS.register(name, loader=loader)


def backend_names() -> list[str]:
    """Every backend name (built-ins, then plugins); "auto" is not one of them."""
    return SANDBOX_BACKENDS.names()


def backend_class(name: str) -> type[Sandbox]:
    """The `Sandbox` subclass registered as `name` (SandboxUnavailable when there is none)."""
    try:
        return SANDBOX_BACKENDS.get(name)
    except UnknownName:
        raise SandboxUnavailable(f"unknown sandbox backend {name!r}; choose one of {', '.join(backend_names())} "
                                 "or auto") from None


def get_backend(name: str) -> Sandbox:
    """Instantiate a backend by name; "auto" picks the first isolated backend that works here."""
    if name == "auto":
        for cand in AUTO_BACKENDS:
            if cand in SANDBOX_BACKENDS:
                cls = SANDBOX_BACKENDS.get(cand)
                ok, _ = cls.check()
                if ok:
                    return cls()
        raise SandboxUnavailable(
            "no isolated sandbox backend works here: install bubblewrap (`apt-get install -y bubblewrap`) "
            "or start a docker engine; or, knowingly, pass `--sandbox unsafe-local`."
        )
    cls = backend_class(name)
    ok, why = cls.check()
    if not ok:
        raise SandboxUnavailable(f"sandbox backend {name!r} is not usable here: {why}")
    return cls()


def available_backends() -> list[tuple[str, bool, str]]:
    """(name, usable here?, why not and the fix) for every backend, plugins included."""
    out = []
    for name in backend_names():
        try:
            ok, why = SANDBOX_BACKENDS.get(name).check()
        except Exception as exc:  # a broken backend (or plugin) must not break doctor
            ok, why = False, f"{type(exc).__name__}: {exc}"
        out.append((name, ok, why))
    return out


class _Loaders(Mapping[str, Callable[[], type[Sandbox]]]):
    """Read-only `name -> loader` view of SANDBOX_BACKENDS, for callers of the old `_REGISTRY` dict."""

    def __getitem__(self, name: str) -> Callable[[], type[Sandbox]]:
        if name not in SANDBOX_BACKENDS:
            raise KeyError(name)
        return lambda: SANDBOX_BACKENDS.get(name)

    def __iter__(self) -> Iterator[str]:
        return iter(backend_names())

    def __len__(self) -> int:
        return len(backend_names())


_REGISTRY = _Loaders()  # deprecated: use SANDBOX_BACKENDS / backend_class()


def tail(data: bytes, limit: int = 4000) -> str:
    text = data.decode("utf-8", errors="replace")
    return text[-limit:]


def which(prog: str) -> str | None:
    return shutil.which(prog)


SANDBOX_BACKENDS.register("bwrap", lazy="agentlab.sandbox.bwrap:BwrapSandbox")
SANDBOX_BACKENDS.register("docker", lazy="agentlab.sandbox.docker:DockerSandbox")
SANDBOX_BACKENDS.register("unsafe-local", lazy="agentlab.sandbox.unsafe_local:UnsafeLocalSandbox")
SANDBOX_BACKENDS.register("ray", lazy="agentlab.sandbox.ray_backend:RaySandbox")


def inputs_of(job: Job) -> list[str]:
    """The job's declared inputs that exist as regular files (never links), else every file in its workdir."""
    if job.inputs is None:
        return job_inputs(job.workdir)
    root = Path(job.workdir)
    return sorted(r for r in job.inputs if (root / r).is_file() and not (root / r).is_symlink())


def job_inputs(workdir: str | Path, limit: int = 256) -> list[str]:
    """The job's inputs: regular files under `workdir` with plain names (no dotfiles, so never `.job/`), at
    most 3 levels deep. Links are skipped: the host wrote these files and mounts exactly them read-only."""
    root = Path(workdir)
    out: list[str] = []
    stack = [(root, 0)]
    while stack and len(out) < limit:
        d, depth = stack.pop()
        for p in sorted(d.iterdir()):
            if p.name.startswith(".") or p.is_symlink():
                continue
            if p.is_dir() and depth < 2:
                stack.append((p, depth + 1))
            elif p.is_file():
                out.append(p.relative_to(root).as_posix())
    return sorted(out[:limit])
