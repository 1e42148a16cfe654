"""Host takeover: what a prompt-injected main.py tried against a root orchestrator, on every isolated backend.

Each test reproduces one class from the issue (root mapping and sysctls, setuid leftovers, the session
keyring, unfiltered syscalls, no disk/inode quota, /dev/shm beyond the memory limit, a replaced main.py,
links and special files left for the host) and asserts what the user would notice: the host is untouched,
nothing dangerous comes back, and the result says why.
"""

from __future__ import annotations

import ctypes
import os
import platform
import stat
import textwrap
import threading
import time
import uuid
from pathlib import Path

import pytest

from agentlab.sandbox import Limits
from tests.sandbox.conftest import ISOLATED, make_backend

pytestmark = pytest.mark.timeout(240)


@pytest.fixture(params=[*ISOLATED, "ray"])
def backend(request):
    """This suite also runs through the Ray backend (a real local head; the worker isolates with bwrap)."""
    return make_backend(request, request.param)

SYS_ADD_KEY = {"x86_64": 248, "aarch64": 217}.get(platform.machine())


def _files(root: Path) -> list[Path]:
    return [p for p in root.rglob("*") if ".job" not in p.relative_to(root).parts]


def _host_uids_of(marker: str) -> set[int]:
    """Host uids (as the host sees them, from /proc) of every process whose command line holds `marker`."""
    uids = set()
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            if marker.encode() in Path(f"/proc/{d}/cmdline").read_bytes():
                line = next(x for x in Path(f"/proc/{d}/status").read_text().splitlines() if x.startswith("Uid:"))
                uids |= {int(u) for u in line.split()[1:]}
        except (OSError, StopIteration):
            pass
    return uids


def test_job_is_not_host_root_and_cannot_write_sysctls(run_job):
    marker = f"agentlab-uid-probe-{uuid.uuid4().hex[:8]}"
    script = """
    import json, sys, time
    core = open("/proc/sys/kernel/core_pattern").read()
    try:  # write the current value back: harmless if it got through, but it must not get through
        with open("/proc/sys/kernel/core_pattern", "w") as f:
            f.write(core)
        wrote = "written"
    except OSError as e:
        wrote = f"blocked: {e.strerror}"
    time.sleep(4)  # long enough for the host to look at this process from outside
    json.dump({"sysctl": wrote}, open("results.json", "w"))
    """
    seen: set[int] = set()
    stop = threading.Event()

    def watch() -> None:
        while not stop.is_set():
            seen.update(_host_uids_of(marker))
            time.sleep(0.2)

    t = threading.Thread(target=watch, daemon=True)
    t.start()
    try:
        result, out, _ = run_job(script, args=[marker])
    finally:
        stop.set()
        t.join()
    assert result.ok, result
    assert out["sysctl"].startswith("blocked"), out
    assert seen, "the job's process was never seen from the host"
    assert 0 not in seen, f"the job ran as host root (host uids {sorted(seen)})"
    assert any(g.startswith(("host uid", "user ")) for g in result.guarantees), result.guarantees


def test_setuid_and_device_files_never_reach_the_host(run_job):
    script = """
    import json, os, shutil
    shutil.copy("/bin/sh", "suid-sh")
    res = {}
    for mode in (0o4755, 0o2755):
        try:
            os.chmod("suid-sh", mode); res[oct(mode)] = "set"
        except OSError as e:
            res[oct(mode)] = e.strerror
    try:
        os.mknod("dev0", 0o666 | 0o020000, os.makedev(1, 5)); res["mknod"] = "made"
    except OSError as e:
        res["mknod"] = e.strerror
    os.mkfifo("fifo")
    json.dump(res, open("results.json", "w"))
    """
    result, out, workdir = run_job(script)
    assert result.ok, result
    for p in _files(workdir):
        st = p.lstat()
        assert not st.st_mode & (stat.S_ISUID | stat.S_ISGID), f"{p} kept a setuid/setgid bit"
        assert stat.S_ISREG(st.st_mode) or stat.S_ISDIR(st.st_mode), f"{p} is a special file on the host"
    assert not (workdir / "fifo").exists() and not (workdir / "dev0").exists()
    assert any(n.startswith("fifo:") for n in result.not_collected), result.not_collected


@pytest.mark.skipif(SYS_ADD_KEY is None, reason="keyring syscall numbers known for x86_64/aarch64 only")
def test_session_keyring_is_not_shared(run_job):
    libc = ctypes.CDLL(None, use_errno=True)
    desc = f"agentlab-test-{uuid.uuid4().hex[:8]}".encode()
    secret = f"KEY-SECRET-{uuid.uuid4().hex}".encode()
    # KEY_SPEC_SESSION_KEYRING = -3: the orchestrator's session keyring, which jobs used to inherit
    key = libc.syscall(SYS_ADD_KEY, b"user", desc, secret, len(secret), -3)
    if key < 0:
        pytest.skip(f"cannot add a key here (errno {ctypes.get_errno()})")
    script = f"""
    import ctypes, json, platform
    libc = ctypes.CDLL(None, use_errno=True)
    nr = {{"x86_64": 250, "aarch64": 219}}[platform.machine()]
    found = libc.syscall(nr, 10, -3, b"user", {desc!r}, 0)  # KEYCTL_SEARCH in the session keyring
    err = ctypes.get_errno()
    buf = ctypes.create_string_buffer(256)
    n = libc.syscall(nr, 11, {key}, buf, 256)  # KEYCTL_READ the orchestrator's key by id
    json.dump({{"search": found, "search_errno": err, "read": buf.raw[:max(n, 0)].decode(errors="replace")}},
              open("results.json", "w"))
    """
    try:
        result, out, _ = run_job(script)
    finally:
        libc.syscall(250 if platform.machine() == "x86_64" else 219, 3, key)  # KEYCTL_REVOKE
    assert result.ok, result
    assert out["search"] < 0 and secret.decode() not in out["read"], out


