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
import time
from pathlib import Path
from typing import Any

from agentlab.sandbox import hostuser, seccomp
from agentlab.sandbox.base import Job, JobResult, Sandbox, SandboxUnavailable, inputs_of, tail
from agentlab.sandbox.bwrap import CODE_DIR, JOB_DIR, caps_for, project_package_dir, small_tmpfs_mb, supervisor_argv
from agentlab.sandbox.limits import cpu_limit
from agentlab.sandbox.supervise import HOST_GRACE_SECONDS, end_reason, follow_supervisor

LABEL = "org.agentlab"
TEST_IMAGE = "agentlab-sandbox:test"
FIX_DAEMON = (
    "install and start a docker engine: `sudo apt-get install -y docker.io && sudo dockerd &` "
    "(CI: `sudo bash sandbox/ci-setup-docker.sh`), and make sure this user may use /var/run/docker.sock"
)
FIX_IMAGE = (
    "`docker build -f sandbox/Dockerfile.cpu -t agentlab-sandbox:cpu .` (needs registry access) or, offline, "
    "`sandbox/build-offline-image.sh` (builds agentlab-sandbox:test from this host's python and venv)"
)
#: paths the container mounts a fresh tmpfs (or the project) over: an image must not need anything under them
HIDDEN = ("/tmp", "/job", "/dev/shm", "/opt/agentlab/")


def hidden_path_entries(image_env: list[str] | None) -> list[str]:
    """The PATH entries of an image's environment that the sandbox hides (e.g. a venv built under /tmp)."""
    path = next((e.split("=", 1)[1] for e in image_env or () if e.startswith("PATH=")), "")
    return [d for d in path.split(":") if d and any(d == h.rstrip("/") or d.startswith(h.rstrip("/") + "/")
                                                     for h in HIDDEN)]


