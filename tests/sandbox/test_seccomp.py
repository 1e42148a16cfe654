"""The seccomp policy: a real bwrap job under it, its BPF program through an interpreter, the docker profile."""

from __future__ import annotations

import errno
import json
import os
import re
import shutil
import struct
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from agentlab.sandbox import seccomp
from agentlab.sandbox.bwrap import python_paths
from agentlab.sandbox.seccomp import BLOCKED, CLONE_NS_FLAGS, SYSCALLS, bpf_program

SIGCHLD = 17
PID = "PID"  # placeholder the child replaces with its own pid
# fork and thread clone flags as glibc passes them: must stay allowed
FORK_FLAGS = 0x01200000 | SIGCHLD  # CLONE_CHILD_SETTID | CLONE_CHILD_CLEARTID
THREAD_FLAGS = 0x003D0F00  # VM|FS|FILES|SIGHAND|THREAD|SYSVSEM|SETTLS|PARENT_SETTID|CHILD_CLEARTID

# Runs inside bwrap. Every probe runs in a forked child (so a call that succeeds unfiltered changes nothing
# else); its exit status is the errno, 0 for success, or -signal if it was killed.
CHILD = textwrap.dedent(r"""
    import ctypes, json, os, sys
    spec = json.loads(sys.argv[1])
    libc = ctypes.CDLL(None, use_errno=True)
    libc.syscall.restype = ctypes.c_long

    def probe(nr, args):
        pid = os.fork()
        if pid == 0:
            a = [ctypes.c_long(os.getpid() if x == "PID" else x) for x in args]
            r = libc.syscall(ctypes.c_long(nr), *a)
            if r == 0 and nr == spec["clone_nr"]:
                os._exit(0)  # the clone()d grandchild
            e = ctypes.get_errno() if r == -1 else 0
            if r > 0 and nr == spec["clone_nr"]:
                os.waitpid(r, 0)
            os._exit(e)
        st = os.waitpid(pid, 0)[1]
        return os.WEXITSTATUS(st) if os.WIFEXITED(st) else -os.WTERMSIG(st)

    out = {"probes": {k: probe(nr, args) for k, (nr, args) in spec["probes"].items()},
           "sweep": {k: probe(nr, [0] * 6) for k, nr in spec["sweep"].items()}, "checks": {}}

    def check(name):
        def deco(fn):
            try:
                out["checks"][name] = repr(fn())
            except BaseException as exc:
                out["checks"][name] = f"FAILED {exc!r}"
        return deco

    if spec["checks"]:
        @check("fork")
        def _():
            pid = os.fork()
            if pid == 0:
                os._exit(7)
            return os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1])

        @check("thread")
        def _():
            import threading
            box = []
            t = threading.Thread(target=box.append, args=(1,))
            t.start(); t.join()
            return box[0]

        for method in ("spawn", "fork"):
            @check(f"mp_{method}")
            def _():
                import multiprocessing as mp
                with mp.get_context(method).Pool(2) as pool:
                    return sum(pool.map(abs, [-1, -2, -3]))

        @check("socketpair")
        def _():
            import socket
            a, b = socket.socketpair()
            a.sendall(b"ping")
            return b.recv(4).decode()

        @check("mmap")
        def _():
            import mmap
            m = mmap.mmap(-1, 1 << 20)
            m[100:103] = b"abc"
            return m[100:103].decode()

        @check("subprocess")
        def _():
            import subprocess
            return subprocess.run(["true"]).returncode

        @check("torch")
        def _():
            import torch
            s = torch.ones(4).sum().item()
            torch.set_num_threads(2)
            a = torch.randn(256, 256)
            return (s, tuple((a @ a).shape), torch.get_num_threads())

    print(json.dumps(out))
""")
CHECKS_EXPECTED = {
    "fork": "7", "thread": "1", "mp_spawn": "6", "mp_fork": "6", "socketpair": "'ping'", "mmap": "'abc'",
    "subprocess": "0", "torch": "(4.0, (256, 256), 2)",
}  # fmt: skip


