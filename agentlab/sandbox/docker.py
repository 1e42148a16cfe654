"""docker backend (docker SDK): GPU-capable containers with no network and a read-only root.

Each job is one container named after its id and labelled with it (plus run/node/attempt), so a resumed
orchestrator finds the container of an attempt that is still running, or already exited, and waits on it
instead of starting a duplicate (`_attach_running`). Settings come from the environment:
AGENTLAB_SANDBOX_IMAGE (default: agentlab-sandbox:{cpu,cuda,rocm}, falling back to agentlab-sandbox:test),
AGENTLAB_SANDBOX_GPU_VENDOR (nvidia|amd|auto), AGENTLAB_SANDBOX_CPUS (CPU quota, e.g. "2").
"""

from __future__ import annotations

import os
import re
import threading
import time
from pathlib import Path
from typing import Any

from agentlab.sandbox.base import Job, JobResult, Sandbox, tail
from agentlab.sandbox.bwrap import CODE_DIR, JOB_DIR, project_package_dir
from agentlab.sandbox.limits import HARD_OUTPUT_FACTOR, OutputPump, cpu_limit

LABEL = "org.agentlab"
TEST_IMAGE = "agentlab-sandbox:test"
FIX_DAEMON = (
    "install and start a docker engine: `sudo apt-get install -y docker.io && sudo dockerd &` "
    "(CI: `sudo bash sandbox/ci-setup-docker.sh`), and make sure this user may use /var/run/docker.sock"
)


def gpu_vendor() -> str:
    v = os.environ.get("AGENTLAB_SANDBOX_GPU_VENDOR", "auto").lower()
    if v != "auto":
        return v
    return "amd" if os.path.exists("/dev/kfd") else "nvidia"


def image_candidates(gpus: int = 0) -> list[str]:
    if os.environ.get("AGENTLAB_SANDBOX_IMAGE"):
        return [os.environ["AGENTLAB_SANDBOX_IMAGE"]]
    main = "agentlab-sandbox:cpu" if gpus == 0 else ("agentlab-sandbox:rocm" if gpu_vendor() == "amd" else "agentlab-sandbox:cuda")
    return [main, TEST_IMAGE] if gpus == 0 else [main]


def container_name(job_id: str) -> str:
    return "agentlab-" + re.sub(r"[^A-Za-z0-9_.-]", "_", job_id)[:200]


def _client():
    import docker  # imported lazily: the SDK is optional for the other backends

    return docker.from_env(timeout=60)


