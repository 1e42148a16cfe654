"""The seccomp policy for experiment jobs: one denylist, compiled for bwrap and exported for docker.

Jobs run arbitrary ML code (PyTorch, numpy, multiprocessing, threads, subprocesses), so the policy is a
*denylist* of syscalls that such code never needs and that are the usual kernel attack surface or sandbox
escape routes: the key store, eBPF, io_uring, ptrace and cross-process memory access, mounting and
namespace creation, kernel/module/clock/swap administration, perf events, userfaultfd and file handles.
Everything else is allowed.

* A blocked call fails with EPERM (never a kill), so the job gets a clear Python error it can report.
* `clone` is blocked only when its flags (arg 0, low 32 bits, on x86_64 and aarch64) ask for a new
  namespace; plain fork/thread clones are untouched. `clone3` keeps its flags behind a pointer that seccomp
  cannot read, so it fails with ENOSYS and glibc falls back to `clone`, whose flags are checked.
* A syscall from a foreign ABI (audit arch mismatch, e.g. i386 `int 0x80` on x86_64) kills the process;
  on x86_64 the x32 ABI (nr >= 0x40000000) gets EPERM.

`bpf_program()` builds the classic-BPF filter with `struct` (no libseccomp) for `bwrap --seccomp FD`
(`filter_fd()`); in docker the sandbox supervisor installs the same program on top of Docker's default profile.
"""

from __future__ import annotations

import errno
import os
import platform
import struct
import tempfile

#: family -> syscalls that always fail with EPERM (names missing from an arch's table are skipped there)
BLOCKED: dict[str, tuple[str, ...]] = {
    "keyring": ("keyctl", "add_key", "request_key"),
    "bpf": ("bpf",),
    "io_uring": ("io_uring_setup", "io_uring_enter", "io_uring_register"),
    "ptrace": ("ptrace", "process_vm_readv", "process_vm_writev", "kcmp", "pidfd_getfd"),
    "mount": (
        "mount", "umount2", "pivot_root", "chroot", "move_mount", "open_tree", "open_tree_attr", "fsopen",
        "fsconfig", "fsmount", "fspick", "mount_setattr",
    ),
    "namespaces": ("unshare", "setns"),
    "kernel": (
        "kexec_load", "kexec_file_load", "init_module", "finit_module", "delete_module", "reboot", "swapon",
        "swapoff", "acct", "syslog", "quotactl", "quotactl_fd", "lookup_dcookie", "iopl", "ioperm", "uselib",
        "vhangup", "settimeofday", "clock_settime", "clock_adjtime", "adjtimex",
    ),
    "perf/uffd": ("perf_event_open", "userfaultfd"),
    "handles": ("name_to_handle_at", "open_by_handle_at"),
}  # fmt: skip
CLONE_NEWNS, CLONE_NEWCGROUP, CLONE_NEWUTS, CLONE_NEWIPC = 0x00020000, 0x02000000, 0x04000000, 0x08000000
CLONE_NEWUSER, CLONE_NEWPID, CLONE_NEWNET = 0x10000000, 0x20000000, 0x40000000
#: the namespace flags that make `clone` fail with EPERM (CLONE_NEWTIME is 0x80 = exit-signal bits in clone)
CLONE_NS_FLAGS: tuple[int, ...] = (
    CLONE_NEWNS, CLONE_NEWUTS, CLONE_NEWIPC, CLONE_NEWUSER, CLONE_NEWPID, CLONE_NEWNET, CLONE_NEWCGROUP,
)  # fmt: skip
CLONE_NS_MASK = sum(CLONE_NS_FLAGS)
#: syscalls that fail with ENOSYS so that libc falls back to an inspectable equivalent
ENOSYS_CALLS: tuple[str, ...] = ("clone3",)

