"""PID 1 of every isolated sandbox (bwrap and docker): run the job, then hand its outputs to the host.

The job's only writable place is `/job`, a size- and inode-capped tmpfs that vanishes with the sandbox; its
inputs (main.py, ...) are read-only mounts inside it. This supervisor is the only channel back to the host:
its stdout carries line frames (`<T> <base64>\n`) that the host parses with hard caps (`frames.py`):

    O/E  a chunk of the job's stdout / stderr        F  a file follows: {"path", "size", "mode"}
    D    a chunk of that file                          S  an entry that was not collected: {"path", "why"}
    X    how the job ended: {"exit_code", "signal", "timed_out", "collected", "skipped"}

The job cannot write frames itself: it never holds this process's stdout, this process is not dumpable (so
/proc/1/fd is closed to it), the seccomp filter forbids ptrace, and as a namespace's init it ignores every
signal the job sends (SIGKILL included). When the job's main process exits, or the wall clock runs out, every
other process in the namespace is killed *before* `/job` is walked, so nothing changes under the walk. Only
regular, non-sparse files with plain names are sent back; links, FIFOs, devices, dotfiles (.git, .gitignore)
and setuid bits never leave the sandbox.

Stdlib only, and run with `python -I` from a read-only mount: nothing in /job can shadow its imports.
"""

import base64
import ctypes
import json
import os
import re
import selectors
import signal
import stat
import sys
import time

CHUNK = 12 * 1024  # raw bytes per frame (16 KiB of base64: under docker's 16 KiB log-line split)
NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+-]{0,127}$")
PR_SET_DUMPABLE, PR_SET_SECCOMP, PR_SET_NO_NEW_PRIVS = 4, 22, 38


class Out:
    """Frame writer on a private duplicate of fd 1 (fd 1 itself is pointed at /dev/null)."""

    def __init__(self) -> None:
        self.fd = os.dup(1)
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, 1)
        os.close(devnull)
        os.set_inheritable(self.fd, False)

    def frame(self, kind: str, payload: bytes) -> None:
        line = kind.encode() + b" " + base64.b64encode(payload) + b"\n"
        view = memoryview(line)
        while view:
            n = os.write(self.fd, view)
            view = view[n:]

    def data(self, kind: str, data: bytes) -> None:
        for i in range(0, len(data), CHUNK):
            self.frame(kind, data[i : i + CHUNK])

    def meta(self, kind: str, obj: dict) -> None:
        self.frame(kind, json.dumps(obj).encode())


def _not_dumpable() -> None:
    try:
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_DUMPABLE, 0, 0, 0, 0)
    except (OSError, AttributeError):
        pass


def _seccomp(program_b64: str) -> None:
    """Install the host's seccomp program on top of whatever the engine applied (docker: its default profile).
    Filters stack, so the job is held to both; we refuse to run the job if this fails."""
    prog = base64.b64decode(program_b64)

    class SockFprog(ctypes.Structure):
        _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]

    buf = ctypes.create_string_buffer(prog, len(prog))
    fprog = SockFprog(len(prog) // 8, ctypes.addressof(buf))
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0 or libc.prctl(PR_SET_SECCOMP, 2, ctypes.byref(fprog), 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "cannot install the seccomp filter")


def _spawn(cmd: list[str], cwd: str) -> tuple[int, int, int]:
    out_r, out_w = os.pipe()
    err_r, err_w = os.pipe()
    pid = os.fork()
    if pid == 0:  # the job
        try:
            os.setsid()
            os.dup2(out_w, 1)
            os.dup2(err_w, 2)
            os.closerange(3, 65536)
            os.chdir(cwd)
            for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGPIPE):
                signal.signal(sig, signal.SIG_DFL)
            os.execvp(cmd[0], cmd)
        except BaseException as exc:  # noqa: BLE001 - report and leave
            os.write(2, f"jobinit: cannot run {cmd[0]!r}: {exc}\n".encode())
        os._exit(127)
    os.close(out_w)
    os.close(err_w)
    return pid, out_r, err_r


