"""Never host root: the unprivileged host uid a job runs as, and what the launcher does before exec(bwrap).

When the orchestrator is root, every job gets a dedicated host uid (from `AGENTLAB_SANDBOX_UID_BASE`,
default 2,000,000,000, plus a hash of the job id) that owns no file and no process on the host. bwrap is
then started *as that uid* (an unprivileged user namespace), so the job's in-sandbox uid maps to it, not to
root: the kernel's checks by outside uid (sysctls, files on any mount, signals) see nobody. RLIMIT_NPROC,
which the kernel ignores for root, counts that uid's processes and so holds even without a cgroup.

That uid cannot traverse the host paths the job needs (a venv or a python under /root, the run repo), so
the launcher, still root in the forked child, first unshares a private mount namespace and binds each of
those paths under a fresh staging tmpfs (`Stage`); bwrap binds them on from there, read-only. The job's own
`/job` is a tmpfs made there too, with the size *and inode* caps bwrap alone cannot set. In every mode the
child joins a fresh session keyring, so the job cannot read or plant keys in the orchestrator's.
"""

from __future__ import annotations

import ctypes
import os
import platform
import tempfile
import zlib
from pathlib import Path

MS_RDONLY, MS_NOSUID, MS_NODEV, MS_REMOUNT, MS_BIND, MS_REC, MS_PRIVATE = 1, 2, 4, 32, 4096, 16384, 1 << 18
CLONE_NEWNS = 0x00020000
KEYCTL_JOIN_SESSION_KEYRING = 1
_SYS_KEYCTL = {"x86_64": 250, "aarch64": 219}
_libc = ctypes.CDLL(None, use_errno=True)


def running_as_root() -> bool:
    return os.geteuid() == 0


def job_uid(job_id: str) -> int:
    """The dedicated host uid for `job_id` (root orchestrators only); stable, so a resume uses the same."""
    base = int(os.environ.get("AGENTLAB_SANDBOX_UID_BASE", "2000000000"))
    return base + zlib.crc32(job_id.encode()) % 100_000_000


def _check(rc: int, what: str) -> None:
    if rc < 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}")


def _mount(src: str | None, dst: str, fstype: str | None, flags: int, data: str | None = None) -> None:
    _check(_libc.mount(src and src.encode(), dst.encode(), fstype and fstype.encode(), flags,
                       data and data.encode()), f"mount {dst}")  # fmt: skip


def new_session_keyring() -> None:
    """Join a fresh anonymous session keyring (call in the child before exec)."""
    nr = _SYS_KEYCTL.get(platform.machine())
    if nr is not None:
        _check(_libc.syscall(nr, KEYCTL_JOIN_SESSION_KEYRING, None), "keyctl(JOIN_SESSION_KEYRING)")


def drop_to(uid: int) -> None:
    """setgroups([]), setresgid, setresuid: no way back to root for this process and its children."""
    os.setgroups([])
    os.setresgid(uid, uid, uid)
    os.setresuid(uid, uid, uid)
    if os.geteuid() == 0 or os.getegid() == 0:  # pragma: no cover - the kernel refused silently
        raise OSError("could not drop root")


class Stage:
    """Host paths re-exposed under a private staging tmpfs, reachable by the job's unprivileged uid.

    Built in the parent (paths only); `mount_in_child()` does the mounts after fork, in the child's own
    mount namespace, so nothing is ever mounted on the host's view.
    """

    def __init__(self, uid: int, job_mb: int, job_inodes: int):
        self.uid, self.job_mb, self.job_inodes = uid, job_mb, job_inodes
        self.root = tempfile.mkdtemp(prefix="agentlab-stage-")  # a mount point only; never holds data
        self.binds: list[tuple[str, str, bool]] = []  # (host source, staged path, is_dir)
        self.job_dir = f"{self.root}/job"

    def add(self, source: str) -> str:
        """Stage `source` (a dir or a regular file); returns the path bwrap should bind from."""
        real = os.path.realpath(source)
        staged = f"{self.root}/{len(self.binds)}"
        self.binds.append((real, staged, os.path.isdir(real)))
        return staged

    def mount_in_child(self) -> None:
        _check(_libc.unshare(CLONE_NEWNS), "unshare(CLONE_NEWNS)")
        _mount(None, "/", None, MS_REC | MS_PRIVATE)
        _mount("tmpfs", self.root, "tmpfs", MS_NOSUID | MS_NODEV, "mode=0755,size=1m")
        for src, staged, is_dir in self.binds:
            if is_dir:
                os.mkdir(staged, 0o755)
            else:
                os.close(os.open(staged, os.O_CREAT | os.O_WRONLY, 0o644))
            _mount(src, staged, None, MS_BIND | MS_REC)
            _mount(None, staged, None, MS_BIND | MS_REMOUNT | MS_RDONLY | MS_NOSUID | MS_NODEV)
        os.mkdir(self.job_dir, 0o700)
        opts = f"size={self.job_mb}m,nr_inodes={self.job_inodes},mode=0700,uid={self.uid},gid={self.uid}"
        _mount("tmpfs", self.job_dir, "tmpfs", MS_NOSUID | MS_NODEV, opts)

    def remove(self) -> None:
        try:
            Path(self.root).rmdir()
        except OSError:
            pass
