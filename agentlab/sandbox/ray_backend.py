"""Ray backend: each experiment attempt runs on a Ray cluster node, isolated there by that node's
own sandbox (bwrap by default, docker where present), with the job's GPUs and memory reserved.

The job is a detached, named Ray actor (`agentlab-job-<job id>` in namespace "agentlab"), so an
orchestrator that dies mid-attempt does not take the attempt with it: the next orchestrator finds
the actor by the job's deterministic id and collects its result instead of running it again.
The job's files travel to the worker as bytes; results.json, every new or changed file and the
logs come back into the job's workdir (no shared filesystem is assumed).

Configuration (environment of the orchestrator):
  AGENTLAB_RAY_ADDRESS   the cluster, e.g. 10.0.0.5:6379 (the head's GCS address) — required
  AGENTLAB_RAY_SANDBOX   isolation on the worker: auto (default) | bwrap | docker | unsafe-local
  AGENTLAB_RAY_IMAGE     optional container image for the actor (Ray `runtime_env.image_uri`)
  AGENTLAB_RAY_RESERVE_MEMORY  1 (default): reserve the job's memory_mb as Ray `memory`; 0: don't
"""

from __future__ import annotations

import os
import socket
import threading
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

from agentlab.sandbox.base import Job, JobResult, Sandbox, inputs_of, job_inputs
from agentlab.sandbox.safe_files import UntrustedFileError, check_relpath, read_bytes, write_new

NAMESPACE = "agentlab"
MAX_SEND_BYTES = 256 * 2**20  # the job's files shipped to the worker
MAX_FILE_BACK = 64 * 2**20  # one file brought back
MAX_FILES_BACK = 1000
_connect_lock = threading.Lock()
_actor_cls: Any = None


def actor_name(job_id: str) -> str:
    return f"agentlab-job-{job_id}"


def pack(workdir: str | Path, names: list[str] | None = None) -> dict[str, bytes]:
    """The job's input files (relative path -> bytes): `names`, or every regular file (never `.job/`)."""
    root = Path(workdir)
    out: dict[str, bytes] = {}
    for rel in names if names is not None else job_inputs(root):
        p = root / rel
        if p.is_file() and not p.is_symlink():
            out[rel] = p.read_bytes()
    if sum(map(len, out.values())) > MAX_SEND_BYTES:
        raise ValueError(f"job files exceed {MAX_SEND_BYTES >> 20} MiB; keep data out of the experiment directory")
    return out


def unpack(root: str | Path, files: dict[str, bytes], keep: set[str] | frozenset = frozenset()) -> list[str]:
    """Write files that came back from a worker; returns "path: why" for each one refused. Names are checked
    like any job output (plain relative paths, no dotfiles), nothing in `keep` (the job's inputs) is replaced,
    and no link is followed (`safe_files.write_new`)."""
    refused = []
    for rel, data in list(files.items())[:MAX_FILES_BACK]:
        try:
            rel = check_relpath(rel)
            if rel in keep:
                raise UntrustedFileError("invalid", f"{rel}: an input of the job; the host's copy is kept")
            write_new(root, rel, data)
        except (UntrustedFileError, OSError) as exc:
            refused.append(f"{str(rel)[:200]}: {str(exc)[:200]}")
    return refused


def _actor_class():
    """The Ray actor class, defined on first use so importing this module does not need ray."""
    global _actor_cls
    if _actor_cls is not None:
        return _actor_cls
    import ray

    @ray.remote
    class JobRunner:
        """Runs one job on its worker in a background thread; survives its caller (detached)."""

        def __init__(self) -> None:
            self._thread: threading.Thread | None = None
            self._done = threading.Event()
            self._out: dict | None = None

        def start(self, job_id: str, files: dict[str, bytes], command: list[str], limits: dict,
                  env: dict[str, str], inner: str, readonly: tuple[str, ...] = ()) -> bool:
            if self._thread is not None:
                return False
            self._thread = threading.Thread(target=self._work, daemon=True,
                                            args=(job_id, files, command, limits, env, inner, readonly))
            self._thread.start()
            return True

        def _work(self, job_id, files, command, limits, env, inner, readonly) -> None:
            import shutil
            import tempfile

            from agentlab.sandbox.base import Limits, get_backend

            tmp = tempfile.mkdtemp(prefix="agentlab-ray-")
            used, back, skipped = inner, {}, []
            try:
                unpack(tmp, files)
                backend = get_backend(inner)
                used = backend.name
                extra = {"readonly_paths": tuple(readonly)} if readonly else {}  # same paths on every node
                res = backend.run(Job(id=job_id, workdir=tmp, command=command, limits=Limits(**limits), env=env,
                                      inputs=tuple(files), **extra))
                for rel in res.files:  # what the inner backend brought back (already checked there)
                    try:
                        data = read_bytes(tmp, rel, MAX_FILE_BACK)
                    except UntrustedFileError:
                        skipped.append(rel)
                        continue
                    if files.get(rel) != data:
                        back[rel] = data
                result = res.to_dict()
            except Exception as exc:  # the worker cannot run it: report, don't hang the caller
                result = JobResult(job_id, "ray", None, "error", 0.0, "", "",
                                   detail=f"on the worker: {type(exc).__name__}: {exc}").to_dict()
            finally:
                shutil.rmtree(tmp, ignore_errors=True)
            self._out = {"result": result, "files": back, "skipped": skipped, "inner": used,
                         "node": socket.gethostname(), "pid": os.getpid()}
            self._done.set()

        def started(self) -> bool:
            return self._thread is not None

        def wait(self, timeout: float) -> dict | None:
            return self._out if self._done.wait(timeout) else None

    _actor_cls = JobRunner
    return _actor_cls