def test_dangerous_syscall_families_are_refused(run_job):
    script = """
    import ctypes, errno, json, os, platform
    libc = ctypes.CDLL(None, use_errno=True)
    nrs = {"x86_64": dict(keyctl=250, bpf=321, io_uring_setup=425, ptrace=101, mount=165, unshare=272,
                          perf_event_open=298, userfaultfd=323),
           "aarch64": dict(keyctl=219, bpf=280, io_uring_setup=425, ptrace=117, mount=40, unshare=97,
                           perf_event_open=241, userfaultfd=282)}[platform.machine()]
    res = {}
    for name, nr in nrs.items():
        if name == "unshare":
            rc = libc.syscall(nr, 0x10000000)  # CLONE_NEWUSER
        elif name == "mount":
            rc = libc.syscall(nr, b"none", b"/tmp", b"tmpfs", 0, None)
        elif name == "ptrace":
            rc = libc.syscall(nr, 0, 0, 0, 0)  # PTRACE_TRACEME
        else:
            rc = libc.syscall(nr, 0, 0, 0, 0, 0)
        res[name] = "ok" if rc >= 0 else errno.errorcode.get(ctypes.get_errno(), "?")
    json.dump(res, open("results.json", "w"))
    """
    result, out, _ = run_job(script)
    assert result.ok, result
    assert out == {k: "EPERM" for k in out}, out


def test_job_dir_has_a_size_and_file_cap(run_job):
    script = """
    import json, os
    res, report = {}, open("results.json", "w")  # made first: the floods below fill the disk and the inodes
    try:
        with open("big.bin", "wb") as f:
            for _ in range(200):  # 200 MB under a 64 MB /job
                f.write(b"x" * (1 << 20))
        res["big"] = "wrote 200 MB"
    except OSError as e:
        res["big"] = e.strerror
    try:
        with open("sparse.bin", "wb") as f:
            f.truncate(1 << 40)
        res["sparse"] = "1 TiB"
    except OSError as e:
        res["sparse"] = e.strerror
    os.remove("big.bin")
    os.makedirs("many", exist_ok=True)
    made = 0
    try:
        for i in range(20000):
            open(f"many/f{i}", "w").close(); made += 1
    except OSError as e:
        res["many_error"] = e.strerror
    res["made"] = made
    json.dump(res, report)
    """
    lim = Limits(wall_seconds=120, memory_mb=512, disk_mb=64, max_inodes=5000, max_files_back=100)
    result, out, workdir = run_job(script, limits=lim)
    assert result.ok, result
    assert out["big"] != "wrote 200 MB" and out["sparse"] != "1 TiB", out
    if os.geteuid() == 0 or result.backend == "docker":  # the inode cap needs a tmpfs we mount (root) or docker's
        assert out["made"] < 5000, out
    files = _files(workdir)
    assert sum(p.stat().st_size for p in files if p.is_file()) <= 64 << 20
    assert len([p for p in files if p.is_file()]) <= 100 + 1  # the cap, plus the input main.py
    assert any("over the cap of 100 files" in n for n in result.not_collected), result.not_collected[:3]


def test_dev_shm_is_capped_below_the_memory_limit(run_job, monkeypatch):
    monkeypatch.setenv("AGENTLAB_SANDBOX_NO_CGROUP", "1")  # the case that leaked: no writable cgroup (bwrap)
    script = """
    import json
    n = 0
    try:
        with open("/dev/shm/fill", "wb") as f:
            for _ in range(600):
                f.write(b"x" * (1 << 20)); f.flush(); n += 1
    except OSError as e:
        err = e.strerror
    else:
        err = None
    json.dump({"mb": n, "error": err}, open("results.json", "w"))
    """
    result, out, _ = run_job(script, limits=Limits(wall_seconds=60, memory_mb=256))
    assert result.ok and out is not None, result
    assert out["mb"] < 256 and out["error"], out


def test_inputs_are_read_only_and_links_are_not_followed(run_job, tmp_path):
    victim = tmp_path / "victim.txt"
    victim.write_text("host file\n")
    secret = tmp_path / "root-only.txt"
    marker = f"ROOT-ONLY-{uuid.uuid4().hex}"
    secret.write_text(marker)
    secret.chmod(0o600)
    script = f"""
    import json, os
    res = {{}}
    for how in ("write", "replace", "unlink"):
        try:
            if how == "write":
                open("main.py", "a").write("# pwned")
            elif how == "replace":
                os.symlink({str(victim)!r}, "new"); os.replace("new", "main.py")
            else:
                os.remove("main.py")
            res[how] = "done"
        except OSError as e:
            res[how] = e.strerror
    os.symlink({str(secret)!r}, "results.json")
    os.symlink("/dev/zero", "zero.bin")
    json.dump(res, open("outcome.json", "w"))
    """
    result, out, workdir = run_job(script)
    assert result.ok, result
    outcome = (workdir / "outcome.json").read_text()
    assert '"done"' not in outcome, outcome
    assert (workdir / "main.py").read_text() == textwrap.dedent(script)  # the host's copy is the code that ran
    assert victim.read_text() == "host file\n"
    assert not (workdir / "results.json").exists() and not (workdir / "zero.bin").exists()
    assert marker not in result.detail + result.stdout_tail + result.stderr_tail + str(result.not_collected)
    assert any(n.startswith("results.json: symbolic link") for n in result.not_collected), result.not_collected
