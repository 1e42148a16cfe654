"""bubblewrap backend: the default local sandbox.

The job sees a read-only allowlist of the host (system dirs, a few /etc files, the python prefix, the venv,
the project package at /opt/agentlab), a fresh capped tmpfs at /job with its inputs mounted read-only in it,
capped private /tmp and /dev/shm, a read-only /proc/sys, no network, its own user/pid/ipc/uts/cgroup namespaces,
a seccomp filter and a fresh session keyring. As root, bwrap itself runs as the job's dedicated unprivileged uid
(`hostuser.py`). PID 1 is the supervisor (`jobinit.py`): it runs the job, enforces the wall clock, and sends
back what the job left in /job (`frames.py` lands it). Memory and process count are enforced with a per-job
cgroup where the host allows it (else rlimits), CPU time with RLIMIT_CPU plus cgroup accounting. When the job
ends every process it started is killed (supervisor, pid namespace, cgroup). See docs/sandbox.md.
"""

from __future__ import annotations

import base64
import glob
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

from agentlab.sandbox import hostuser, seccomp
from agentlab.sandbox.base import Job, JobResult, Limits, Sandbox, inputs_of, tail, which
from agentlab.sandbox.frames import Caps
from agentlab.sandbox.hostuser import Stage
from agentlab.sandbox.limits import JobCgroup, apply_rlimits
from agentlab.sandbox.supervise import end_reason, follow_supervisor

JOB_DIR = "/job"  # where the workdir appears inside the sandbox
CODE_DIR = "/opt/agentlab"  # PYTHONPATH root; the project package is mounted at CODE_DIR/agentlab
SANDBOX_UID = 65534
#: /etc entries the job may see: name resolution for localhost, the dynamic loader, TLS roots, time zone
ETC_ALLOW = (
    "passwd", "group", "hosts", "nsswitch.conf", "host.conf", "gai.conf", "ld.so.cache", "ld.so.conf",
    "ld.so.conf.d", "localtime", "timezone", "ssl/certs", "ca-certificates", "alternatives", "mime.types",
    "os-release", "protocols", "services",
)  # fmt: skip
SYSTEM_DIRS = ("/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32", "/opt/conda")


def project_package_dir() -> Path:
    """The host directory of the `agentlab` package (mounted read-only into every sandbox)."""
    return Path(__file__).resolve().parents[1]


def python_paths() -> list[str]:
    """Host paths the interpreter needs: the venv and the base prefix it was created from."""
    paths = []
    for p in (sys.prefix, sys.base_prefix, os.path.dirname(os.path.realpath(sys.executable))):
        p = os.path.realpath(p)
        if p.endswith("/bin"):
            p = os.path.dirname(p)
        if not any(p == s or p.startswith(s + "/") for s in ("/usr", "/bin", "/lib")):
            paths.append(p)
    # the venv's own path (not realpath'd) must exist too, since its bin/ symlinks point through it
    paths.append(sys.prefix)
    return sorted(set(paths))


def sandbox_env(job: Job) -> dict[str, str]:
    """The complete environment of a job: nothing is inherited from the host."""
    env = {
        "PATH": f"{sys.prefix}/bin:/usr/local/bin:/usr/bin:/bin",
        "PYTHONPATH": CODE_DIR,
        "PYTHONUNBUFFERED": "1",
        "PYTHONDONTWRITEBYTECODE": "1",
        "HOME": "/tmp",  # private tmpfs, never the host's home
        "TMPDIR": "/tmp",
        "LANG": "C.UTF-8",
        "HF_HUB_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
        "MPLCONFIGDIR": "/tmp/.matplotlib",
        "AGENTLAB_JOB_ID": job.id,
        "AGENTLAB_SANDBOX": "bwrap",
    }
    env.update(job.env)
    return env


def supervisor_argv(job: Job, python: str, inputs: list[str], caps: Caps, with_seccomp: bool = False) -> list[str]:
    """The command bwrap/docker start as PID 1: `jobinit.py` (isolated mode: /job cannot shadow it). With
    `with_seccomp` it installs the seccomp program itself (docker, on top of the engine's default profile)."""
    cfg = {"cmd": list(job.command), "cwd": JOB_DIR, "wall": job.limits.wall_seconds, "collect": caps.config(inputs)}
    if with_seccomp:
        cfg["seccomp"] = base64.b64encode(seccomp.bpf_program()).decode()
    return [python, "-I", "-S", f"{CODE_DIR}/agentlab/sandbox/jobinit.py", json.dumps(cfg)]


def caps_for(lim: Limits) -> Caps:
    return Caps(max_files=lim.max_files_back, max_bytes=lim.disk_mb << 20, max_file=lim.max_file_mb_back << 20)


