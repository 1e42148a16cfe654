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
        self._mem: list[dict] = []

    def append(self, entry: LedgerEntry) -> None:
        entry.ts = entry.ts or time.time()
        row = asdict(entry)
        with self._lock:
            if self.path is None:
                self._mem.append(row)
                return
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with self.path.open("a") as f:
                f.write(json.dumps(row) + "\n")
                f.flush()

    def entries(self) -> list[dict]:
        if self.path is None:
            return list(self._mem)
        if not self.path.exists():
            return []
        rows = []
        for line in self.path.read_text().splitlines():
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError:  # a line torn by kill -9: skip it, keep the rest
                continue
        return rows

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
