"""The paper store: SQLite with paper metadata, full text and numbered chunks.

One store per run (`runs/<id>/papers.sqlite`, what the phases ground on) and one shared cache
(`<cache_dir>/papers.sqlite`) so a paper's PDF is fetched and parsed once across runs. Chunk ids are
positions in the paper's text at the store's chunk size, so `(paper_id, chunk_id)` is stable.
"""

from __future__ import annotations

import json
import sqlite3
import time
from contextlib import closing
from pathlib import Path

from agentlab.literature.pdftext import Chunk, chunk_text

_SCHEMA = """
CREATE TABLE IF NOT EXISTS papers (
  id TEXT PRIMARY KEY, meta TEXT NOT NULL, text TEXT, full_text INTEGER NOT NULL DEFAULT 0,
  source TEXT NOT NULL DEFAULT '', updated REAL NOT NULL);
CREATE TABLE IF NOT EXISTS chunks (
  paper_id TEXT NOT NULL, chunk_id INTEGER NOT NULL, text TEXT NOT NULL, tokens INTEGER NOT NULL,
  PRIMARY KEY (paper_id, chunk_id));
CREATE TABLE IF NOT EXISTS settings (key TEXT PRIMARY KEY, value TEXT NOT NULL);
"""


class PaperStore:
    def __init__(self, path: Path | str, chunk_tokens: int | None = 256):
        """`chunk_tokens=None`: a text-only store (the shared cache), which never chunks."""
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.chunk_tokens = chunk_tokens
        with closing(self._conn()) as c, c:
            c.executescript(_SCHEMA)
            if chunk_tokens is None:
                return
            row = c.execute("SELECT value FROM settings WHERE key='chunk_tokens'").fetchone()
            if row is None:
                c.execute("INSERT INTO settings VALUES ('chunk_tokens', ?)", (str(chunk_tokens),))
            elif int(row[0]) != chunk_tokens:  # re-chunk everything at the new size, ids stay positional
                self.chunk_tokens = chunk_tokens
                c.execute("UPDATE settings SET value=? WHERE key='chunk_tokens'", (str(chunk_tokens),))
                for pid, text in c.execute("SELECT id, text FROM papers").fetchall():
                    self._write_chunks(c, pid, text or "")

    def _conn(self) -> sqlite3.Connection:
        c = sqlite3.connect(self.path, timeout=30)
        c.execute("PRAGMA journal_mode=WAL")
        return c

    def _write_chunks(self, c: sqlite3.Connection, paper_id: str, text: str) -> int:
        c.execute("DELETE FROM chunks WHERE paper_id=?", (paper_id,))
        if self.chunk_tokens is None:
            return 0
        chunks = chunk_text(text, self.chunk_tokens) if text.strip() else []
        c.executemany("INSERT INTO chunks VALUES (?,?,?,?)", [(paper_id, ch.id, ch.text, ch.tokens) for ch in chunks])
        return len(chunks)

    # ---- writing --------------------------------------------------------------------------------
    def put(self, meta: dict, text: str, full_text: bool, source: str = "") -> int:
        """Store (or replace) a paper and its chunks; returns the number of chunks."""
        with closing(self._conn()) as c, c:
            c.execute("INSERT OR REPLACE INTO papers VALUES (?,?,?,?,?,?)",
                      (meta["id"], json.dumps(meta), text, int(full_text), source, time.time()))
            return self._write_chunks(c, meta["id"], text)

    # ---- reading --------------------------------------------------------------------------------
    def has(self, paper_id: str, full_text: bool = False) -> bool:
        with closing(self._conn()) as c:
            row = c.execute("SELECT full_text FROM papers WHERE id=?", (paper_id,)).fetchone()
        return row is not None and (bool(row[0]) or not full_text)

    def meta(self, paper_id: str) -> dict | None:
        with closing(self._conn()) as c:
            row = c.execute("SELECT meta, full_text FROM papers WHERE id=?", (paper_id,)).fetchone()
        if row is None:
            return None
        return {**json.loads(row[0]), "full_text": bool(row[1])}

    def text(self, paper_id: str) -> str | None:
        with closing(self._conn()) as c:
            row = c.execute("SELECT text FROM papers WHERE id=?", (paper_id,)).fetchone()
        return row[0] if row else None

    def ids(self) -> list[str]:
        with closing(self._conn()) as c:
            return [r[0] for r in c.execute("SELECT id FROM papers ORDER BY id")]

    def all_meta(self) -> list[dict]:
        return [m for m in (self.meta(i) for i in self.ids()) if m]

    def chunks(self, paper_id: str) -> list[Chunk]:
        with closing(self._conn()) as c:
            rows = c.execute("SELECT chunk_id, text, tokens FROM chunks WHERE paper_id=? ORDER BY chunk_id",
                             (paper_id,)).fetchall()
        return [Chunk(int(i), t, int(n)) for i, t, n in rows]

    def chunk(self, paper_id: str, chunk_id: int) -> Chunk | None:
        with closing(self._conn()) as c:
            row = c.execute("SELECT chunk_id, text, tokens FROM chunks WHERE paper_id=? AND chunk_id=?",
                            (paper_id, int(chunk_id))).fetchone()
        return Chunk(int(row[0]), row[1], int(row[2])) if row else None

    def n_chunks(self, paper_id: str) -> int:
        with closing(self._conn()) as c:
            return int(c.execute("SELECT COUNT(*) FROM chunks WHERE paper_id=?", (paper_id,)).fetchone()[0])
