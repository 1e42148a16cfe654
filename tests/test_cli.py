"""CLI surfaces that do not need a whole run: doctor, runs/status on unknown ids, $EDITOR plan edits;
and the command tree itself: help on every parameter, docs/cli.md current, a fast start."""

from __future__ import annotations

import subprocess
import sys

import pytest
import typer

from agentlab.cli import COMMANDS, app
from agentlab.cli import docs as cli_docs
from tests.spine_helpers import ROOT, cli, command_tree, lean_settings, only_run, status


@pytest.fixture
def lean_env(agent_env, llm_server, tmp_path, monkeypatch):
    return lean_settings(agent_env, llm_server, tmp_path, monkeypatch)  # these tests are about the CLI


def _tree() -> dict[str, object]:
    return command_tree(app)


def test_every_command_option_and_argument_has_help():
    tree = _tree()
    assert {"agentlab run", "agentlab resume", "agentlab review", "agentlab sandbox run", "agentlab eval coc",
            "agentlab batch"} <= set(tree)
    missing = [f"{path}: {'command' if p is None else p.name}" for path, cmd in tree.items()
               for p in [None, *cmd.params] if not (cmd.help if p is None else getattr(p, "help", None))]
    assert not missing, f"no help text: {missing}"


def test_lazy_one_line_help_is_each_commands_own():
    group = typer.main.get_command(app)
    for name, lazy in COMMANDS.items():
        real = group.load(name)
        first = " ".join((real.short_help or real.help or "").split("\n\n")[0].split())
        assert lazy.help == first, f"agentlab.cli.COMMANDS[{name!r}].help differs from the command's help"


def test_docs_cli_md_is_generated_from_help_and_current():
    text = cli_docs.render()
    assert "## `agentlab resume`" in text and "--back" in text and "write_report" in text
    assert "\x1b[" not in text and max(len(line) for line in text.splitlines()) <= cli_docs.WIDTH + 10
    committed = (ROOT / "docs" / "cli.md").read_text()
    assert text == committed, "docs/cli.md is out of date: run `.venv/bin/python -m agentlab.cli.docs`"


def test_help_starts_without_the_graph_llm_or_git():
    code = ("import sys\nfrom agentlab.cli import app\ntry:\n    app(['--help'])\nexcept SystemExit:\n    pass\n"
            "heavy = ('langgraph', 'openai', 'agentlab.llm', 'agentlab.runner', 'git', 'agentlab.batch')\n"
            "print('HEAVY', sorted(m for m in sys.modules if m.split('.')[0] in heavy or m in heavy))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert "Commands" in out.stdout and "batch" in out.stdout, out.stderr
    assert out.stdout.strip().splitlines()[-1] == "HEAVY []"


def test_choices_come_from_the_phase_table_and_registries(agent_env):
    from agentlab.phases import spec
    from agentlab.sandbox.base import backend_names

    out = cli(["run", "x", "--sandbox", "no-such-box"], agent_env)
    assert out.returncode == 2 and all(n in out.stderr for n in ["auto", *backend_names()])
    text = cli_docs.help_text(("resume",))
    assert all(n in " ".join(text.split()) for n in spec.back_choices())
    assert all(n in " ".join(cli_docs.help_text(("run",)).split()) for n in spec.stop_labels())


def test_review_refuses_two_answers_before_touching_the_run(agent_env):
    out = cli(["review", "no-such-run", "--accept", "--reject"], agent_env)
    assert out.returncode == 2 and "choose one of --accept, --revise, --reject" in out.stderr


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
def test_plan_edited_in_editor_is_validated_and_used(lean_env, llm_server):
    agent_env = lean_env
    assert cli(["run", "Sink tokens at 4x?", "--headless", "--checkpoints", "plan"], agent_env).returncode == 0
    run = only_run(agent_env)
    env = {**agent_env, "EDITOR": "sed -i 's/Score context tokens/Rank cached tokens/'"}
    out = cli(["resume", run.name, "--interactive"], env, input="edit\n")
    assert out.returncode == 0, out.stdout + out.stderr
    assert status(agent_env, run)["status"] == "done"
    code_req = [r for r in llm_server.requests if r["key"] == "text"][0]  # the prompt for method.py
    assert "Rank cached tokens by recency" in code_req["messages"][-1]["content"]
    assert "Score context tokens" not in code_req["messages"][-1]["content"]


@pytest.mark.slow
def test_review_command_revises_shows_the_diff_and_accepts(lean_env, llm_server):
    agent_env = lean_env
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