class RaySandbox(Sandbox):
    name = "ray"
    isolated = True  # isolation comes from the worker's own backend (AGENTLAB_RAY_SANDBOX)
    remote = True

    @classmethod
    def check(cls) -> tuple[bool, str]:
        try:
            import ray  # noqa: F401
        except ImportError:
            return False, "ray is not installed: pip install 'agentlab[ray]'"
        addr = os.environ.get("AGENTLAB_RAY_ADDRESS", "")
        if not addr:
            return False, "set AGENTLAB_RAY_ADDRESS to the cluster's head, e.g. AGENTLAB_RAY_ADDRESS=10.0.0.5:6379"
        host, _, port = addr.removeprefix("ray://").rpartition(":")
        try:
            socket.create_connection((host or "127.0.0.1", int(port)), timeout=3).close()
        except (OSError, ValueError) as exc:
            return False, f"Ray head {addr} is not reachable ({exc}); start it with `ray start --head`"
        inner = os.environ.get("AGENTLAB_RAY_SANDBOX", "auto")
        return True, f"Ray cluster at {addr}; jobs isolated on workers by {inner}"

    def __init__(self, address: str | None = None, inner: str | None = None):
        self.address = address or os.environ.get("AGENTLAB_RAY_ADDRESS", "")
        self.inner = inner or os.environ.get("AGENTLAB_RAY_SANDBOX", "auto")

    def _connect(self) -> None:
        import ray

        with _connect_lock:
            if not ray.is_initialized():
                ray.init(address=self.address or "auto", namespace=NAMESPACE, log_to_driver=False,
                         logging_level="WARNING")

    def _options(self, job: Job) -> dict:
        lim = job.limits
        opts: dict[str, Any] = {"name": actor_name(job.id), "namespace": NAMESPACE, "lifetime": "detached",
                                "get_if_exists": True, "num_cpus": 1, "num_gpus": lim.gpus, "max_concurrency": 4,
                                "max_restarts": 0}
        if os.environ.get("AGENTLAB_RAY_RESERVE_MEMORY", "1") != "0":
            opts["memory"] = int(lim.memory_mb) * 2**20
        if os.environ.get("AGENTLAB_RAY_IMAGE"):
            opts["runtime_env"] = {"image_uri": os.environ["AGENTLAB_RAY_IMAGE"]}
        return opts

    def _attach_running(self, job: Job) -> JobResult | None:
        """Collect a job that an earlier orchestrator started (the actor is still alive)."""
        import ray

        self._connect()
        try:
            ray.get_actor(actor_name(job.id), namespace=NAMESPACE)
        except ValueError:
            return None
        return self._start_and_wait(job)  # get_if_exists: the same actor; start() is a no-op once started

    def _start_and_wait(self, job: Job) -> JobResult:
        import ray
        from ray.exceptions import RayActorError

        self._connect()
        t0 = time.monotonic()
        actor = _actor_class().options(**self._options(job)).remote()
        try:
            if not ray.get(actor.started.remote()):
                ray.get(actor.start.remote(job.id, pack(job.workdir, inputs_of(job)), list(job.command), asdict(job.limits),
                                           dict(job.env), self.inner, tuple(getattr(job, "readonly_paths", ()))))
            out = None
            while out is None:
                out = ray.get(actor.wait.remote(30.0))
        except RayActorError as exc:
            return JobResult(job.id, self.name, None, "error", round(time.monotonic() - t0, 3), "", "",
                             detail=f"the Ray actor died (node lost?): {exc}"[:2000])
        finally:
            try:
                ray.kill(actor)
            except Exception:  # already gone
                pass
        return self._land(job, out)

    def _land(self, job: Job, out: dict) -> JobResult:
        """Write the returned files and logs into the job's workdir; the result names where it ran."""
        refused = unpack(job.workdir, out["files"], set(inputs_of(job)))
        res = JobResult(**out["result"])
        res.not_collected = [*res.not_collected, *refused][:50]
        logs = Path(job.workdir) / ".job"
        logs.mkdir(parents=True, exist_ok=True)
        (logs / "stdout.log").write_text(res.stdout_tail)
        (logs / "stderr.log").write_text(res.stderr_tail)
        where = f"ray node {out['node']} pid {out['pid']} via {out['inner']}"
        if out["skipped"]:
            where += f"; not brought back (over {MAX_FILE_BACK >> 20} MiB): {', '.join(out['skipped'])}"
        res.backend = self.name
        res.detail = f"{where}; {res.detail}" if res.detail else where
        return res
