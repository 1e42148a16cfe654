"""Every LLM call, one JSON line: phase, model, tokens, cost, latency. The source of truth for usage."""

from __future__ import annotations

import json
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path


@dataclass
class LedgerEntry:
    phase: str
    model: str
    prompt_tokens: int
    completion_tokens: int
    cost: float
    latency_s: float
    ok: bool
    purpose: str = ""
    error: str = ""
    ts: float = 0.0


class Ledger:
    def __init__(self, path: Path | None):
        self.path = Path(path) if path else None
        self._lock = threading.Lock()
        self._mem: list[dict] = []  # in memory (no path), or the rows read from the file so far
        self._read = 0  # bytes of the file already in _mem (whole lines only)

    def append(self, entry: LedgerEntry) -> None:
        entry.ts = entry.ts or time.time()
        row = asdict(entry)
        with self._lock:
            if self.path is None:
                self._mem.append(row)
                return
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with self.path.open("ab") as f:
                if f.tell() and not self._ends_with_newline():  # a line torn by kill -9: end it, keep this row
                    f.write(b"\n")
                f.write((json.dumps(row) + "\n").encode())
                f.flush()

    def _ends_with_newline(self) -> bool:
        assert self.path is not None
        with self.path.open("rb") as f:
            f.seek(-1, 2)
            return f.read(1) == b"\n"

    def entries(self) -> list[dict]:
        """Every row; a file is read incrementally (only what was appended since the last read)."""
        if self.path is None:
            with self._lock:
                return list(self._mem)
        with self._lock:
            try:
                size = self.path.stat().st_size
            except FileNotFoundError:
                self._mem, self._read = [], 0
                return []
            if size < self._read:  # replaced or truncated: read it again
                self._mem, self._read = [], 0
            if size > self._read:
                with self.path.open("rb") as f:
                    f.seek(self._read)
                    chunk = f.read(size - self._read)
                end = chunk.rfind(b"\n") + 1  # whole lines only; a line being written is read next time
                for line in chunk[:end].decode("utf-8", "replace").splitlines():
                    try:
                        self._mem.append(json.loads(line))
                    except json.JSONDecodeError:  # a line torn by kill -9: skip it, keep the rest
                        continue
                self._read += end
            return list(self._mem)

    def latency(self, model: str, last: int = 5) -> float:
        """The longest latency (seconds) of the model's last `last` successful calls; 0.0 before any."""
        lat = [e.get("latency_s", 0.0) for e in self.entries() if e.get("ok") and e.get("model") == model]
        return max(lat[-last:], default=0.0)

    def totals(self, phase: str | None = None) -> dict:
        t = {"calls": 0, "prompt_tokens": 0, "completion_tokens": 0, "tokens": 0, "cost": 0.0}
        for e in self.entries():
            if phase and e["phase"] != phase:
                continue
            t["calls"] += 1
            t["prompt_tokens"] += e["prompt_tokens"]
            t["completion_tokens"] += e["completion_tokens"]
            t["cost"] += e["cost"]
        t["tokens"] = t["prompt_tokens"] + t["completion_tokens"]
        t["cost"] = round(t["cost"], 9)
        return t

    def by_phase(self) -> dict[str, dict]:
        phases = sorted({e["phase"] for e in self.entries()})
        return {p: self.totals(p) for p in phases}