# numbers shared by every arch (the unified table from 5.1 on, plus io_uring)
_UNIFIED = {
    "io_uring_setup": 425, "io_uring_enter": 426, "io_uring_register": 427, "open_tree": 428,
    "move_mount": 429, "fsopen": 430, "fsconfig": 431, "fsmount": 432, "fspick": 433, "clone3": 435,
    "pidfd_getfd": 438, "mount_setattr": 442, "quotactl_fd": 443, "open_tree_attr": 467,
}  # fmt: skip
#: arch -> syscall name -> number (from asm/unistd_64.h and asm-generic/unistd.h)
SYSCALLS: dict[str, dict[str, int]] = {
    "x86_64": _UNIFIED | {
        "clone": 56, "ptrace": 101, "syslog": 103, "uselib": 134, "vhangup": 153, "pivot_root": 155,
        "adjtimex": 159, "chroot": 161, "acct": 163, "settimeofday": 164, "mount": 165, "umount2": 166,
        "swapon": 167, "swapoff": 168, "reboot": 169, "iopl": 172, "ioperm": 173, "init_module": 175,
        "delete_module": 176, "quotactl": 179, "lookup_dcookie": 212, "clock_settime": 227, "kexec_load": 246,
        "add_key": 248, "request_key": 249, "keyctl": 250, "unshare": 272, "perf_event_open": 298,
        "name_to_handle_at": 303, "open_by_handle_at": 304, "clock_adjtime": 305, "setns": 308,
        "process_vm_readv": 310, "process_vm_writev": 311, "kcmp": 312, "finit_module": 313,
        "kexec_file_load": 320, "bpf": 321, "userfaultfd": 323,
    },
    "aarch64": _UNIFIED | {  # no iopl, ioperm, uselib (x86 legacy)
        "lookup_dcookie": 18, "umount2": 39, "mount": 40, "pivot_root": 41, "chroot": 51, "vhangup": 58,
        "quotactl": 60, "acct": 89, "unshare": 97, "kexec_load": 104, "init_module": 105, "delete_module": 106,
        "clock_settime": 112, "syslog": 116, "ptrace": 117, "reboot": 142, "settimeofday": 170,
        "adjtimex": 171, "add_key": 217, "request_key": 218, "keyctl": 219, "clone": 220, "swapon": 224,
        "swapoff": 225, "perf_event_open": 241, "name_to_handle_at": 264, "open_by_handle_at": 265,
        "clock_adjtime": 266, "setns": 268, "process_vm_readv": 270, "process_vm_writev": 271, "kcmp": 272,
        "finit_module": 273, "bpf": 280, "userfaultfd": 282, "kexec_file_load": 294,
    },
}  # fmt: skip
AUDIT_ARCH: dict[str, int] = {"x86_64": 0xC000003E, "aarch64": 0xC00000B7}
_ALIASES = {"amd64": "x86_64", "x64": "x86_64", "arm64": "aarch64"}
X32_SYSCALL_BIT = 0x40000000

# classic BPF opcodes and seccomp return values
BPF_LD_W_ABS, BPF_JEQ_K, BPF_JGE_K, BPF_JSET_K, BPF_RET_K = 0x20, 0x15, 0x35, 0x45, 0x06
SECCOMP_RET_KILL_PROCESS, SECCOMP_RET_ERRNO, SECCOMP_RET_ALLOW = 0x80000000, 0x00050000, 0x7FFF0000
# offsets into struct seccomp_data {int nr; u32 arch; u64 ip; u64 args[6];} (little-endian: low word first)
_OFF_NR, _OFF_ARCH, _OFF_ARG0_LO = 0, 4, 16
BPF_MAXINSNS = 4096


def normalize_arch(arch: str | None = None) -> str:
    """`arch` (default `platform.machine()`) as a key of SYSCALLS; ValueError if unsupported."""
    machine = (arch or platform.machine()).lower()
    machine = _ALIASES.get(machine, machine)
    if machine not in SYSCALLS:
        raise ValueError(
            f"seccomp: unsupported architecture {machine!r} (supported: {', '.join(sorted(SYSCALLS))}); "
            "run without the seccomp filter or add a syscall table for it to agentlab/sandbox/seccomp.py"
        )
    return machine


