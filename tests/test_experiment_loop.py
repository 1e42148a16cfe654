"""The experiment loop: attempts that crash, hang, write malformed or hard-coded results are recorded
with a reason and repaired from the traceback; good attempts are ranked by the measured metric."""

from __future__ import annotations

import io
from pathlib import Path

import git
import pytest
from rich.console import Console

from agentlab.config import load_settings
from agentlab.runner import drive, pending_interrupt
from agentlab.runs import RunDir
from tests.fakes.scripts import EXPERIMENT_CODE, full_run

pytestmark = pytest.mark.slow


def code(src: str) -> dict:
    return {"explanation": "attempt", "code": src}


def run_to_experiment_checkpoint(**overrides) -> tuple[RunDir, dict]:
    settings = load_settings(None, {"checkpoints": "experiment", "max_papers": 1, **overrides})
    run = RunDir.create(Path(settings.runs_dir), "sink+window eviction")
    settings.save(run.settings_path)
    out = drive(run, settings, {"idea": "Does sink+window KV eviction keep the error small at 4x?"},
                Console(file=io.StringIO()), live=False)
    assert out.status == "parked", out
    payload, values = pending_interrupt(run, settings)
    assert payload["phase"] == "experiment"
    return run, values


def test_crash_hang_and_malformed_results_are_recorded_and_repaired(agent_env, llm_server):
    full_run(llm_server)
    llm_server.on("ExperimentCode",
                  code("import json\nx = 1 / 0\n"),
                  code("import time\ntime.sleep(60)\n"),
                  code("open('results.json', 'w').write('{\"metrics\": {\"rel_error\": ')\n"),
                  code(EXPERIMENT_CODE))
    run, values = run_to_experiment_checkpoint(max_attempts=4, attempt_timeout=4)
    atts = values["attempts"]
    assert [a["status"] for a in atts] == ["failed", "failed", "failed", "ok"]
    assert "exit code 1" in atts[0]["reason"] and "ZeroDivisionError" in atts[0]["error_tail"]
    assert atts[1]["sandbox_reason"] == "timeout"
    assert "malformed" in atts[2]["reason"]
    assert values["best_attempt"] == 4 and values["results"]["metrics"]["compression"] == pytest.approx(4.0)
    code_prompts = [r["messages"][-1]["content"] for r in llm_server.requests if r["key"] == "ExperimentCode"]
    assert "ZeroDivisionError" in code_prompts[1]  # the traceback went back to the model
    assert "timeout" in code_prompts[2]
    log = [c.message for c in git.Repo(run.repo_dir).iter_commits()]
    for n, status in ((1, "failed"), (2, "failed"), (3, "failed"), (4, "ok")):
        assert any(m.startswith(f"attempt {n}: {status}") for m in log), log
    assert (run.repo_dir / "experiments" / "attempt-1" / "main.py").read_text().startswith("import json")


def test_numbers_written_into_the_code_are_rejected(agent_env, llm_server):
    full_run(llm_server)
    baked = "import json\njson.dump({'metrics': {'rel_error': 0.0123, 'compression': 4.0}}, open('results.json','w'))\n"
    llm_server.on("ExperimentCode", code(baked))
    run, values = run_to_experiment_checkpoint(max_attempts=1)
    (a,) = values["attempts"]
    assert a["status"] == "failed" and "measured, not written in" in a["reason"]
    assert values["best_attempt"] is None and values["results"] == {}


def test_best_of_n_is_ranked_by_the_measured_primary_metric(agent_env, llm_server):
    full_run(llm_server)
    wide = EXPERIMENT_CODE.replace("T, d, sink, window = 64, 8, 4, 12", "T, d, sink, window = 64, 8, 4, 28")
    assert wide != EXPERIMENT_CODE
    llm_server.on("ExperimentCode", code(EXPERIMENT_CODE), code(wide))
    run, values = run_to_experiment_checkpoint(max_attempts=3, best_of=2)
    ok = [a for a in values["attempts"] if a["status"] == "ok"]
    assert len(ok) == 2 and len(values["attempts"]) == 2
    assert ok[0]["metrics"]["rel_error"] != ok[1]["metrics"]["rel_error"]
    best = min(ok, key=lambda a: a["metrics"]["rel_error"])  # rel_error: lower is better
    assert values["best_attempt"] == best["n"]
    assert values["results"]["metrics"]["rel_error"] == best["metrics"]["rel_error"]
