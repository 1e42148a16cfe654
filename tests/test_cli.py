"""CLI surfaces that do not need a whole run: doctor, runs/status on unknown ids, $EDITOR plan edits."""

from __future__ import annotations

import pytest

from tests.fakes.scripts import full_run
from tests.spine_helpers import cli, only_run, status


def test_doctor_reports_endpoint_model_sandbox_latex_and_torch(agent_env):
    out = cli(["doctor"], agent_env)
    assert out.returncode == 0, out.stderr
    text = out.stdout
    assert "serves scripted-model" in text
    for name in ("LLM endpoint", "sandbox: bwrap", "sandbox: docker", "LaTeX toolchain", "docker engine", "torch"):
        assert name in text


def test_doctor_says_how_to_fix_an_unreachable_endpoint(agent_env):
    out = cli(["doctor", "--base-url", "http://127.0.0.1:9/v1"], agent_env)
    assert "cannot reach http://127.0.0.1:9/v1" in out.stdout and "OPENAI_BASE_URL" in out.stdout


def test_unknown_run_id_is_a_clear_error(agent_env):
    out = cli(["status", "no-such-run"], agent_env)
    assert out.returncode == 2 and "no such run" in out.stderr


@pytest.mark.slow
def test_plan_edited_in_editor_is_validated_and_used(agent_env, llm_server):
    full_run(llm_server)
    assert cli(["run", "Sink tokens at 4x?", "--headless", "--checkpoints", "plan"], agent_env).returncode == 0
    run = only_run(agent_env)
    env = {**agent_env, "EDITOR": "sed -i s/dense\\ attention/full-cache\\ baseline/"}
    out = cli(["resume", run.name], env, input="edit\n")
    assert out.returncode == 0, out.stdout + out.stderr
    assert status(agent_env, run)["status"] == "done"
    code_req = [r for r in llm_server.requests if r["key"] == "ExperimentCode"][0]
    assert "full-cache baseline" in code_req["messages"][-1]["content"]


@pytest.mark.slow
def test_review_command_revises_shows_the_diff_and_accepts(agent_env, llm_server):
    full_run(llm_server)
    assert cli(["run", "Sink tokens at 4x?", "--headless", "--checkpoints", "report"], agent_env).returncode == 0
    run = only_run(agent_env)
    assert status(agent_env, run)["waiting"]["phase"] == "review"
    out = cli(["review", run.name, "--revise", "Say how many tokens were kept."], agent_env)
    assert out.returncode == 0, out.stdout + out.stderr
    st = status(agent_env, run)
    assert st["revision"] == 2 and st["waiting"]["phase"] == "review"
    assert any("Say how many tokens were kept." in str(r["messages"]) for r in llm_server.requests)
    shown = cli(["review", run.name], agent_env)
    assert "main.pdf" in shown.stdout and "rev" in shown.stdout.lower()
    assert "@@" in shown.stdout or "---" in shown.stdout  # the LaTeX diff between revisions 1 and 2
    out = cli(["review", run.name, "--accept"], agent_env)
    assert out.returncode == 0 and status(agent_env, run)["status"] == "done"