def _probes(arch: str) -> dict[str, tuple[int, list]]:
    """name -> (nr, args): arguments chosen so that an *unfiltered* call mostly fails differently (or works)."""
    t = SYSCALLS[arch]
    p = {
        "keyctl": (t["keyctl"], [9999]),  # unknown op: EOPNOTSUPP
        "add_key": (t["add_key"], [0, 0, 0, 0, 0]),  # EFAULT
        "request_key": (t["request_key"], [0, 0, 0, 0]),  # EFAULT
        "bpf": (t["bpf"], [0, 0, 0]),
        "io_uring_setup": (t["io_uring_setup"], [1, 0]),
        "ptrace_traceme": (t["ptrace"], [0, 0, 0, 0]),  # PTRACE_TRACEME: 0
        "process_vm_readv": (t["process_vm_readv"], [PID, 0, 0, 0, 0, 0]),  # 0 bytes: 0
        "kcmp": (t["kcmp"], [PID, PID, 1, 0, 0]),  # KCMP_VM with itself: 0
        "mount": (t["mount"], [0, 0, 0, 0, 0]),  # EFAULT
        "unshare_newuser": (t["unshare"], [seccomp.CLONE_NEWUSER]),
        "setns": (t["setns"], [-1, 0]),  # EBADF
        "clone_newuser": (t["clone"], [seccomp.CLONE_NEWUSER | SIGCHLD, 0, 0, 0, 0]),
        "clone_newnet": (t["clone"], [seccomp.CLONE_NEWNET | SIGCHLD, 0, 0, 0, 0]),
        "clone3": (t["clone3"], [0, 0]),  # EINVAL
        "perf_event_open": (t["perf_event_open"], [0, 0, -1, -1, 0]),  # EFAULT
        "userfaultfd": (t["userfaultfd"], [1 | os.O_CLOEXEC]),  # UFFD_USER_MODE_ONLY
        "name_to_handle_at": (t["name_to_handle_at"], [-100, 0, 0, 0, 0]),  # EFAULT
        "clone_plain": (t["clone"], [SIGCHLD, 0, 0, 0, 0]),  # allowed
    }
    if arch == "x86_64":
        p["x32_getpid"] = (seccomp.X32_SYSCALL_BIT | 39, [])
    return p


def _expected(name: str) -> int:
    return {"clone3": errno.ENOSYS, "clone_plain": 0}.get(name, errno.EPERM)


# probes whose unfiltered result is never their filtered one, whatever the host's sysctls
DETERMINISTIC = (
    "keyctl", "add_key", "request_key", "ptrace_traceme", "process_vm_readv", "kcmp", "mount", "setns",
    "clone3", "perf_event_open", "name_to_handle_at",
)  # fmt: skip


def _bwrap(spec: dict, seccomp_fd: int | None) -> subprocess.CompletedProcess:
    argv = ["bwrap", "--ro-bind", "/", "/", "--dev", "/dev", "--proc", "/proc", "--tmpfs", "/tmp"]
    for p in python_paths():  # a venv or checkout under /tmp (CI clones there) must stay visible
        if p == "/tmp" or p.startswith("/tmp/"):
            argv += ["--ro-bind", p, p]
    argv += ["--unshare-all", "--unshare-user", "--die-with-parent"]
    if seccomp_fd is not None:
        argv += ["--seccomp", str(seccomp_fd)]
    argv += [sys.executable, "-c", CHILD, json.dumps(spec)]
    env = {"PATH": f"{os.path.dirname(sys.executable)}:/usr/bin:/bin", "HOME": "/tmp", "LANG": "C.UTF-8",
           "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1",
           "PYTHONDONTWRITEBYTECODE": "1"}  # fmt: skip
    fds = () if seccomp_fd is None else (seccomp_fd,)
    return subprocess.run(argv, pass_fds=fds, env=env, capture_output=True, text=True, timeout=120, check=False)


@pytest.fixture(scope="module")
def host_arch() -> str:
    try:
        arch = seccomp.normalize_arch()
    except ValueError as exc:
        pytest.skip(str(exc))
    if not shutil.which("bwrap"):
        pytest.skip("bubblewrap is not installed")
    p = subprocess.run(
        ["bwrap", "--ro-bind", "/", "/", "--dev", "/dev", "--proc", "/proc", "--unshare-all", "--unshare-user",
         "--die-with-parent", "true"], capture_output=True, text=True, timeout=30, check=False,
    )  # fmt: skip
    if p.returncode != 0:
        pytest.skip(f"bwrap cannot create a sandbox here: {p.stderr.strip()[:300]}")
    return arch