def blocked_numbers(arch: str | None = None) -> dict[str, int]:
    """name -> number of every always-blocked syscall that exists on `arch`."""
    table = SYSCALLS[normalize_arch(arch)]
    return {n: table[n] for names in BLOCKED.values() for n in names if n in table}


def _insn(code: int, k: int, jt: int = 0, jf: int = 0) -> bytes:
    if not (0 <= jt <= 255 and 0 <= jf <= 255):
        raise ValueError(f"BPF jump offset out of range: jt={jt} jf={jf}")
    return struct.pack("<HBBI", code, jt, jf, k & 0xFFFFFFFF)


def bpf_program(arch: str | None = None) -> bytes:
    """The packed `struct sock_filter[]` for `arch` (default: this machine), as bwrap --seccomp reads it.

    Layout: check the audit arch (else kill), load nr, [x86_64: x32 -> EPERM], one `JEQ nr; RET EPERM`
    pair per blocked syscall, `clone3` -> ENOSYS, `clone` with a namespace flag -> EPERM, allow. Every jump
    is a skip of at most 3 instructions, so the 8-bit offsets never overflow however long the list gets.
    """
    machine = normalize_arch(arch)
    table = SYSCALLS[machine]
    eperm = _insn(BPF_RET_K, SECCOMP_RET_ERRNO | errno.EPERM)
    prog = [
        _insn(BPF_LD_W_ABS, _OFF_ARCH),
        _insn(BPF_JEQ_K, AUDIT_ARCH[machine], jt=1),
        _insn(BPF_RET_K, SECCOMP_RET_KILL_PROCESS),
        _insn(BPF_LD_W_ABS, _OFF_NR),
    ]
    if machine == "x86_64":
        prog += [_insn(BPF_JGE_K, X32_SYSCALL_BIT, jf=1), eperm]
    for nr in sorted(set(blocked_numbers(machine).values())):
        prog += [_insn(BPF_JEQ_K, nr, jf=1), eperm]
    for name in ENOSYS_CALLS:
        prog += [_insn(BPF_JEQ_K, table[name], jf=1), _insn(BPF_RET_K, SECCOMP_RET_ERRNO | errno.ENOSYS)]
    prog += [
        _insn(BPF_JEQ_K, table["clone"], jf=3),
        _insn(BPF_LD_W_ABS, _OFF_ARG0_LO),
        _insn(BPF_JSET_K, CLONE_NS_MASK, jf=1),
        eperm,
        _insn(BPF_RET_K, SECCOMP_RET_ALLOW),
    ]
    if len(prog) > BPF_MAXINSNS:
        raise ValueError(f"seccomp program too long: {len(prog)} > {BPF_MAXINSNS} instructions")
    return b"".join(prog)


def filter_fd() -> int:
    """An inheritable fd at offset 0 holding `bpf_program()`, for `bwrap --seccomp FD`.

    The caller passes it with `pass_fds=(fd,)` and closes it after starting bwrap (bwrap reads it to EOF).
    """
    data = bpf_program()
    try:
        fd = os.memfd_create("agentlab-seccomp", 0)  # no MFD_CLOEXEC: it must survive exec(bwrap)
    except (AttributeError, OSError):
        fd, path = tempfile.mkstemp(prefix="agentlab-seccomp-")
        os.unlink(path)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
        os.lseek(fd, 0, os.SEEK_SET)
        os.set_inheritable(fd, True)
    except BaseException:
        os.close(fd)
        raise
    return fd


def describe(arch: str | None = None) -> str:
    """One line for `agentlab doctor`."""
    try:
        n = len(blocked_numbers(arch))
    except ValueError as exc:
        return f"{exc} (no syscall filter)"
    fams = ", ".join(BLOCKED)
    return (
        f"seccomp: {n} syscalls in {len(BLOCKED)} families blocked ({fams}); "
        f"clone with namespace flags -> EPERM, {', '.join(ENOSYS_CALLS)} -> ENOSYS"
    )
