"""`agentlab batch` flags (--model, --base-url, budgets, --set) for every workflow, winning over the files, and
a rerun that retries stopped runs (a model that is not served, a spent budget) while parked runs stay parked."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.batch.helpers import ROOT, meta, runs_by_workflow, scripted, workflow

pytestmark = pytest.mark.slow


def batch(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    """The real CLI in its own process (environment: the agent_env fixture's, applied to os.environ)."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-m", "agentlab.cli", "batch", *args], capture_output=True, text=True,
                          env=env, cwd=cwd, stdin=subprocess.DEVNULL, timeout=900)  # fmt: skip


def saved(run) -> dict:
    return json.loads(run.settings_path.read_text())


def test_flags_apply_to_every_workflow_and_a_rerun_retries_stopped_runs(agent_env, llm_server, tmp_path,
                                                                        monkeypatch):
    scripted(llm_server)
    monkeypatch.delenv("OPENAI_BASE_URL")  # the endpoint comes from --base-url alone
    wf = tmp_path / "wf"
    workflow(wf, "unserved", "Does sink plus window KV eviction keep error low at 4x?",
             extra="models: {default: not-served-model}\n")
    workflow(wf, "over-budget", "Does sink plus window KV eviction keep error low at 2x?",
             extra="budgets: {max_tokens: 300}\n")
    workflow(wf, "parks", "Does sink plus window KV eviction keep error low at 8x?", checkpoints="[plan]")
    runs_dir = Path(agent_env["AGENTLAB_RUNS_DIR"])

    r = batch(str(wf), "--parallel", "3", "--base-url", llm_server.base_url, "--set", "max_papers=1",
              "--set", "seeds=1", cwd=tmp_path)
    out = r.stdout + r.stderr
    by = runs_by_workflow(runs_dir)
    unserved, over, parked = by["unserved"][0], by["over-budget"][0], by["parks"][0]
    assert r.returncode == 1, out
    assert meta(unserved)["status"] == "stopped" and meta(over)["status"] == "stopped", out
    assert meta(parked)["status"] == "parked", out
    assert "--model" in out  # the note says to pick a served model with --model: batch has that flag now
    for run in (unserved, over, parked):  # --set wins over each file (literature: {max_papers: 2})
        assert saved(run)["max_papers"] == 1 and saved(run)["base_url"] == llm_server.base_url
    assert saved(unserved)["model"] == "not-served-model" and saved(over)["max_tokens"] == 300

    # rerun with a served model and a raised budget: the stopped runs are retried (the same runs), not the parked
    r2 = batch(str(wf), "--parallel", "2", "--base-url", llm_server.base_url, "--model", "scripted-model",
               "--max-tokens", "10000000", cwd=tmp_path)
    out2 = r2.stdout + r2.stderr
    assert {k: [x.id for x in v] for k, v in runs_by_workflow(runs_dir).items()} == \
        {k: [x.id for x in v] for k, v in by.items()}
    assert meta(unserved)["status"] == "done", out2
    assert meta(over)["status"] == "done", out2
    assert meta(parked)["status"] == "parked" and f"agentlab resume {parked.id} --approve" in out2
    assert r2.returncode == 0, out2
    assert saved(unserved)["model"] == "scripted-model" and saved(over)["max_tokens"] == 10000000
    assert saved(parked)["max_tokens"] != 10000000  # a parked run is not touched by a batch
    assert any(c.get("setting") == "max_tokens" and c.get("new") == 10000000 for c in over.events("settings"))
    served = [q["model"] for q in llm_server.requests if q["status"] == 200]
    assert served and set(served) == {"scripted-model"}


def test_a_bad_set_is_refused_before_anything_runs(agent_env, tmp_path):
    wf = tmp_path / "wf"
    workflow(wf, "one", "Does sink plus window KV eviction keep error low at 4x?")
    r = batch(str(wf), "--set", "draftz=2", cwd=tmp_path)
    assert r.returncode == 2 and "unknown setting 'draftz'" in r.stderr and "drafts" in r.stderr, r.stderr
    r = batch(str(wf), "--max-cost", "-1", cwd=tmp_path)
    assert r.returncode == 2 and "max-cost" in r.stderr and "Traceback" not in r.stderr, r.stderr
    assert not (Path(agent_env["AGENTLAB_RUNS_DIR"])).exists() or not runs_by_workflow(
        Path(agent_env["AGENTLAB_RUNS_DIR"]))
    r = batch(str(wf), "--check", "--model", "m", "--set", "drafts=2", cwd=tmp_path)
    assert r.returncode == 0 and "1 workflow(s) valid" in r.stdout, r.stdout + r.stderr
