"""bubblewrap backend: the default local sandbox.

The job sees a read-only allowlist of the host (system dirs, a few /etc files, the python prefix, the venv,
the project package at /opt/agentlab), its workdir read-write at /job, a private /tmp, no network, and its own
user/pid/ipc/uts/cgroup namespaces. Memory and process count are enforced with a per-job cgroup where the host
allows it (else rlimits), CPU time with RLIMIT_CPU plus cgroup accounting, wall clock by the host, output by
`OutputPump`. When the job ends every process it started is killed (pid namespace + cgroup).
"""

from __future__ import annotations

import glob
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

from agentlab.sandbox.base import Job, JobResult, Sandbox, tail, which
from agentlab.sandbox.limits import HARD_OUTPUT_FACTOR, JobCgroup, OutputPump, apply_rlimits, cpu_limit

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


def build_argv(job: Job) -> list[str]:
    """The bwrap command line for `job` (mount allowlist, namespaces, env)."""
    a = ["bwrap", "--unshare-all", "--unshare-user", "--disable-userns", "--die-with-parent", "--new-session"]
    a += ["--uid", str(SANDBOX_UID), "--gid", str(SANDBOX_UID), "--hostname", "sandbox"]
    # private /tmp first: the binds below may live under the host's /tmp (a venv or checkout there) and
    # must be mounted on top of it, not hidden by it
    mem = job.limits.memory_mb * 1024 * 1024
    a += ["--proc", "/proc", "--dev", "/dev", "--size", str(mem), "--tmpfs", "/tmp"]
    for d in SYSTEM_DIRS:
        if os.path.islink(d):
            a += ["--symlink", os.readlink(d), d]
        elif os.path.isdir(d):
            a += ["--ro-bind", d, d]
    for name in ETC_ALLOW:
        p = f"/etc/{name}"
        if os.path.lexists(p):
            a += ["--ro-bind-try", p, p]
    for p in python_paths() + [os.path.realpath(p) for p in job.readonly_paths]:
        a += ["--ro-bind", p, p]
    a += ["--ro-bind", str(project_package_dir()), f"{CODE_DIR}/agentlab"]
    if job.limits.gpus:  # NVIDIA and AMD device nodes (after --dev) plus a read-only /sys for driver/topology discovery
        gpu_devs = sorted(glob.glob("/dev/nvidia*")) + ["/dev/kfd", "/dev/dri"]
        for d in gpu_devs:
            a += ["--dev-bind-try", d, d]
        a += ["--ro-bind-try", "/sys", "/sys"]
    a += ["--bind", os.path.realpath(job.workdir), JOB_DIR]
    a += ["--tmpfs", f"{JOB_DIR}/.job"]  # the host's bookkeeping (result.json, logs) is invisible to the job
    a += ["--remount-ro", "/"]  # the sandbox's own root (a tmpfs holding the mount points) becomes read-only
    a += ["--chdir", JOB_DIR, "--clearenv"]
    for k, v in sandbox_env(job).items():
        a += ["--setenv", k, v]
    return a + ["--", *job.command]


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
        try:
            p = subprocess.run([*argv, "/bin/sh", "-c", "true"], capture_output=True, timeout=20)
        except (OSError, subprocess.TimeoutExpired) as exc:
            return False, f"bwrap failed to start: {exc}"
        if p.returncode != 0:
            err = p.stderr.decode(errors="replace").strip()
            fix = (
                "enable unprivileged user namespaces: `sudo sysctl -w kernel.unprivileged_userns_clone=1` and, "
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
        cg = JobCgroup.create(f"{re.sub(r'[^A-Za-z0-9_.-]', '_', job.id)}-{os.getpid()}-{time.time_ns()}", lim)

        def prepare_child() -> None:  # runs in the forked child before exec(bwrap)
            if cg is not None:
                cg.join()
            apply_rlimits(lim, with_memory=cg is None, with_nproc=cg is None)

        start = time.monotonic()
        try:
            proc = subprocess.Popen(
                build_argv(job), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                start_new_session=True, preexec_fn=prepare_child,
                env={"PATH": "/usr/bin:/bin"},  # bwrap's own pid-1 is visible in the job's /proc: give it no secrets
            )  # fmt: skip
        except BaseException:
            if cg is not None:
                cg.remove()
            raise
        killed_for: list[tuple[str, str]] = []

        def kill(why: str, detail: str) -> None:
            if not killed_for:
                killed_for.append((why, detail))
            _kill_tree(proc, cg)

        cap_msg = f"output cap of {lim.max_output_bytes * HARD_OUTPUT_FACTOR} bytes exceeded"
        pumps = [
            OutputPump(proc.stdout, meta / "stdout.log", lim.max_output_bytes, lambda: kill("output_limit", cap_msg)),
            OutputPump(proc.stderr, meta / "stderr.log", lim.max_output_bytes, lambda: kill("output_limit", cap_msg)),
        ]
        for p in pumps:
            p.start()
        cpu_budget = cpu_limit(lim)
        try:
            while proc.poll() is None:
                if time.monotonic() - start > lim.wall_seconds:
                    kill("timeout", f"wall-clock limit of {lim.wall_seconds:g} s reached")
                elif cg is not None and (cg.cpu_seconds() or 0.0) > cpu_budget:
                    kill("timeout", f"CPU time limit of {cpu_budget:g} s reached")
                try:
                    proc.wait(timeout=0.05)
                except subprocess.TimeoutExpired:
                    pass
        finally:
            _kill_tree(proc, cg)  # leaves nothing behind: daemons, orphans, stopped processes
            proc.wait()
            for p in pumps:
                p.join(timeout=5)
            oom = cg.oom_killed() if cg is not None else False
            if cg is not None:
                cg.remove()
        rc = proc.returncode
        err = pumps[1].tail_bytes()
        detail = ""
        if killed_for:
            reason, detail = killed_for[0]
        elif oom or (cg is None and rc != 0 and b"MemoryError" in err[-2000:]):
            reason, detail = "memory", f"memory limit of {lim.memory_mb} MB exceeded"
        elif rc == 128 + signal.SIGXCPU:
            reason, detail = "timeout", "CPU time limit reached (SIGXCPU)"
        elif rc is not None and rc > 128 and rc - 128 in (signal.SIGKILL, signal.SIGTERM):
            reason, detail = "killed", f"killed by signal {rc - 128}"
        elif rc == 1 and err.startswith(b"bwrap:"):
            reason, detail = "error", err.decode(errors="replace").strip()[:500]
        else:
            reason = "finished"
        out_trunc = any(p.truncated for p in pumps)
        if out_trunc and not detail:
            detail = f"output beyond {lim.max_output_bytes} bytes per stream was dropped"
        return JobResult(
            job_id=job.id, backend=self.name,
            exit_code=None if killed_for else rc, reason=reason,  # type: ignore[arg-type]
            wall_seconds=round(time.monotonic() - start, 3),
            stdout_tail=tail(pumps[0].tail_bytes()), stderr_tail=tail(err),
            output_truncated=out_trunc, detail=detail,
        )  # fmt: skip


def _kill_tree(proc: subprocess.Popen, cg: JobCgroup | None) -> None:
    """Kill bwrap's process group (its pid-1 child then takes the whole pid namespace down) and the cgroup."""
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    if cg is not None:
        cg.kill_all()