class DockerSandbox(Sandbox):
    name = "docker"
    isolated = True

    def __init__(self) -> None:
        self.client = _client()

    @classmethod
    def check(cls) -> tuple[bool, str]:
        try:
            import docker  # noqa: F401
        except ImportError:
            return False, "the docker SDK is missing; fix: `pip install docker`"
        try:
            client = _client()
            client.ping()
        except Exception as exc:  # noqa: BLE001 - any failure means "no daemon here"
            return False, f"cannot reach a docker daemon ({type(exc).__name__}: {str(exc)[:160]}); fix: {FIX_DAEMON}"
        images = image_candidates()
        for img in images:
            try:
                client.images.get(img)
                return True, f"docker works (server {client.version().get('Version', '?')}), image {img}"
            except Exception:  # noqa: BLE001
                continue
        return False, (
            f"docker works but no sandbox image ({', '.join(images)}) exists; fix: "
            "`docker build -f sandbox/Dockerfile.cpu -t agentlab-sandbox:cpu .` (needs registry access) or, offline, "
            "`sandbox/build-offline-image.sh` (builds agentlab-sandbox:test from this host's python and venv)"
        )

    # ---- container life cycle ----------------------------------------------------------------
    def _image(self, gpus: int) -> str:
        cands = image_candidates(gpus)
        for img in cands:
            try:
                self.client.images.get(img)
                return img
            except Exception:  # noqa: BLE001
                continue
        return cands[0]

    def _user(self, workdir: Path) -> str:
        """A non-root user that owns the work dir: the caller's uid, or nobody when we are root."""
        if os.geteuid() != 0:
            return f"{os.getuid()}:{os.getgid()}"
        for root, dirs, files in os.walk(workdir):
            dirs[:] = [d for d in dirs if not (root == str(workdir) and d == ".job")]
            for n in [root, *(os.path.join(root, f) for f in files)]:
                os.lchown(n, 65534, 65534)
        return "65534:65534"

    def create(self, job: Job) -> Any:
        """Create and start the container for `job` without waiting (the resumable half of a run)."""
        from docker.types import DeviceRequest, LogConfig, Ulimit

        lim = job.limits
        workdir = Path(job.workdir).resolve()
        (workdir / ".job").mkdir(parents=True, exist_ok=True)
        cpu = int(cpu_limit(lim)) + 1
        labels = {f"{LABEL}.{k}": str(v) for k, v in job.labels.items()}
        labels.update({
            f"{LABEL}.job-id": job.id,
            f"{LABEL}.deadline": str(time.time() + lim.wall_seconds),
            f"{LABEL}.memory-mb": str(lim.memory_mb),
        })  # fmt: skip
        volumes = {str(workdir): {"bind": JOB_DIR, "mode": "rw"}}
        volumes[str(project_package_dir())] = {"bind": f"{CODE_DIR}/agentlab", "mode": "ro"}
        for p in job.readonly_paths:
            volumes[os.path.realpath(p)] = {"bind": os.path.realpath(p), "mode": "ro"}
        env = {
            "PYTHONPATH": CODE_DIR, "PYTHONUNBUFFERED": "1", "PYTHONDONTWRITEBYTECODE": "1", "HOME": "/tmp",
            "TMPDIR": "/tmp", "LANG": "C.UTF-8", "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1",
            "MPLCONFIGDIR": "/tmp/.matplotlib", "AGENTLAB_JOB_ID": job.id, "AGENTLAB_SANDBOX": "docker",
        }  # fmt: skip
        env.update(job.env)
        kw: dict[str, Any] = {}
        if lim.gpus:
            if gpu_vendor() == "amd":
                kw["devices"] = [f"{d}:{d}:rwm" for d in ("/dev/kfd", "/dev/dri") if os.path.exists(d)]
                kw["group_add"] = sorted({str(os.stat(d).st_gid) for d in ("/dev/kfd", "/dev/dri/renderD128") if os.path.exists(d)})
            else:
                kw["device_requests"] = [DeviceRequest(count=lim.gpus, capabilities=[["gpu"]])]
        if os.environ.get("AGENTLAB_SANDBOX_CPUS"):
            kw["nano_cpus"] = int(float(os.environ["AGENTLAB_SANDBOX_CPUS"]) * 1e9)
        log_cap = max(lim.max_output_bytes * 10, 10_000_000)
        container = self.client.containers.create(
            self._image(lim.gpus),
            command=["python", f"{CODE_DIR}/agentlab/sandbox/launcher.py", "--wall", str(lim.wall_seconds + 5), "--",
                     *job.command],  # fmt: skip
            name=container_name(job.id), labels=labels, environment=env, working_dir=JOB_DIR,
            user=self._user(workdir), network_mode="none", read_only=True, volumes=volumes,
            tmpfs={"/tmp": f"rw,nosuid,nodev,size={lim.memory_mb}m,mode=1777", f"{JOB_DIR}/.job": "rw,size=64k"},
            mem_limit=f"{lim.memory_mb}m", memswap_limit=f"{lim.memory_mb}m", pids_limit=lim.max_processes,
            ulimits=[Ulimit(name="cpu", soft=cpu, hard=cpu + 5), Ulimit(name="core", soft=0, hard=0)],
            cap_drop=["ALL"], security_opt=["no-new-privileges"], ipc_mode="private", hostname="sandbox",
            log_config=LogConfig(type="json-file", config={"max-size": str(log_cap), "max-file": "1"}),
            stdin_open=False, tty=False, detach=True, **kw,
        )  # fmt: skip
        container.start()
        return container

    def _find(self, job: Job) -> list[Any]:
        return self.client.containers.list(all=True, filters={"label": f"{LABEL}.job-id={job.id}"})

    def _attach_running(self, job: Job) -> JobResult | None:
        found = self._find(job)
        if not found:
            return None
        container = found[0]
        for extra in found[1:]:  # should never happen (names are unique); never leave strays
            extra.remove(force=True)
        if container.status == "created":
            container.start()
        return self._follow(container, job, attached=True)

    def _start_and_wait(self, job: Job) -> JobResult:
        from docker.errors import APIError

        try:
            container = self.create(job)
        except APIError as exc:
            if exc.status_code == 409:  # a container with this job's name appeared meanwhile: attach to it
                attached = self._attach_running(job)
                if attached is not None:
                    return attached
            raise
        return self._follow(container, job, attached=False)

    def _follow(self, container: Any, job: Job, attached: bool) -> JobResult:
        """Stream output, enforce wall clock and output caps, then collect and remove the container."""
        lim = job.limits
        meta = Path(job.workdir) / ".job"
        meta.mkdir(parents=True, exist_ok=True)
        deadline = float(container.labels.get(f"{LABEL}.deadline", time.time() + lim.wall_seconds))
        start = time.monotonic()
        killed_for: list[tuple[str, str]] = []

        def kill(why: str, msg: str) -> None:
            if not killed_for:
                killed_for.append((why, msg))
            try:
                container.kill()
            except Exception:  # noqa: BLE001 - already gone
                pass

        cap_msg = f"output cap of {lim.max_output_bytes * HARD_OUTPUT_FACTOR} bytes exceeded"
        pumps = [
            OutputPump(None, meta / n, lim.max_output_bytes, lambda: kill("output_limit", cap_msg))  # type: ignore[arg-type]
            for n in ("stdout.log", "stderr.log")
        ]
        threads = [
            threading.Thread(target=_stream_logs, args=(container, pumps[0], True), daemon=True),
            threading.Thread(target=_stream_logs, args=(container, pumps[1], False), daemon=True),
        ]
        for t in threads:
            t.start()
        # If this loop is interrupted (Ctrl-C, API error) the container is left for a resumed run to reattach;
        # its launcher enforces the wall clock on its own, so nothing runs unbounded.
        while True:
            container.reload()
            if container.status in ("exited", "dead"):
                break
            if time.time() > deadline:
                kill("timeout", f"wall-clock limit of {lim.wall_seconds:g} s reached")
            time.sleep(0.1)
        for t in threads:
            t.join(timeout=10)
        state = container.attrs.get("State", {})
        try:
            container.remove(force=True)
        except Exception:  # noqa: BLE001
            pass
        rc = state.get("ExitCode")
        detail = f"container {container.short_id}" + (" (reattached after a restart)" if attached else "")
        if killed_for:
            reason, detail = killed_for[0][0], f"{detail}; {killed_for[0][1]}"
        elif state.get("OOMKilled"):
            reason, detail = "memory", f"{detail}; memory limit of {lim.memory_mb} MB exceeded"
        elif rc == 124 and b"launcher: wall-clock limit" in pumps[1].tail_bytes():
            reason, detail = "timeout", f"{detail}; wall-clock limit of {lim.wall_seconds:g} s reached (in-container deadline)"
        elif rc == 128 + 24:  # SIGXCPU
            reason, detail = "timeout", f"{detail}; CPU time limit reached"
        elif rc in (128 + 9, 128 + 15):
            reason = "killed"
        elif rc == 127 and b"launcher: cannot run" in pumps[1].tail_bytes():
            reason = "error"
        else:
            reason = "finished"
        return JobResult(
            job_id=job.id, backend=self.name, exit_code=None if killed_for else rc, reason=reason,  # type: ignore[arg-type]
            wall_seconds=round(time.monotonic() - start, 3),
            stdout_tail=tail(pumps[0].tail_bytes()), stderr_tail=tail(pumps[1].tail_bytes()),
            output_truncated=any(p.truncated for p in pumps), detail=detail,
        )  # fmt: skip


def _stream_logs(container: Any, pump: OutputPump, stdout: bool) -> None:
    try:
        with open(pump.log_path, "wb") as log:
            for chunk in container.logs(stream=True, follow=True, stdout=stdout, stderr=not stdout):
                pump.feed(chunk, log)
    except Exception:  # noqa: BLE001 - the container went away; what we have is what we report
        pass