def small_tmpfs_mb(lim: Limits) -> int:
    """/tmp and /dev/shm: each a quarter of the memory limit, so neither can hold memory the limit misses."""
    return max(16, lim.memory_mb // 4)


def system_binds() -> list[str]:
    """Read-only system dirs (or the links standing for them, as on merged-/usr systems) and allowed /etc files."""
    a: list[str] = []
    for d in SYSTEM_DIRS:
        if os.path.islink(d):
            a += ["--symlink", os.readlink(d), d]
        elif os.path.isdir(d):
            a += ["--ro-bind", d, d]
    for name in ETC_ALLOW:
        if os.path.lexists(f"/etc/{name}"):
            a += ["--ro-bind-try", f"/etc/{name}", f"/etc/{name}"]
    return a


def build_argv(job: Job, inputs: list[str], seccomp_fd: int | None = None, stage: Stage | None = None) -> list[str]:
    """The bwrap command line for `job` (mount allowlist, namespaces, env). With `stage` (root orchestrator)
    every non-system source is bound from its staged copy, and /job is the stage's capped tmpfs."""

    def src(p: str) -> str:
        return stage.add(p) if stage is not None else p

    lim = job.limits
    a = ["bwrap", "--unshare-all", "--unshare-user", "--disable-userns", "--die-with-parent", "--new-session"]
    a += ["--as-pid-1", "--uid", str(SANDBOX_UID), "--gid", str(SANDBOX_UID), "--hostname", "sandbox"]
    # private /tmp first: the binds below may live under the host's /tmp (a venv or checkout there) and
    # must be mounted on top of it, not hidden by it
    small = str(small_tmpfs_mb(lim) << 20)
    a += ["--proc", "/proc", "--ro-bind", "/proc/sys", "/proc/sys", "--dev", "/dev"]
    a += ["--size", small, "--tmpfs", "/dev/shm", "--size", small, "--tmpfs", "/tmp"]
    a += system_binds()
    for p in python_paths() + [os.path.realpath(p) for p in job.readonly_paths]:
        a += ["--ro-bind", src(p), p]
    a += ["--ro-bind", src(str(project_package_dir())), f"{CODE_DIR}/agentlab"]
    if lim.gpus:  # NVIDIA and AMD device nodes (after --dev) plus a read-only /sys for driver/topology discovery
        a += [x for d in [*sorted(glob.glob("/dev/nvidia*")), "/dev/kfd", "/dev/dri"] for x in ("--dev-bind-try", d, d)]
        a += ["--ro-bind-try", "/sys", "/sys"]
    if stage is not None:
        a += ["--bind", stage.job_dir, JOB_DIR]
    else:
        a += ["--size", str(lim.disk_mb << 20), "--tmpfs", JOB_DIR]
    for rel in inputs:  # the host's copies, read-only: the job can neither change nor replace them
        a += ["--ro-bind", src(os.path.join(os.path.realpath(job.workdir), rel)), f"{JOB_DIR}/{rel}"]
    if seccomp_fd is not None:
        a += ["--seccomp", str(seccomp_fd)]
    a += ["--remount-ro", "/"]  # the sandbox's own root (a tmpfs holding the mount points) becomes read-only
    a += ["--chdir", JOB_DIR, "--clearenv"]
    for k, v in sandbox_env(job).items():
        a += ["--setenv", k, v]
    return a + ["--", *supervisor_argv(job, sys.executable, inputs, caps_for(lim))]


class BwrapSandbox(Sandbox):
    name = "bwrap"
    isolated = True
    _checked: tuple[bool, str] | None = None

    @classmethod
    def check(cls) -> tuple[bool, str]:
        if cls._checked is None:
            cls._checked = cls._probe()
        return cls._checked

    @classmethod
    def _probe(cls) -> tuple[bool, str]:
        if not which("bwrap"):
            return False, "bubblewrap is not installed; fix: `sudo apt-get install -y bubblewrap` (or dnf/pacman)"
        argv = ["bwrap", "--unshare-all", "--unshare-user", "--disable-userns", "--die-with-parent"]
        argv += ["--ro-bind", "/usr", "/usr", "--proc", "/proc", "--dev", "/dev"]
        for d in ("/bin", "/lib", "/lib64"):
            if os.path.islink(d):
                argv += ["--symlink", os.readlink(d), d]
            elif os.path.isdir(d):
                argv += ["--ro-bind", d, d]
        # as root, jobs run bwrap as a dedicated unprivileged uid: probe exactly that (unprivileged user namespaces)
        drop = (lambda: hostuser.drop_to(hostuser.job_uid("probe"))) if hostuser.running_as_root() else None
        try:
            p = subprocess.run([*argv, "/bin/sh", "-c", "true"], capture_output=True, timeout=20, preexec_fn=drop)
        except (OSError, subprocess.TimeoutExpired) as exc:
            return False, f"bwrap failed to start: {exc}"
        if p.returncode != 0:
            err = p.stderr.decode(errors="replace").strip()
            fix = (
                "jobs run as an unprivileged uid even when AgentLab is root, so enable unprivileged user "
                "namespaces: `sudo sysctl -w kernel.unprivileged_userns_clone=1` and, "
                "on Ubuntu >= 23.10, `sudo sysctl -w kernel.apparmor_restrict_unprivileged_userns=0`; inside a "
                "container run it with `--security-opt seccomp=unconfined --cap-add SYS_ADMIN` or use the docker backend"
            )
            return False, f"bwrap cannot create a sandbox here ({err[:200]}); fix: {fix}"
        usable, why = JobCgroup.works()
        if usable:
            return True, f"bubblewrap works; memory and process limits via {why}"
        procs = "NOT limited (the kernel ignores RLIMIT_NPROC for root)" if os.getuid() == 0 else "limited with RLIMIT_NPROC (per uid)"
        return True, (
            f"bubblewrap works, but {why}: memory is limited with RLIMIT_AS and processes are {procs}; "
            "fix: make /sys/fs/cgroup writable (run as root on the host, or `systemd-run --user --scope -p Delegate=yes ...`)"
        )

    def _start_and_wait(self, job: Job) -> JobResult:
        lim = job.limits
        meta = Path(job.workdir) / ".job"
        meta.mkdir(parents=True, exist_ok=True)
        inputs = inputs_of(job)
        root = hostuser.running_as_root()
        uid = hostuser.job_uid(job.id) if root else os.getuid()
        stage = Stage(uid, lim.disk_mb, lim.max_inodes) if root else None
        fd = seccomp.filter_fd()
        argv = build_argv(job, inputs, fd, stage)
        cg = JobCgroup.create(f"{re.sub(r'[^A-Za-z0-9_.-]', '_', job.id)}-{os.getpid()}-{time.time_ns()}", lim)

        def prepare_child() -> None:  # runs in the forked child before exec(bwrap)
            if cg is not None:
                cg.join()
            apply_rlimits(lim, with_memory=cg is None, nproc=lim.max_processes + 8 if (root or cg is None) else None)
            if stage is not None:
                stage.mount_in_child()
                hostuser.drop_to(uid)
            hostuser.new_session_keyring()

        guarantees = [f"host uid {uid}" + (" (dedicated, unprivileged)" if root else " (the orchestrator's own)"),
                      "/proc/sys read-only", "fresh session keyring", seccomp.describe(),
                      f"/job tmpfs {lim.disk_mb} MB" + (f", {lim.max_inodes} inodes" if root else ""),
                      f"/dev/shm and /tmp {small_tmpfs_mb(lim)} MB each",
                      f"memory via {'cgroup' if cg is not None else 'RLIMIT_AS'}"]  # fmt: skip
        try:
            proc = subprocess.Popen(
                argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                start_new_session=True, preexec_fn=prepare_child, pass_fds=(fd,),
                env={"PATH": "/usr/bin:/bin"},  # bwrap's own environment: no secrets
            )  # fmt: skip
        except BaseException:
            if cg is not None:
                cg.remove()
            raise
        finally:
            os.close(fd)
        start = time.monotonic()
        try:
            run = follow_supervisor(
                proc.stdout, proc.stderr, Path(job.workdir), set(inputs), caps_for(lim), lim,
                alive=lambda: proc.poll() is None, kill=lambda: _kill_tree(proc, cg),
                cpu_seconds=(lambda: cg.cpu_seconds()) if cg is not None else None,
            )  # fmt: skip
        finally:
            _kill_tree(proc, cg)  # leaves nothing behind: daemons, orphans, stopped processes
            proc.wait()
            oom = cg.oom_killed() if cg is not None else False
            if cg is not None:
                cg.remove()
            if stage is not None:
                stage.remove()
        reason, code, detail = end_reason(run, proc.returncode, oom, lim, has_cgroup=cg is not None)
        return JobResult(
            job_id=job.id, backend=self.name, exit_code=code, reason=reason,  # type: ignore[arg-type]
            wall_seconds=round(time.monotonic() - start, 3),
            stdout_tail=tail(run.pumps[0].tail_bytes()), stderr_tail=tail(run.pumps[1].tail_bytes()),
            output_truncated=any(p.truncated for p in run.pumps), detail=detail,
            files=run.channel.files, not_collected=run.channel.skipped, guarantees=guarantees,
        )  # fmt: skip


def _kill_tree(proc: subprocess.Popen, cg: JobCgroup | None) -> None:
    """Kill bwrap's process group (its pid-1 child then takes the whole pid namespace down) and the cgroup."""
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    if cg is not None:
        cg.kill_all()
