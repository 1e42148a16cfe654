"""A real pseudo-terminal for the interactive CLI: `python -m agentlab.cli ...` runs with a pty as its
stdin/stdout/stderr (a fixed window size, so rich wraps as it would on a person's terminal); the test
reads what was shown (ANSI sequences removed) and types answers."""

from __future__ import annotations

import fcntl
import os
import re
import signal
import struct
import subprocess
import sys
import termios
import threading
import time

from tests.spine_helpers import ROOT

_ANSI = re.compile(r"\x1b\[[0-?]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)|\x1b[()][0-9A-Za-z]|\x1b[=>78]")


def plain(raw: bytes) -> str:
    """What a person reads: the text without colour/cursor sequences and carriage returns."""
    return _ANSI.sub("", raw.decode("utf-8", "replace")).replace("\r", "")


class Terminal:
    def __init__(self, args: list[str], env: dict, cols: int = 80, rows: int = 60):
        master, slave = os.openpty()
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))
        full = {**os.environ, **env, "PYTHONPATH": str(ROOT), "COLUMNS": str(cols), "LINES": str(rows),
                "TERM": "xterm-256color"}
        for var in ("EDITOR", "VISUAL", "NO_COLOR"):  # only what the test sets
            if var not in env:
                full.pop(var, None)
        self.proc = subprocess.Popen([sys.executable, "-m", "agentlab.cli", *args], stdin=slave, stdout=slave,
                                     stderr=slave, env=full, start_new_session=True, close_fds=True)
        os.close(slave)
        self.master, self.raw, self.pos = master, b"", 0
        self._lock = threading.Lock()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        while True:
            try:
                chunk = os.read(self.master, 65536)
            except OSError:  # EIO: the child closed the terminal
                return
            if not chunk:
                return
            with self._lock:
                self.raw += chunk

    def text(self) -> str:
        with self._lock:
            return plain(self.raw)

    def expect(self, needle: str, timeout: float = 120) -> str:
        """Wait until `needle` is shown after what was already expected; the text up to and including it."""
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            text = self.text()
            i = text.find(needle, self.pos)
            if i >= 0:
                seen, self.pos = text[self.pos:i + len(needle)], i + len(needle)
                return seen
            if self.proc.poll() is not None and not self._reader.is_alive():
                break
            time.sleep(0.05)
        raise AssertionError(f"{needle!r} was not shown; the terminal shows:\n{self.text()[self.pos:][-4000:]}")

    def send(self, line: str) -> None:
        os.write(self.master, line.encode() + b"\r")

    def interrupt(self) -> None:
        os.killpg(self.proc.pid, signal.SIGINT)

    def wait(self, timeout: float = 120) -> int:
        rc = self.proc.wait(timeout=timeout)
        self._reader.join(timeout=5)
        return rc

    def close(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=30)
        self._reader.join(timeout=5)
        try:
            os.close(self.master)
        except OSError:
            pass

    def __enter__(self) -> "Terminal":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