def test_bwrap_job_under_filter(host_arch: str) -> None:
    spec = {
        "probes": _probes(host_arch), "clone_nr": SYSCALLS[host_arch]["clone"], "checks": True,
        "sweep": seccomp.blocked_numbers(host_arch),  # every blocked call, zero args (safe: no caps in bwrap)
    }  # fmt: skip
    fd = seccomp.filter_fd()
    try:
        p = _bwrap(spec, fd)
    finally:
        os.close(fd)
    assert p.returncode == 0, p.stderr[-3000:]
    out = json.loads(p.stdout.strip().splitlines()[-1])
    got = {k: errno.errorcode.get(v, v) for k, v in out["probes"].items()}
    want = {k: errno.errorcode.get(_expected(k), 0) for k in spec["probes"]}
    assert got == want
    assert {k: v for k, v in out["sweep"].items() if v != errno.EPERM} == {}
    assert set(out["sweep"]) == set(spec["sweep"])
    assert out["checks"] == CHECKS_EXPECTED


def test_probes_differ_without_filter(host_arch: str) -> None:
    """The same probes unfiltered: shows the test above would fail if the filter did nothing."""
    spec = {"probes": _probes(host_arch), "clone_nr": SYSCALLS[host_arch]["clone"], "checks": False, "sweep": {}}
    p = _bwrap(spec, None)
    assert p.returncode == 0, p.stderr[-3000:]
    out = json.loads(p.stdout.strip().splitlines()[-1])["probes"]
    same = [k for k in DETERMINISTIC if out[k] == _expected(k)]
    assert same == [], f"unfiltered results equal the filtered ones for {same}: {out}"
    assert out["clone_plain"] == 0


def test_filter_fd_holds_the_program() -> None:
    fd = seccomp.filter_fd()
    try:
        assert os.get_inheritable(fd)
        assert os.lseek(fd, 0, os.SEEK_CUR) == 0
        data = b""
        while chunk := os.read(fd, 65536):
            data += chunk
        assert data == bpf_program()
    finally:
        os.close(fd)


# --- the BPF program itself, for both arches, through a small classic-BPF interpreter ---

AUDIT_FOREIGN = {"x86_64": 0x40000003, "aarch64": 0x40000028}  # i386, arm: the compat ABIs
ALLOW, KILL = seccomp.SECCOMP_RET_ALLOW, seccomp.SECCOMP_RET_KILL_PROCESS
EPERM, ENOSYS = seccomp.SECCOMP_RET_ERRNO | errno.EPERM, seccomp.SECCOMP_RET_ERRNO | errno.ENOSYS
MUST_ALLOW = {  # what Python, torch, numpy and multiprocessing need
    "x86_64": {"read": 0, "write": 1, "mmap": 9, "mprotect": 10, "madvise": 28, "socket": 41, "socketpair": 53,
               "fork": 57, "vfork": 58, "execve": 59, "wait4": 61, "prctl": 157, "futex": 202,
               "sched_setaffinity": 203, "sched_getaffinity": 204, "openat": 257, "set_robust_list": 273,
               "seccomp": 317, "getrandom": 318, "memfd_create": 319, "rseq": 334, "pidfd_open": 434},
    "aarch64": {"openat": 56, "read": 63, "write": 64, "futex": 98, "set_robust_list": 99,
                "sched_setaffinity": 122, "sched_getaffinity": 123, "prctl": 167, "socket": 198,
                "socketpair": 199, "execve": 221, "mmap": 222, "mprotect": 226, "madvise": 233, "wait4": 260,
                "seccomp": 277, "getrandom": 278, "memfd_create": 279, "rseq": 293, "pidfd_open": 434},
}  # fmt: skip


def decode(prog: bytes) -> list[tuple[int, int, int, int]]:
    assert len(prog) % 8 == 0
    return [struct.unpack("<HBBI", prog[i : i + 8]) for i in range(0, len(prog), 8)]