def _kill_all(pgid: int = 0) -> None:
    """Kill every other process in this pid namespace (we are its init); outside one, only the job's group."""
    try:
        if os.getpid() == 1:
            os.kill(-1, signal.SIGKILL)
        elif pgid:
            os.killpg(pgid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def _reap(pid: int) -> int | None:
    """Reap every exited child (the job and the orphans re-parented to us); the job's status if it ended."""
    status = None
    while True:
        try:
            done, st = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return status
        if done == 0:
            return status
        if done == pid:
            status = st


def _relay(sel: selectors.BaseSelector, out: Out) -> None:
    """Forward what the job wrote since the last call (or wait a moment when its pipes are closed)."""
    if not sel.get_map():
        time.sleep(0.05)
        return
    for key, _ in sel.select(timeout=0.1):
        chunk = os.read(key.fd, 65536)
        if chunk:
            out.data(key.data, chunk)
        else:
            sel.unregister(key.fd)
            os.close(key.fd)


def run_job(out: Out, cmd: list[str], cwd: str, wall: float) -> dict:
    """Run the job to its end, relaying its output; returns the X record (without the collection counts).
    Once the main process exits or the wall clock runs out, everything else is killed and its pipes are
    drained for at most a few seconds."""
    pid, out_r, err_r = _spawn(cmd, cwd)
    sel = selectors.DefaultSelector()
    sel.register(out_r, selectors.EVENT_READ, "O")
    sel.register(err_r, selectors.EVENT_READ, "E")
    deadline = time.monotonic() + wall if wall > 0 else float("inf")
    status, timed_out, drain_until = None, False, None
    while True:
        status = _reap(pid) if status is None else status
        now = time.monotonic()
        timed_out = timed_out or (status is None and now > deadline)
        if (status is not None or timed_out) and drain_until is None:
            _kill_all(pid)  # the main process is gone (or out of time): nothing it left may run on
            drain_until = now + 5.0
        done_draining = drain_until is not None and (not sel.get_map() or now > drain_until)
        if done_draining and (status is not None or now > drain_until + 5.0):
            break
        _relay(sel, out)
    _kill_all(pid)
    code = sig = None
    if status is not None:
        code = os.waitstatus_to_exitcode(status)
        if code < 0:
            code, sig = None, -code
    return {"exit_code": code, "signal": sig, "timed_out": timed_out}


def _refusal(e: os.DirEntry, st: os.stat_result, depth: int, max_file: int) -> str:
    """Why the entry `e` is not sent back ("" when it may be), from its lstat."""
    if not NAME.match(e.name):
        return "name not collected (dotfiles such as .git/.gitignore, or odd characters)"
    if stat.S_ISDIR(st.st_mode):
        return "directory nested too deep" if depth >= 5 else ""
    if stat.S_ISLNK(st.st_mode):
        return "symbolic link (links made by a job are never followed)"
    if not stat.S_ISREG(st.st_mode):
        return "not a regular file (FIFO, socket or device)"
    if st.st_size > max_file:
        return f"{st.st_size} bytes: over the {max_file}-byte cap for one file"
    if st.st_size > 64 * 1024 and st.st_blocks * 512 < st.st_size // 2:
        return "sparse file"
    return ""


def _read_capped(path: str, size: int) -> bytes:
    """Read a regular file without following a link; a file that grew since lstat is cut at size + 1."""
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_NOCTTY)
    try:
        parts, got = [], 0
        while got <= size:
            chunk = os.read(fd, min(1 << 20, size + 1 - got))
            if not chunk:
                break
            parts.append(chunk)
            got += len(chunk)
        return b"".join(parts)
    finally:
        os.close(fd)


class _Collector:
    """Sends files to the host within the caps, and a bounded list of what it refused and why."""

    def __init__(self, out: Out, max_files: int, max_bytes: int, max_file: int):
        self.out, self.max_files, self.max_bytes, self.max_file = out, max_files, max_bytes, max_file
        self.sent = self.skipped = self.total = 0

    def no(self, rel: str, why: str) -> None:
        self.skipped += 1
        if self.skipped <= 200:
            self.out.meta("S", {"path": rel[:200], "why": why})

    def entries(self, root: str, rel_dir: str) -> list[os.DirEntry]:
        try:
            with os.scandir(os.path.join(root, rel_dir) if rel_dir else root) as it:
                return sorted(it, key=lambda e: e.name)[:10_000]
        except OSError as exc:
            self.no(rel_dir or ".", f"directory unreadable ({exc.strerror})")
            return []

    def take(self, e: os.DirEntry, rel: str, depth: int) -> bool:
        """Send `e` (or say why not); True when it is a directory to descend into."""
        try:
            st = os.lstat(e.path)
        except OSError:
            return False
        why = _refusal(e, st, depth, self.max_file)
        if not why and stat.S_ISDIR(st.st_mode):
            return True
        if not why and self.sent >= self.max_files:
            why = f"over the cap of {self.max_files} files"
        elif not why and self.total + st.st_size > self.max_bytes:
            why = f"over the cap of {self.max_bytes} bytes in all"
        data = b""
        if not why:
            try:
                data = _read_capped(e.path, st.st_size)
            except OSError as exc:
                why = f"unreadable ({exc.strerror})"
        if why:
            self.no(rel, why)
            return False
        self.out.meta("F", {"path": rel, "size": len(data), "mode": st.st_mode & 0o755})
        self.out.data("D", data)
        self.sent += 1
        self.total += len(data)
        return False


def collect(out: Out, root: str, skip: set[str], max_files: int, max_bytes: int, max_file: int) -> tuple[int, int]:
    """Send every collectable file under `root` to the host; returns (files sent, entries skipped). Inputs
    (`skip`) are the host's read-only mounts: the host's copy is the truth, so they are not sent."""
    c = _Collector(out, max_files, max_bytes, max_file)
    stack: list[tuple[str, int]] = [("", 0)]
    while stack:
        rel_dir, depth = stack.pop()
        for e in c.entries(root, rel_dir):
            rel = f"{rel_dir}/{e.name}" if rel_dir else e.name
            if rel not in skip and c.take(e, rel, depth):
                stack.append((rel, depth + 1))
    return c.sent, c.skipped


def main(argv: list[str]) -> int:
    cfg = json.loads(argv[0])
    _not_dumpable()
    if cfg.get("seccomp"):
        try:
            _seccomp(cfg["seccomp"])
        except OSError as exc:
            print(f"jobinit: {exc.strerror}: errno {exc.errno}; the job was not started", file=sys.stderr, flush=True)
            return 125
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):  # from the host: stop the job, still collect
        signal.signal(sig, lambda *_: _kill_all(0) if os.getpid() == 1 else None)
    signal.signal(signal.SIGPIPE, signal.SIG_IGN)
    out = Out()
    end = run_job(out, cfg["cmd"], cfg.get("cwd", "/job"), float(cfg.get("wall", 0)))
    c = cfg.get("collect", {})
    end["collected"], end["skipped"] = collect(
        out, cfg.get("cwd", "/job"), set(c.get("skip", [])), int(c.get("max_files", 1000)),
        int(c.get("max_bytes", 256 << 20)), int(c.get("max_file", 64 << 20)),
    )  # fmt: skip
    out.meta("X", end)
    if end["timed_out"]:
        return 124
    return end["exit_code"] if end["exit_code"] is not None else 128 + (end["signal"] or 9)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
