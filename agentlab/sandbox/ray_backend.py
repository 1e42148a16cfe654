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

from agentlab.sandbox.base import Job, JobResult, Sandbox

NAMESPACE = "agentlab"
MAX_SEND_BYTES = 256 * 2**20  # the job's files shipped to the worker
MAX_FILE_BACK = 64 * 2**20  # one file brought back
_connect_lock = threading.Lock()
_actor_cls: Any = None


def actor_name(job_id: str) -> str:
    return f"agentlab-job-{job_id}"


def pack(workdir: str | Path) -> dict[str, bytes]:
    """The job's files (relative path -> bytes), without the host-side `.job/` bookkeeping."""
    root = Path(workdir)
    out: dict[str, bytes] = {}
    for p in sorted(root.rglob("*")):
        rel = p.relative_to(root)
        if p.is_file() and not p.is_symlink() and rel.parts[0] not in (".job", ".git"):
            out[rel.as_posix()] = p.read_bytes()
    if sum(map(len, out.values())) > MAX_SEND_BYTES:
        raise ValueError(f"job files exceed {MAX_SEND_BYTES >> 20} MiB; keep data out of the experiment directory")
    return out


def unpack(root: str | Path, files: dict[str, bytes]) -> None:
    base = Path(root).resolve()
    for rel, data in files.items():
        dest = (base / rel).resolve()
        if base not in dest.parents:  # never write outside the workdir
            continue
        dest.parent.mkdir(parents=True, exist_ok=True)
        dest.write_bytes(data)


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
                                      **extra))
                for p in Path(tmp).rglob("*"):
                    rel = p.relative_to(tmp).as_posix()
                    if not p.is_file() or p.is_symlink() or rel.startswith(".job/"):
                        continue
                    data = p.read_bytes()
                    if len(data) > MAX_FILE_BACK:
                        skipped.append(rel)
                    elif files.get(rel) != data:
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
                ray.get(actor.start.remote(job.id, pack(job.workdir), list(job.command), asdict(job.limits),
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
        unpack(job.workdir, out["files"])
        res = JobResult(**out["result"])
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