def run_bpf(prog: bytes, arch: int, nr: int, arg0: int = 0) -> int:
    data = struct.pack("<IIQ6Q", nr & 0xFFFFFFFF, arch, 0, arg0, 0, 0, 0, 0, 0)
    insns, pc, acc = decode(prog), 0, 0
    while True:
        code, jt, jf, k = insns[pc]
        if code == seccomp.BPF_RET_K:
            return k
        if code == seccomp.BPF_LD_W_ABS:
            acc = struct.unpack_from("<I", data, k)[0]
            pc += 1
            continue
        cond = {seccomp.BPF_JEQ_K: acc == k, seccomp.BPF_JGE_K: acc >= k, seccomp.BPF_JSET_K: bool(acc & k)}[code]
        pc += 1 + (jt if cond else jf)


@pytest.mark.parametrize("arch", ["x86_64", "aarch64"])
def test_bpf_program_structure_and_semantics(arch: str) -> None:
    prog = bpf_program(arch)
    insns = decode(prog)
    assert 0 < len(insns) < 4096
    assert insns[-1][0] == seccomp.BPF_RET_K
    for i, (code, jt, jf, _k) in enumerate(insns):
        if code & 0x07 == 0x05:  # BPF_JMP: both targets inside the program
            assert 0 <= jt <= 255 and 0 <= jf <= 255 and i + 1 + max(jt, jf) < len(insns)
    audit, table = seccomp.AUDIT_ARCH[arch], SYSCALLS[arch]
    blocked = set(seccomp.blocked_numbers(arch).values())
    for nr in range(600):
        want = EPERM if nr in blocked else ENOSYS if nr == table["clone3"] else ALLOW
        assert run_bpf(prog, audit, nr) == want, nr
    for name, nr in MUST_ALLOW[arch].items():
        assert run_bpf(prog, audit, nr) == ALLOW, name
    clone = table["clone"]
    for flag in CLONE_NS_FLAGS:
        assert run_bpf(prog, audit, clone, flag | SIGCHLD) == EPERM, hex(flag)
    for flags in (SIGCHLD, FORK_FLAGS, THREAD_FLAGS, seccomp.CLONE_NEWUSER << 32):  # high word is ignored by clone
        assert run_bpf(prog, audit, clone, flags) == ALLOW, hex(flags)
    assert run_bpf(prog, AUDIT_FOREIGN[arch], 0) == KILL and run_bpf(prog, AUDIT_FOREIGN[arch], clone) == KILL
    x32 = run_bpf(prog, audit, seccomp.X32_SYSCALL_BIT | 39)
    assert x32 == (EPERM if arch == "x86_64" else ALLOW)


def test_unsupported_arch() -> None:
    with pytest.raises(ValueError, match="unsupported architecture 'mips'"):
        bpf_program("mips")
    assert "unsupported" in seccomp.describe("mips")
    assert bpf_program("arm64") == bpf_program("aarch64") and bpf_program("amd64") == bpf_program("x86_64")


def test_tables_cover_the_policy_and_match_kernel_headers() -> None:
    names = {n for ns in BLOCKED.values() for n in ns}
    assert names <= set(SYSCALLS["x86_64"]), names - set(SYSCALLS["x86_64"])
    assert names - set(SYSCALLS["aarch64"]) == {"iopl", "ioperm", "uselib"}
    headers = {"x86_64": ["/usr/include/x86_64-linux-gnu/asm/unistd_64.h", "/usr/include/asm/unistd_64.h"],
               "aarch64": ["/usr/include/asm-generic/unistd.h"]}  # fmt: skip
    checked = 0
    for arch, paths in headers.items():
        path = next((Path(p) for p in paths if Path(p).exists()), None)
        if path is None:
            continue
        nrs = {m[1]: int(m[2]) for m in re.finditer(r"^#define __NR_(\w+)\s+(\d+)\s*$", path.read_text(), re.MULTILINE)}
        for name, nr in SYSCALLS[arch].items():
            if name in nrs:
                assert nrs[name] == nr, (arch, name)
                checked += 1
    if not checked:
        pytest.skip("no kernel syscall headers here to cross-check against")


def test_describe() -> None:
    line = seccomp.describe("x86_64")
    n = len({x for ns in BLOCKED.values() for x in ns})
    assert line.startswith(f"seccomp: {n} syscalls in {len(BLOCKED)} families blocked (keyring, bpf, io_uring")
