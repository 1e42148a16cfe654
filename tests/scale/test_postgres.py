"""Postgres: the LangGraph checkpointer and the batch leases on a real PostgreSQL server, and a batch
in which one orchestrator is killed and another (sharing the runs directory) finishes its runs."""

from __future__ import annotations

import operator
import time
from pathlib import Path
from typing import Annotated, TypedDict

import pytest

from agentlab.batch.lease import PgLeases, open_leases
from agentlab.graph import open_saver

pytestmark = pytest.mark.slow


class _S(TypedDict):
    steps: Annotated[list[str], operator.add]


def _graph(saver):
    from langgraph.graph import END, START, StateGraph

    g = StateGraph(_S)
    g.add_node("a", lambda s: {"steps": ["a"]})
    g.add_node("b", lambda s: {"steps": ["b"]})
    g.add_edge(START, "a")
    g.add_edge("a", "b")
    g.add_edge("b", END)
    return g.compile(checkpointer=saver, interrupt_before=["b"])


def test_checkpoints_survive_the_process_that_wrote_them(postgres_url, tmp_path):
    cfg = {"configurable": {"thread_id": "run-x"}}
    with open_saver(tmp_path / "unused.sqlite", postgres_url) as saver:
        _graph(saver).invoke({"steps": []}, cfg)
    assert not (tmp_path / "unused.sqlite").exists()
    with open_saver(tmp_path / "unused.sqlite", postgres_url) as saver:  # a new connection: "another machine"
        g = _graph(saver)
        snap = g.get_state(cfg)
        assert snap.values == {"steps": ["a"]} and snap.next == ("b",)
        assert g.invoke(None, cfg) == {"steps": ["a", "b"]}
        assert g.get_state({"configurable": {"thread_id": "other"}}).values == {}


def test_pg_leases_one_owner_and_takeover_after_expiry(postgres_url, tmp_path):
    a = PgLeases(postgres_url, ttl=1.0, owner="machine-a:1:x")
    b = open_leases(tmp_path, postgres_url, ttl=1.0)
    try:
        assert isinstance(b, PgLeases)
        assert a.acquire("ns/kv") and a.acquire("ns/kv") and not b.acquire("ns/kv")
        h = b.holder("ns/kv")
        assert h.owner == "machine-a:1:x" and 0 < h.expires_in <= 1.0
        assert a.renew("ns/kv") and not b.renew("ns/kv")
        b.release("ns/kv")
        assert not b.acquire("ns/kv")
        time.sleep(1.3)  # a stops renewing (it "died"): b takes over
        assert b.acquire("ns/kv") and not a.renew("ns/kv")
        b.release("ns/kv")
        assert a.holder("ns/kv") is None
        # the database drops b's connection (restart, failover): b reconnects on its next statement
        import psycopg

        with psycopg.connect(postgres_url, autocommit=True) as admin:
            pid = b._conn.info.backend_pid
            admin.execute("SELECT pg_terminate_backend(%s)", (pid,))
        assert b.acquire("ns/kv") and b._conn.info.backend_pid != pid
        b.release("ns/kv")
    finally:
        a.close()
        b.close()


def test_killed_orchestrator_s_runs_are_taken_over_by_another(postgres_url, agent_env, llm_server, tmp_path,
                                                              monkeypatch):
    from tests.batch.helpers import (
        in_experiment,
        kill,
        meta,
        runs_by_workflow,
        scripted,
        slow_experiment,
        start_orchestrator,
        wait_until,
        workflow,
    )

    monkeypatch.setenv("AGENTLAB_CHECKPOINTER_URL", postgres_url)
    scripted(llm_server, text=slow_experiment(5))
    wf = tmp_path / "wf"
    workflow(wf, "kv-a", "Does sink plus window KV eviction keep error low at 4x?")
    workflow(wf, "kv-b", "Does sink plus window KV eviction keep error low at 8x?")
    runs_dir = Path(agent_env["AGENTLAB_RUNS_DIR"])  # the shared filesystem both orchestrators see
    args = [str(wf), "--parallel", "2", "--lease-ttl", "3"]
    log_a, log_b = tmp_path / "a.log", tmp_path / "b.log"
    a = start_orchestrator(args, log_a)
    b = None
    try:
        wait_until(lambda: in_experiment(runs_dir, ["kv-a", "kv-b"]), 150, "both runs in experiment", a, log_a)
        b = start_orchestrator(args, log_b)  # B starts while A is alive: it must wait, not steal
        wait_until(lambda: log_b.exists() and log_b.read_text().count("waiting") >= 2, 60, "B to wait on A's leases",
                   b, log_b)
        owner_a = meta(runs_by_workflow(runs_dir)["kv-a"][0])["batch_owner"]
        kill(a)
        b.wait(timeout=240)
    finally:
        kill(a)
        if b is not None:
            kill(b)
    out_b = log_b.read_text()
    assert b.returncode == 0, out_b
    by = runs_by_workflow(runs_dir)
    assert sorted(by) == ["kv-a", "kv-b"] and all(len(v) == 1 for v in by.values())
    for name in ("kv-a", "kv-b"):
        m = meta(by[name][0])
        assert m["status"] == "done", (name, m, out_b)
        assert m["batch_owner"] != owner_a  # finished by B
        assert not (by[name][0].path / "checkpoints.sqlite").exists()  # state lived in Postgres
    assert "continued (interrupted)" in out_b or "continued (running)" in out_b
    import psycopg

    with psycopg.connect(postgres_url) as conn:
        threads = {r[0] for r in conn.execute("SELECT DISTINCT thread_id FROM checkpoints")}
        assert {r.id for v in by.values() for r in v} <= threads
        held = conn.execute("SELECT key FROM agentlab_batch_leases WHERE key LIKE '%/kv-_'").fetchall()
        assert held == []  # B released both when their runs finished