def explain(exc: BaseException, image: str, memory_mb: int | None = None) -> SandboxUnavailable:
    """A docker SDK / API failure as a SandboxUnavailable that names the cause and the fix (never a traceback)."""
    from docker import errors

    text = str(getattr(exc, "explanation", None) or exc)
    low = text.lower()
    if isinstance(exc, errors.ImageNotFound) or ("no such image" in low and image in text):
        return SandboxUnavailable(f"the docker sandbox image {image} does not exist; fix: {FIX_IMAGE}")
    if "executable file not found" in low or "no such file or directory: unknown" in low:
        return SandboxUnavailable(
            f"the docker sandbox image {image} cannot start python ({text[:200]}): it was built from a venv the "
            "sandbox hides (e.g. one under /tmp, covered by the container's private /tmp) or it is not a sandbox "
            f"image; fix: rebuild it with `sandbox/build-offline-image.sh {image}` (it copies the venv to "
            "/opt/agentlab-venv inside the image) or `docker build -f sandbox/Dockerfile.cpu`")
    if re.search(r"minimum memory limit|\boom\b|out of memory|cannot allocate memory", low):
        return SandboxUnavailable(
            f"docker could not start the container for lack of memory ({text[:200]}); fix: give the job a memory "
            f"limit it can start with (now {memory_mb} MB: `--memory MB` / attempt_memory_mb) and check the host's "
            "free memory")
    if "could not select device driver" in low or "nvidia-container" in low:
        return SandboxUnavailable(
            f"docker cannot give the container a GPU ({text[:200]}); fix: install the NVIDIA container toolkit "
            "(`nvidia-ctk runtime configure --runtime=docker` and restart dockerd), or run with --gpus 0")
    if not isinstance(exc, errors.APIError) or "connection" in low or "docker.sock" in low:
        return SandboxUnavailable(f"cannot reach the docker daemon ({type(exc).__name__}: {text[:200]}); "
                                  f"fix: {FIX_DAEMON}")
    return SandboxUnavailable(f"the docker daemon refused the sandbox container ({exc.__class__.__name__}: "
                              f"{text[:300]}); fix: see `agentlab sandbox check` and the daemon's log")


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
        try:
            self.client = _client()
        except Exception as exc:  # noqa: BLE001 - the daemon went away since check()
            raise explain(exc, ", ".join(image_candidates())) from None

    def run(self, job: Job) -> JobResult:
        """As Sandbox.run; a failure of docker itself (daemon, image, runtime) becomes a SandboxUnavailable that
        names the cause and the fix, so the run stops resumably instead of blaming the job."""
        from docker.errors import DockerException
        from requests.exceptions import RequestException

        try:
            return super().run(job)
        except (DockerException, RequestException) as exc:
            raise explain(exc, self._image(job.limits.gpus), job.limits.memory_mb) from None

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
                found = client.images.get(img)
            except Exception:  # noqa: BLE001
                continue
            hidden = hidden_path_entries((found.attrs.get("Config") or {}).get("Env"))
            if hidden:
                return False, (f"the sandbox image {img} runs python from {', '.join(hidden)}, which the sandbox "
                               f"hides (its /tmp is a private tmpfs); fix: rebuild it with "
                               f"`sandbox/build-offline-image.sh {img}` (the venv goes to /opt/agentlab-venv)")
            return True, f"docker works (server {client.version().get('Version', '?')}), image {img}"
        return False, f"docker works but no sandbox image ({', '.join(images)}) exists; fix: {FIX_IMAGE}"

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

    @staticmethod
    def _user(job: Job) -> str:
        """Never root: the job's dedicated uid when we are root (as on bwrap), else the caller's uid."""
        uid = hostuser.job_uid(job.id) if hostuser.running_as_root() else os.getuid()
        return f"{uid}:{uid}"

    def create(self, job: Job) -> Any:
        """Create and start the container for `job` without waiting (the resumable half of a run)."""
        from docker.types import DeviceRequest, LogConfig, Ulimit

        lim = job.limits
        workdir = Path(job.workdir).resolve()
        (workdir / ".job").mkdir(parents=True, exist_ok=True)
        inputs = inputs_of(job)
        cpu = int(cpu_limit(lim)) + 1
        labels = {f"{LABEL}.{k}": str(v) for k, v in job.labels.items()}
        labels.update({
            f"{LABEL}.job-id": job.id,
            f"{LABEL}.deadline": str(time.time() + lim.wall_seconds + HOST_GRACE_SECONDS),
            f"{LABEL}.memory-mb": str(lim.memory_mb),
        })  # fmt: skip
        volumes = {str(workdir / rel): {"bind": f"{JOB_DIR}/{rel}", "mode": "ro"} for rel in inputs}
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
        small = small_tmpfs_mb(lim)
        uid = self._user(job).split(":")[0]
        owner = f"uid={uid},gid={uid},mode=0700"  # (mode= alone loses to the image's own /job mode)
        # the log holds the supervisor's frames: the job's output *and* the files it left (base64)
        log_cap = max(lim.max_output_bytes * 10, 10_000_000) + (lim.disk_mb << 20) * 2
        container = self.client.containers.create(
            self._image(lim.gpus),
            command=supervisor_argv(job, "python", inputs, caps_for(lim), with_seccomp=True),
            name=container_name(job.id), labels=labels, environment=env, working_dir=JOB_DIR,
            user=self._user(job), network_mode="none", read_only=True, volumes=volumes,
            tmpfs={"/tmp": f"rw,nosuid,nodev,size={small}m,mode=1777",
                   JOB_DIR: f"rw,nosuid,nodev,exec,size={lim.disk_mb}m,nr_inodes={lim.max_inodes},{owner}"},
            shm_size=f"{small}m", mem_limit=f"{lim.memory_mb}m", memswap_limit=f"{lim.memory_mb}m",
            pids_limit=lim.max_processes,
            ulimits=[Ulimit(name="cpu", soft=cpu, hard=cpu + 5), Ulimit(name="core", soft=0, hard=0),
                     Ulimit(name="fsize", soft=lim.disk_mb << 20, hard=lim.disk_mb << 20)],
            cap_drop=["ALL"], security_opt=["no-new-privileges"],  # + docker's default seccomp profile, and ours (jobinit)
            ipc_mode="private", hostname="sandbox",
            log_config=LogConfig(type="json-file", config={"max-size": str(log_cap), "max-file": "1"}),
            stdin_open=False, tty=False, detach=True, **kw,
        )  # fmt: skip
        try:
            container.start()
        except Exception:
            try:  # a container that cannot start must not be "reattached" later
                container.remove(force=True)
            except Exception:  # noqa: BLE001 - the start error is the one to report
                pass
            raise
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
        """Read the supervisor's frames from the container's log, enforce the host deadline, then remove it.
        A reattached run reads the log from its start, so it lands the same files and output."""
        lim = job.limits
        deadline = float(container.labels.get(f"{LABEL}.deadline", time.time() + lim.wall_seconds + HOST_GRACE_SECONDS))
        start = time.monotonic()
        state: dict = {}

        def alive() -> bool:
            try:
                container.reload()
            except Exception:  # noqa: BLE001 - gone
                return False
            state.update(container.attrs.get("State", {}))
            return container.status not in ("exited", "dead")

        def kill() -> None:
            try:
                container.kill()
            except Exception:  # noqa: BLE001 - already gone
                pass

        def frames():
            return container.logs(stream=True, follow=True, stdout=True, stderr=False)

        run = follow_supervisor(None, None, Path(job.workdir), set(inputs_of(job)), caps_for(lim), lim,
                                alive=alive, kill=kill, lines=frames, deadline=deadline)  # fmt: skip
        try:
            run.supervisor_err = container.logs(stdout=False, stderr=True, tail=50)[-4000:]
        except Exception:  # noqa: BLE001
            pass
        try:
            container.remove(force=True)
        except Exception:  # noqa: BLE001
            pass
        reason, code, detail = end_reason(run, state.get("ExitCode"), bool(state.get("OOMKilled")), lim)
        where = f"container {container.short_id}" + (" (reattached after a restart)" if attached else "")
        return JobResult(
            job_id=job.id, backend=self.name, exit_code=code, reason=reason,  # type: ignore[arg-type]
            wall_seconds=round(time.monotonic() - start, 3),
            stdout_tail=tail(run.pumps[0].tail_bytes()), stderr_tail=tail(run.pumps[1].tail_bytes()),
            output_truncated=any(p.truncated for p in run.pumps), detail=f"{where}; {detail}" if detail else where,
            files=run.channel.files, not_collected=run.channel.skipped,
            guarantees=[f"user {self._user(job)}", "read-only root", "no-new-privileges", "all capabilities dropped",
                        "docker's default seccomp profile", seccomp.describe(), f"/job tmpfs {lim.disk_mb} MB, {lim.max_inodes} inodes",
                        f"/dev/shm and /tmp {small_tmpfs_mb(lim)} MB each", "memory via cgroup"],
        )  # fmt: skip
