"""File leases: one owner at a time, takeover only after expiry, heartbeats keep a lease alive."""

from __future__ import annotations

import multiprocessing as mp
import time
from pathlib import Path

from agentlab.batch.lease import FileLeases, Heartbeat, new_owner


def test_one_owner_until_release_or_expiry(tmp_path):
    a = FileLeases(tmp_path, ttl=0.6, owner="host-a:1:x")
    b = FileLeases(tmp_path, ttl=0.6, owner="host-b:2:y")
    assert a.acquire("batch/kv") and a.acquire("batch/kv")  # re-entrant for the owner
    assert not b.acquire("batch/kv")
    h = b.holder("batch/kv")
    assert h.owner == "host-a:1:x" and 0 < h.expires_in <= 0.6
    assert not b.renew("batch/kv") and a.renew("batch/kv")
    b.release("batch/kv")  # not b's: no effect
    assert not b.acquire("batch/kv")
    a.release("batch/kv")
    assert b.holder("batch/kv") is None and b.acquire("batch/kv")
    time.sleep(0.8)  # b died without releasing: its lease expires
    assert a.acquire("batch/kv") and a.holder("batch/kv").owner == "host-a:1:x"
    assert not b.renew("batch/kv")  # b comes back: it knows it lost the lease


def test_heartbeat_keeps_the_lease_and_notices_a_loss(tmp_path):
    a = FileLeases(tmp_path, ttl=0.6)
    b = FileLeases(tmp_path, ttl=0.6)
    assert a.owner != b.owner and a.owner.count(":") == 2
    with Heartbeat(a) as hb:
        assert a.acquire("k")
        hb.hold("k")
        time.sleep(1.5)  # well past the ttl
        assert not b.acquire("k") and not hb.lost
        # someone breaks the lease (e.g. an operator deleting it); the next beat notices
        (tmp_path / "k.lease").unlink()
        assert b.acquire("k")
        time.sleep(0.5)
        assert "k" in hb.lost


def _race(root: str, q) -> None:
    leases = FileLeases(Path(root), ttl=30)
    q.put((leases.owner, leases.acquire("contended")))


def test_processes_racing_for_one_key_get_exactly_one_winner(tmp_path):
    ctx = mp.get_context("fork")
    q = ctx.Queue()
    procs = [ctx.Process(target=_race, args=(str(tmp_path), q)) for _ in range(6)]
    for p in procs:
        p.start()
    got = [q.get(timeout=60) for _ in procs]
    for p in procs:
        p.join(timeout=30)
    winners = [o for o, won in got if won]
    assert len(winners) == 1
    assert FileLeases(tmp_path).holder("contended").owner == winners[0]


def test_owner_names_are_unique():
    assert len({new_owner() for _ in range(50)}) == 50
