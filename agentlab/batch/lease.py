"""Leases: which orchestrator owns which workflow run, across processes and machines.

An orchestrator takes the lease for a workflow before it creates or continues the workflow's run,
renews it from a heartbeat thread while the run is driven, and releases it at the end. Another
orchestrator takes over only after the lease has expired (its owner died or lost its network).

Two stores with the same semantics:
  * `PgLeases`  - one row per key in Postgres; expiry is judged by the database clock (no skew).
  * `FileLeases` - one JSON file per key next to the runs, guarded by flock; for one machine or a
    shared filesystem with working locks (NFSv4, CephFS, Lustre).
"""

from __future__ import annotations

import fcntl
import json
import os
import socket
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Protocol


def new_owner() -> str:
    """host:pid:random, unique per orchestrator process."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


@dataclass
class Holder:
    owner: str
    expires_in: float  # seconds (negative: expired)


class Leases(Protocol):
    owner: str
    ttl: float

    def acquire(self, key: str) -> bool: ...
    def renew(self, key: str) -> bool: ...
    def release(self, key: str) -> None: ...
    def holder(self, key: str) -> Holder | None: ...
    def close(self) -> None: ...


class FileLeases:
    def __init__(self, root: Path, ttl: float = 60.0, owner: str | None = None):
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self.ttl = ttl
        self.owner = owner or new_owner()

    def _path(self, key: str) -> Path:
        return self.root / f"{key.replace('/', '__')}.lease"

    def _locked(self, key: str):
        lock = open(self._path(key).with_suffix(".lock"), "a+")
        fcntl.flock(lock, fcntl.LOCK_EX)
        return lock

    def _read(self, key: str) -> dict | None:
        try:
            return json.loads(self._path(key).read_text())
        except (FileNotFoundError, json.JSONDecodeError):
            return None

    def _write(self, key: str) -> None:
        p = self._path(key)
        tmp = p.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(json.dumps({"owner": self.owner, "expires": time.time() + self.ttl}))
        tmp.replace(p)

    def acquire(self, key: str) -> bool:
        with self._locked(key):
            cur = self._read(key)
            if cur and cur["owner"] != self.owner and cur["expires"] > time.time():
                return False
            self._write(key)
            return True

    def renew(self, key: str) -> bool:
        with self._locked(key):
            cur = self._read(key)
            if not cur or cur["owner"] != self.owner:
                return False
            self._write(key)
            return True

    def release(self, key: str) -> None:
        with self._locked(key):
            cur = self._read(key)
            if cur and cur["owner"] == self.owner:
                self._path(key).unlink(missing_ok=True)

    def holder(self, key: str) -> Holder | None:
        cur = self._read(key)
        return Holder(cur["owner"], cur["expires"] - time.time()) if cur else None

    def close(self) -> None:
        pass


_TABLE = "agentlab_batch_leases"


class PgLeases:
    """Leases as rows of one table; every statement is atomic on its own (autocommit)."""

    def __init__(self, url: str, ttl: float = 60.0, owner: str | None = None):
        import psycopg

        self.ttl = ttl
        self.owner = owner or new_owner()
        self._url = url
        self._lock = threading.Lock()
        self._conn = psycopg.connect(url, autocommit=True, connect_timeout=10)
        self._conn.execute(f"CREATE TABLE IF NOT EXISTS {_TABLE} (key text PRIMARY KEY, owner text NOT NULL, "
                           "expires timestamptz NOT NULL)")

    def _one(self, sql: str, args: tuple) -> tuple | None:
        import psycopg

        with self._lock:
            try:
                return self._conn.execute(sql, args).fetchone()
            except (psycopg.OperationalError, psycopg.InterfaceError):
                if not (self._conn.closed or self._conn.broken):
                    raise
                # the connection broke (database restart, network): reconnect once; each statement is atomic
                self._conn = psycopg.connect(self._url, autocommit=True, connect_timeout=10)
                return self._conn.execute(sql, args).fetchone()

    def acquire(self, key: str) -> bool:
        row = self._one(
            f"INSERT INTO {_TABLE} AS l (key, owner, expires) VALUES (%s, %s, now() + make_interval(secs => %s)) "
            "ON CONFLICT (key) DO UPDATE SET owner = EXCLUDED.owner, expires = EXCLUDED.expires "
            "WHERE l.expires < now() OR l.owner = EXCLUDED.owner RETURNING owner",
            (key, self.owner, self.ttl))
        return row is not None and row[0] == self.owner

    def renew(self, key: str) -> bool:
        row = self._one(f"UPDATE {_TABLE} SET expires = now() + make_interval(secs => %s) "
                        "WHERE key = %s AND owner = %s RETURNING key", (self.ttl, key, self.owner))
        return row is not None

    def release(self, key: str) -> None:
        self._one(f"DELETE FROM {_TABLE} WHERE key = %s AND owner = %s RETURNING key", (key, self.owner))

    def holder(self, key: str) -> Holder | None:
        row = self._one(f"SELECT owner, extract(epoch FROM expires - now()) FROM {_TABLE} WHERE key = %s", (key,))
        return Holder(row[0], float(row[1])) if row else None

    def close(self) -> None:
        with self._lock:
            self._conn.close()


def open_leases(runs_dir: Path, checkpointer_url: str | None, ttl: float) -> Leases:
    """Postgres leases when the runs are checkpointed in Postgres, lease files next to the runs otherwise."""
    if checkpointer_url and checkpointer_url.startswith(("postgres://", "postgresql://")):
        return PgLeases(checkpointer_url, ttl)
    return FileLeases(Path(runs_dir) / ".batch" / "leases", ttl)


class Heartbeat:
    """Renews the held leases every ttl/3 seconds; remembers keys it failed to renew (`lost`)."""

    def __init__(self, leases: Leases, on_lost: Callable[[str], None] | None = None):
        self.leases = leases
        self.on_lost = on_lost or (lambda key: None)
        self.keys: set[str] = set()
        self.lost: set[str] = set()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="lease-heartbeat", daemon=True)

    def __enter__(self) -> "Heartbeat":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def hold(self, key: str) -> None:
        with self._lock:
            self.keys.add(key)

    def drop(self, key: str) -> None:
        with self._lock:
            self.keys.discard(key)

    def _loop(self) -> None:
        interval = max(0.2, self.leases.ttl / 3)
        while not self._stop.wait(interval):
            with self._lock:
                keys = list(self.keys)
            for k in keys:
                try:
                    ok = self.leases.renew(k)
                except Exception:  # a database blip: try again next beat; expiry decides
                    continue
                if not ok:
                    with self._lock:
                        self.lost.add(k)
                        self.keys.discard(k)
                    self.on_lost(k)
