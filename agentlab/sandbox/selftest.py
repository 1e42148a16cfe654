"""Which isolation guarantees hold on this machine, measured by running a probe job through a backend.

`agentlab sandbox check` and `agentlab doctor` show these rows. Each row is observed from inside a real
job (or, for the host uid, from what the backend did), never assumed from the configuration alone.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

from agentlab.sandbox.base import Job, Limits, Sandbox
from agentlab.sandbox.safe_files import UntrustedFileError, read_json

PROBE = r'''
import ctypes, json, os, platform
libc = ctypes.CDLL(None, use_errno=True)
r = {}
try:
    with open("/proc/sys/kernel/core_pattern", "w") as f:
        f.write(open("/proc/sys/kernel/core_pattern").read())
    r["sysctl_ro"] = False
except OSError:
    r["sysctl_ro"] = True
status = open("/proc/self/status").read()
r["seccomp"] = "Seccomp:\t2" in status
r["no_new_privs"] = "NoNewPrivs:\t1" in status
r["caps"] = [l.split()[1] for l in status.splitlines() if l.startswith("CapEff:")][0]
nr = {"x86_64": 250, "aarch64": 219}.get(platform.machine())
r["keyctl_blocked"] = nr is not None and libc.syscall(nr, 0, -3, 0) < 0 and ctypes.get_errno() == 1
for name, path in (("job", "/job"), ("shm", "/dev/shm"), ("tmp", "/tmp")):
    st = os.statvfs(path)
    r[name + "_mb"] = st.f_blocks * st.f_frsize >> 20
    r[name + "_inodes"] = st.f_files
try:
    open("main.py", "a").close()
    r["inputs_ro"] = False
except OSError:
    r["inputs_ro"] = True
json.dump(r, open("results.json", "w"))
'''

LIMITS = Limits(wall_seconds=60, memory_mb=512, disk_mb=256, max_inodes=4096, max_processes=64)


def guarantees(backend: Sandbox) -> list[tuple[str, bool, str]]:
    """(guarantee, holds here?, how or why not) for `backend`, from one probe job."""
    wd = Path(tempfile.mkdtemp(prefix="agentlab-selftest-"))
    try:
        (wd / "main.py").write_text(PROBE)
        res = backend.run(Job(id=f"selftest-{os.getpid()}", workdir=str(wd), command=["python", "main.py"],
                              limits=LIMITS, inputs=("main.py",)))  # fmt: skip
        if not res.ok:
            return [("probe job", False, f"{res.reason}: {res.detail or res.stderr_tail[-300:]}")]
        try:
            r = read_json(wd, "results.json", max_bytes=65536)
        except UntrustedFileError as exc:
            return [("probe job", False, str(exc))]
    finally:
        shutil.rmtree(wd, ignore_errors=True)
    if not isinstance(r, dict):
        return [("probe job", False, "the probe's report is not an object")]
    g = " ".join(res.guarantees)
    who = next((x for x in res.guarantees if x.startswith(("host uid", "user "))), "")
    root_ok = bool(who) and not who.startswith(("host uid 0 ", "user 0:"))
    inodes_ok = r.get("job_inodes", 1 << 62) <= LIMITS.max_inodes + 16
    return [
        ("not host root", root_ok, who or "unknown"),
        ("/proc/sys read-only", bool(r.get("sysctl_ro")), "sysctl writes refused"),
        ("seccomp filter", bool(r.get("seccomp") and r.get("keyctl_blocked")), next((x for x in res.guarantees if x.startswith("seccomp")), "")),
        ("no privileges", bool(r.get("no_new_privs")) and r.get("caps") == "0000000000000000", f"no_new_privs, CapEff {r.get('caps')}"),
        ("keyring isolated", bool(r.get("keyctl_blocked")), "a fresh session keyring; keyctl refused"),
        ("inputs read-only", bool(r.get("inputs_ro")), "main.py is a read-only mount; the host's copy is committed"),
        ("/job size cap", r.get("job_mb", 1 << 30) <= LIMITS.disk_mb + 1, f"{r.get('job_mb')} MB tmpfs"),
        ("/job inode cap", inodes_ok, f"{r.get('job_inodes')} inodes" + ("" if inodes_ok else
                                        ": not capped (needs a root orchestrator); what comes back is still capped")),
        ("/dev/shm, /tmp capped", max(r.get("shm_mb", 1 << 30), r.get("tmp_mb", 1 << 30)) <= LIMITS.memory_mb // 4 + 1,
         f"{r.get('shm_mb')} / {r.get('tmp_mb')} MB under a {LIMITS.memory_mb} MB memory limit"),
        ("memory limit", True, "cgroup" if "cgroup" in g else "RLIMIT_AS (no writable cgroup)"),
    ]  # fmt: skip
