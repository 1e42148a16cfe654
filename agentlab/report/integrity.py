"""The audit trail of the report's integrity checks: `report/integrity.jsonl`, append-only, across revisions.

Every flagged claim (`flagged`), every replacement the writer sent (`rewritten`) and every final decision
(`decided`: fixed, dropped, open) is one JSON line. Nothing is rewritten or removed; a later revision appends.
`open_problems` are the decisions of the latest revision still `open`: they block acceptance.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

MAX_TEXT = 4000
MAX_READ_BYTES = 8 << 20
EVENTS = ("flagged", "rewritten", "decided")
DECISIONS = ("fixed", "dropped", "open", "replaced")


def _clip(text, limit: int = MAX_TEXT) -> str:
    text = str(text or "")
    return text if len(text) <= limit else text[: limit - 3] + "..."


class Trail:
    """Appends the records of one revision to `<report dir>/integrity.jsonl`."""

    def __init__(self, path: Path, revision: int):
        self.path, self.revision = Path(path), int(revision)
        self.records: list[dict] = []

    def _add(self, **rec) -> dict:
        rec = {"ts": round(time.time(), 3), "revision": self.revision, **rec}
        self.records.append(rec)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if self.path.is_symlink():
            self.path.unlink()
        with open(self.path, "a", encoding="utf-8") as f:
            f.write(json.dumps(rec, ensure_ascii=False) + "\n")
        return rec

    def flagged(self, section: str, round_: int, kind: str, claim: str, message: str) -> dict:
        return self._add(section=section, round=round_, event="flagged", kind=kind, claim=_clip(claim, 600),
                         message=_clip(message, 600), replacement="", decision="")

    def rewritten(self, section: str, round_: int, latex: str) -> dict:
        return self._add(section=section, round=round_, event="rewritten", kind="", claim="", message="",
                         replacement=_clip(latex), decision="")

    def decided(self, section: str, kind: str, claim: str, decision: str, message: str = "") -> dict:
        assert decision in DECISIONS, decision
        return self._add(section=section, round=None, event="decided", kind=kind, claim=_clip(claim, 600),
                         message=_clip(message, 600), replacement="", decision=decision)

def read(path: Path) -> list[dict]:
    """Every record of the trail (bounded read; a malformed line is skipped)."""
    p = Path(path)
    if not p.is_file() or p.is_symlink():
        return []
    with open(p, "rb") as f:
        data = f.read(MAX_READ_BYTES)
    out = []
    for line in data.decode("utf-8", errors="replace").splitlines():
        try:
            rec = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(rec, dict) and rec.get("event") in EVENTS:
            out.append(rec)
    return out


def _latest(records: list[dict]) -> int:
    return max([int(r.get("revision") or 0) for r in records] or [0])


def _open_of(records: list[dict], revision: int) -> list[dict]:
    return [r for r in records if r.get("revision") == revision and r.get("event") == "decided"
            and r.get("decision") == "open"]


def open_problems(records: list[dict]) -> list[dict]:
    """The open decisions of the latest revision in the trail."""
    return _open_of(records, _latest(records))


def summary(records: list[dict], revision: int | None = None) -> dict:
    """Counts per decision of one revision (default: the latest), and its open problems (for the checkpoint
    and the reviewers)."""
    last = revision if revision is not None else _latest(records)
    mine = [r for r in records if r.get("revision") == last]
    count = {d: sum(1 for r in mine if r.get("event") == "decided" and r.get("decision") == d) for d in DECISIONS}
    return {"revision": last, "flagged": sum(1 for r in mine if r.get("event") == "flagged"),
            "fixed": count["fixed"], "dropped": count["dropped"],
            "open": [f"{r.get('section')}: {r.get('message')}" + (f" ({r.get('claim')})" if r.get("claim") else "")
                     for r in _open_of(records, last)]}
