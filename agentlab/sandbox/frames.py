"""Host side of the supervisor channel (`jobinit.py`): parse its frames with hard caps, never trusting them.

Whatever the sandbox sends is hostile: a line too long, a bad frame, a file over its declared size or the
caps, a name that is not a plain relative path, or a name of one of the job's inputs ends the channel or
drops the file, and says so in `notes`. Files land in the work dir through `safe_files.write_new` (no link
is ever followed, no setuid bit survives); the host's copy of an input (main.py) is never replaced.
"""

from __future__ import annotations

import base64
import binascii
import json
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO, Callable

from agentlab.sandbox.jobinit import CHUNK
from agentlab.sandbox.safe_files import UntrustedFileError, check_relpath, write_new

MAX_LINE = CHUNK * 2 + 1024  # base64 of one chunk, with room to spare
MAX_NOTES = 50


@dataclass
class Caps:
    max_files: int = 1000
    max_bytes: int = 256 << 20
    max_file: int = 64 << 20

    def config(self, skip: list[str]) -> dict:
        return {"max_files": self.max_files, "max_bytes": self.max_bytes, "max_file": self.max_file, "skip": skip}


@dataclass
class Channel:
    """What came back over the channel: the end record, the files written, and why anything was refused."""

    end: dict | None = None
    files: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)  # "path: why" (from the sandbox or the host)
    error: str = ""  # a protocol violation; the channel was abandoned there

    def note_skip(self, text: str) -> None:
        """Record a refusal; names come from the job, so control and bidi characters become '?'."""
        if len(self.skipped) < MAX_NOTES:
            self.skipped.append("".join(c if c.isprintable() else "?" for c in text[:300]))


class FrameReader(threading.Thread):
    """Reads the supervisor's stdout; feeds O/E to `on_output(stream, chunk)` and writes files under `root`."""

    def __init__(self, stream: BinaryIO | None, root: Path, inputs: set[str], caps: Caps,
                 on_output: Callable[[int, bytes], None], lines: Callable[[], "object"] | None = None):  # fmt: skip
        super().__init__(daemon=True)
        self.stream, self.root, self.inputs, self.caps = stream, Path(root), inputs, caps
        self.on_output = on_output
        self.lines = lines  # alternative source: an iterator of raw byte chunks (docker logs)
        self.ch = Channel()
        self._file: dict | None = None
        self._buf: list[bytes] = []
        self._got = 0
        self._total = 0

    # ---- transport ----------------------------------------------------------------------------
    def run(self) -> None:
        try:
            for line in self._iter_lines():
                if not self.feed_line(line):
                    break
        except Exception as exc:  # noqa: BLE001 - a broken channel is reported, never raised into the host
            self.ch.error = self.ch.error or f"channel error: {type(exc).__name__}"
        finally:
            self._finish_file()
            if self.stream is not None:
                for _ in iter(lambda: self.stream.read(65536), b""):  # drain so the sandbox never blocks
                    pass

    def _iter_lines(self):
        pending = b""
        chunks = iter(lambda: self.stream.read1(65536), b"") if self.stream is not None else self.lines()
        for chunk in chunks:
            pending += chunk
            while True:
                nl = pending.find(b"\n")
                if nl < 0:
                    break
                yield pending[:nl]
                pending = pending[nl + 1 :]
            if len(pending) > MAX_LINE:
                self.ch.error = "the sandbox sent an over-long frame"
                return

    # ---- frames -------------------------------------------------------------------------------
    def feed_line(self, line: bytes) -> bool:
        if len(line) > MAX_LINE or len(line) < 2 or line[1:2] != b" ":
            self.ch.error = "the sandbox sent a malformed frame"
            return False
        kind = line[:1].decode("ascii", "replace")
        try:
            payload = base64.b64decode(line[2:], validate=True)
        except (binascii.Error, ValueError):
            self.ch.error = "the sandbox sent a frame that is not base64"
            return False
        if kind in "OE":
            self.on_output(0 if kind == "O" else 1, payload)
        elif kind == "D":
            self._data(payload)
        elif kind in "FSX":
            try:
                meta = json.loads(payload.decode("utf-8"))
                if not isinstance(meta, dict):
                    raise ValueError
            except ValueError:
                self.ch.error = f"the sandbox sent a malformed {kind} record"
                return False
            if kind == "F":
                self._begin(meta)
            elif kind == "S":
                self.ch.note_skip(f"{str(meta.get('path', '?'))[:200]}: {str(meta.get('why', '?'))[:100]}")
            else:
                self._finish_file()
                self.ch.end = {k: meta.get(k) for k in ("exit_code", "signal", "timed_out", "collected", "skipped")}
                return False
        else:
            self.ch.error = "the sandbox sent an unknown frame"
            return False
        return True

    def _begin(self, meta: dict) -> None:
        self._finish_file()
        path, size, mode = meta.get("path"), meta.get("size"), meta.get("mode", 0o644)
        if not isinstance(path, str) or not isinstance(size, int) or not isinstance(mode, int) or size < 0:
            self.ch.note_skip("?: a file record without a valid path or size")
            self._file = {"drop": True, "size": 0}
            return
        why = ""
        try:
            path = check_relpath(path)
        except UntrustedFileError as exc:
            why = str(exc)
        if not why and (path in self.inputs or path.split("/")[0] in self.inputs):
            why = "an input of the job; the host's copy is kept"
        elif not why and size > self.caps.max_file:
            why = f"{size} bytes: over the {self.caps.max_file}-byte cap"
        elif not why and len(self.ch.files) >= self.caps.max_files:
            why = f"over the cap of {self.caps.max_files} files"
        elif not why and self._total + size > self.caps.max_bytes:
            why = f"over the cap of {self.caps.max_bytes} bytes in all"
        if why:
            self.ch.note_skip(f"{path[:200]}: {why}")
        self._file = {"path": path, "size": size, "mode": mode & 0o755, "drop": bool(why)}
        self._buf, self._got = [], 0

    def _data(self, payload: bytes) -> None:
        f = self._file
        if f is None:
            self.ch.error = "the sandbox sent file data without a file record"
            return
        self._got += len(payload)
        if self._got > f["size"]:
            if not f["drop"]:
                self.ch.note_skip(f"{f['path']}: more bytes than declared; dropped")
            f["drop"] = True
        if not f["drop"]:
            self._buf.append(payload)

    def _finish_file(self) -> None:
        f, self._file = self._file, None
        if f is None or f["drop"]:
            return
        if self._got != f["size"]:
            self.ch.note_skip(f"{f['path']}: truncated in transfer; dropped")
            return
        try:
            write_new(self.root, f["path"], b"".join(self._buf), f["mode"])
        except (UntrustedFileError, OSError) as exc:
            self.ch.note_skip(f"{f['path']}: not written ({exc})")
            return
        finally:
            self._buf = []
        self.ch.files.append(f["path"])
        self._total += f["size"]
