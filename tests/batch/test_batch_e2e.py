"""`agentlab batch` end to end against the scripted LLM and fake arXiv: parallel runs, a failing run,
parked runs with their resume command, and a restart that continues what was unfinished."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from agentlab.cli import app
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

pytestmark = pytest.mark.slow


def batch(*args: str):
    return CliRunner().invoke(app, ["batch", *args], catch_exceptions=False)


def test_parallel_batch_survives_a_failure_parks_and_restarts(agent_env, llm_server, tmp_path):
    scripted(llm_server)
    wf = tmp_path / "wf"
    workflow(wf, "finishes", "Does sink plus window KV eviction keep error low at 4x?")
    workflow(wf, "parks", "Does sink plus window KV eviction keep error low at 8x?", checkpoints="[plan]")
    workflow(wf, "over-budget", "Does sink plus window KV eviction keep error low at 2x?",
             extra="budgets: {max_tokens: 300}\n")
    runs_dir = Path(agent_env["AGENTLAB_RUNS_DIR"])

    r = batch(str(wf), "--parallel", "3")
    out = r.output
    by = runs_by_workflow(runs_dir)
    assert sorted(by) == ["finishes", "over-budget", "parks"] and all(len(v) == 1 for v in by.values())
    done, parked, stopped = by["finishes"][0], by["parks"][0], by["over-budget"][0]
    assert meta(done)["status"] == "done", out
    assert meta(parked)["status"] == "parked" and meta(parked)["waiting"]["phase"] == "plan"
    assert meta(stopped)["status"] == "stopped", out
    assert r.exit_code == 1  # a run needs attention
    assert f"agentlab resume {parked.id} --approve" in out and f"agentlab resume {stopped.id}" in out
    assert "1 done" in out and "1 parked" in out and "1 stopped" in out
    assert (done.path / "logs" / "batch.log").exists() and meta(done)["workflow_file"].endswith("finishes.yaml")
    assert '"status": "done"' in (done.path / "logs" / "batch-outcome.json").read_text()  # default: a worker process

    # restart: nothing is redone, nothing is duplicated, the parked run is still listed
    calls = len(llm_server.requests)
    r2 = batch(str(wf), "--parallel", "2")
    assert len(llm_server.requests) == calls
    assert {k: [x.id for x in v] for k, v in runs_by_workflow(runs_dir).items()} == \
        {k: [x.id for x in v] for k, v in by.items()}
    assert "already finished" in r2.output and f"agentlab resume {parked.id} --approve" in r2.output

    # the printed command works; the next batch then sees the run finished
    r3 = CliRunner().invoke(app, ["resume", parked.id, "--approve", "--headless"])
    assert r3.exit_code == 0, r3.output
    assert meta(parked)["status"] == "done"
    r4 = batch(str(wf), "--only", "parks,finishes")
    assert r4.exit_code == 0 and "2 done" in r4.output


def test_a_killed_orchestrator_s_run_is_continued_not_restarted(agent_env, llm_server, tmp_path):
    scripted(llm_server, text=slow_experiment(4))
    wf = tmp_path / "wf"
    workflow(wf, "kv", "Does sink plus window KV eviction keep error low at 4x?")
    runs_dir = Path(agent_env["AGENTLAB_RUNS_DIR"])
    log = tmp_path / "first.log"
    first = start_orchestrator([str(wf), "--lease-ttl", "2"], log)
    try:
        wait_until(lambda: in_experiment(runs_dir, ["kv"]), 120, "the run to reach its experiment", first, log)
    finally:
        kill(first)
    run = runs_by_workflow(runs_dir)["kv"][0]
    # its worker process dies with it (same process group, and PR_SET_PDEATHSIG)
    wait_until(lambda: run.effective_status() == "interrupted", 15, "the run's worker to die with its orchestrator")
    seen_before = len(llm_server.keys_seen())

    r = batch(str(wf), "--lease-ttl", "2", "--isolation", "thread")
    assert r.exit_code == 0, r.output
    assert [x.id for x in runs_by_workflow(runs_dir)["kv"]] == [run.id]  # the same run, continued
    assert meta(run)["status"] == "done" and "continued (interrupted)" in r.output
    after = llm_server.keys_seen()[seen_before:]
    assert "Interpretation" in after and "Review" in after
    assert "Plan" not in after and "text" not in after  # finished steps were not redone (nor paid)
    assert llm_server.keys_seen().count("text") == 1  # method.py was asked for once


def test_thread_isolation_drives_runs_inside_the_orchestrator(agent_env, llm_server, tmp_path):
    scripted(llm_server)
    wf = tmp_path / "wf"
    workflow(wf, "p1", "Does sink plus window KV eviction keep error low at 4x?")
    workflow(wf, "p2", "Does sink plus window KV eviction keep error low at 8x?", checkpoints="[plan]")
    r = batch(str(wf), "--parallel", "2", "--isolation", "thread")
    by = runs_by_workflow(Path(agent_env["AGENTLAB_RUNS_DIR"]))
    assert r.exit_code == 0, r.output
    assert meta(by["p1"][0])["status"] == "done" and meta(by["p2"][0])["status"] == "parked"
    assert f"agentlab resume {by['p2'][0].id} --approve" in r.output
    import os

    assert meta(by["p1"][0])["batch_owner"].split(":")[1] == str(os.getpid())  # driven in this process
    assert not (by["p1"][0].path / "logs" / "batch-outcome.json").exists()


def test_a_run_whose_lease_is_taken_is_stopped_not_driven_twice(agent_env, llm_server, tmp_path):
    """Process isolation fences a paused/cut-off orchestrator: losing the lease kills the run's worker."""
    import threading

    from agentlab.batch.lease import FileLeases
    from agentlab.batch.scheduler import Batch
    from agentlab.batch.workflow import load_workflows
    from agentlab.config import load_settings
    from tests.batch.helpers import in_experiment, wait_until

    scripted(llm_server, text=slow_experiment(20))
    wf = tmp_path / "wf"
    workflow(wf, "fenced", "Does sink plus window KV eviction keep error low at 4x?")
    runs_dir = Path(agent_env["AGENTLAB_RUNS_DIR"])
    leases = FileLeases(runs_dir / ".batch" / "leases", ttl=1.5)
    b = Batch(load_workflows(wf), runs_dir, 1, leases,
              lambda w: load_settings(None, {**w.to_overrides(), "runs_dir": str(runs_dir)}), isolation="process")
    t = threading.Thread(target=b.run, daemon=True)
    t.start()
    wait_until(lambda: in_experiment(runs_dir, ["fenced"]), 120, "the run to reach its experiment")
    lease_file = next((runs_dir / ".batch" / "leases").glob("*.lease"))
    thief = FileLeases(lease_file.parent, ttl=60, owner="other-host:1:thief")
    lease_file.unlink()  # as if our lease had expired while this orchestrator was paused
    assert thief.acquire(b.key(b.slots[0]))
    t.join(timeout=30)
    assert not t.is_alive()
    slot = b.slots[0]
    assert slot.state == "interrupted" and "lease lost" in slot.note
    run = runs_by_workflow(runs_dir)["fenced"][0]
    assert run.effective_status() == "interrupted"  # its worker is gone: the thief may continue it
