"""Settings on `run` and `resume` through the real CLI: every source reaches a resumed run (saved < agentlab.toml <
environment < --set < flags, each change logged), every choice is checked before the first LLM call (with the
nearest valid name), no prompt without a terminal, one answer per resume, --edit-plan errors and partial plans,
and the commands a stop prints stay whole in an 80-column terminal."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.fakes.scripts import PLAN, full_run
from tests.spine_helpers import ROOT, cli, only_run, status

IDEA = "Does sink+window KV eviction keep perplexity within 5% at 4x?"
LIT = ["--checkpoints", "literature,plan", "--max-papers", "1"]


def cli80(args: list[str], env: dict) -> subprocess.CompletedProcess:
    """The CLI as an 80-column terminal would run it, stdin not a terminal."""
    full = {**os.environ, **env, "PYTHONPATH": str(ROOT), "COLUMNS": "80"}
    return subprocess.run([sys.executable, "-m", "agentlab.cli", *args], env=full, capture_output=True, text=True,
                          timeout=240, stdin=subprocess.DEVNULL)


def events(run: Path) -> list[dict]:
    p = run / "logs" / "events.jsonl"
    return [json.loads(line) for line in p.read_text().splitlines()] if p.exists() else []


def saved(run: Path) -> dict:
    return json.loads((run / "settings.json").read_text())


# ---- 2. a wrong choice is refused before anything runs ----------------------------------------------------

@pytest.mark.parametrize("how,expected", [
    ("set:sandbox=bwarp", "unknown sandbox 'bwarp' (did you mean 'bwrap'?); choose one of: auto, bwrap"),
    ("env:AGENTLAB_SANDBOX=podman", "unknown sandbox 'podman'; choose one of: auto, bwrap"),
    ("toml:template = \"artcle\"", "unknown report template 'artcle' (did you mean 'article'?)"),
    ("set:retriever=bm52", "unknown retriever 'bm52' (did you mean 'bm25'?)"),
    ("env:AGENTLAB_STRUCTURED_MODE=json_schme", "unknown structured_mode 'json_schme' (did you mean 'json_schema'?)"),
    ("set:api_doc_mode=compakt", "unknown api_doc_mode 'compakt' (did you mean 'compact'?)"),
    ("env:AGENTLAB_EXPERIMENT_MODEL=smollm", "unknown experiment_model 'smollm' (did you mean 'smollm2'?)"),
    ("set:sandboxx=bwrap", "unknown setting 'sandboxx' (did you mean 'sandbox'?)"),
    ("idea:short", "the idea must be a real research question (10 characters or more)"),
])
def test_a_wrong_choice_is_refused_before_any_llm_call(agent_env, llm_server, tmp_path, how, expected):
    kind, _, what = how.partition(":")
    args, env = ["run", IDEA, "--headless"], dict(agent_env)
    if kind == "set":
        args += ["--set", what]
    elif kind == "env":
        env.update([what.split("=", 1)])
    elif kind == "toml":
        (tmp_path / "agentlab.toml").write_text(f"[agentlab]\n{what}\n")
    else:
        args[1] = what
    out = cli(args, env)
    assert out.returncode == 2, out.stdout + out.stderr
    assert expected in " ".join(out.stderr.split())
    assert llm_server.requests == [] and not Path(agent_env["AGENTLAB_RUNS_DIR"]).exists()


# ---- 1. resume takes agentlab.toml, the environment and --set; the change is logged -----------------------

@pytest.mark.parametrize("source", ["toml", "env", "set"])
def test_a_run_stopped_by_a_bad_setting_is_fixed_on_resume_by_each_source(agent_env, llm_server, tmp_path, source):
    full_run(llm_server, Plan=PLAN)
    toml = tmp_path / "agentlab.toml"
    env = dict(agent_env)
    if source == "toml":  # the file names the model (no AGENTLAB_MODEL): fix the file
        env["AGENTLAB_MODEL"] = ""
        toml.write_text('[agentlab]\nmodel = "no-such-model"\n')
        start = []
    elif source == "env":  # the flag set it at the start; the environment fixes it on resume (saved < env)
        start = ["--set", "model=no-such-model"]
    else:  # the environment is still wrong on resume; --set beats it
        env["AGENTLAB_MODEL"] = "no-such-model"
        start = []
    out = cli(["run", IDEA, "--headless", *LIT, *start], env)
    assert out.returncode == 3 and "no-such-model" in out.stdout, out.stdout + out.stderr
    run = only_run(agent_env)
    assert saved(run)["model"] == "no-such-model" and status(env, run)["status"] == "stopped"
    fix: list[str] = []
    if source == "toml":
        toml.write_text('[agentlab]\nmodel = "scripted-model"\n')
        label = "agentlab.toml"  # the default file, in the working directory
    elif source == "env":
        env["AGENTLAB_MODEL"] = "scripted-model"
        label = "env AGENTLAB_MODEL"
    else:
        fix, label = ["--set", "model=scripted-model"], "--set"
    out = cli(["resume", run.name, *fix], env)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "stdin is not a terminal" not in out.stderr  # the run was started --headless: resume keeps that mode
    assert f"setting changed: model: 'no-such-model' -> 'scripted-model' ({label})" in out.stdout
    assert saved(run)["model"] == "scripted-model"
    assert [(e["setting"], e["old"], e["new"], e["source"]) for e in events(run) if e["event"] == "settings"] == [
        ("model", "no-such-model", "scripted-model", label)]
    assert status(env, run)["waiting"]["phase"] == "literature_review"  # it went on to the next checkpoint


# ---- 3, 4, 5, 6 and a bad saved value, on one run without a terminal -----------------------------------------

def test_without_a_terminal_nobody_is_prompted_and_resume_answers_are_checked(agent_env, llm_server, tmp_path):
    full_run(llm_server, Plan=PLAN)
    out = cli80(["run", IDEA, *LIT], agent_env)  # no --headless, stdin is not a terminal
    assert out.returncode == 0, out.stdout + out.stderr
    assert out.stderr.count("stdin is not a terminal") == 1 and "Aborted" not in out.stdout + out.stderr
    run = only_run(agent_env)
    sid = run.name[:15]  # commands to copy name the run by its creation time: short enough for 80 columns
    assert status(agent_env, run)["waiting"]["phase"] == "literature_review"
    for cmd in (f"agentlab resume {sid} --approve", f'agentlab resume {sid} --feedback "..."'):
        assert any(line.strip() == cmd for line in out.stdout.splitlines()), out.stdout  # whole, on its own line

    # 4. two answers at once are refused, naming both; --back PHASE --feedback TEXT is one answer
    for pair, names in ((["--approve", "--reject"], "--approve and --reject"),
                        (["--approve", "--back", "plan"], "--approve and --back"),
                        (["--reject", "--feedback", "x"], "--reject and --feedback"),
                        (["--edit-plan", "p.yaml", "--feedback", "x"], "--edit-plan and --feedback")):
        bad = cli(["resume", run.name, *pair], agent_env)
        assert bad.returncode == 2 and names in bad.stderr and "cannot be combined" in bad.stderr, bad.stderr
    bad = cli(["resume", run.name, "--back", "review", "--feedback", "x"], agent_env)  # offered? the checkpoint says
    assert bad.returncode == 2 and "cannot be combined" not in bad.stderr and "Traceback" not in bad.stderr
    assert "still waits at literature_review" in bad.stderr
    (tmp_path / "partial.yaml").write_text("hypothesis: Four sink tokens keep the error small.\n")
    bad = cli(["resume", run.name, "--edit-plan", str(tmp_path / "partial.yaml")], agent_env)
    assert bad.returncode == 2 and "edit applies to the plan" in bad.stderr and "Traceback" not in bad.stderr
    assert status(agent_env, run)["waiting"]["phase"] == "literature_review"

    # a bad value saved in an old run: refused before any call, fixed by resume --set
    data = saved(run)
    (run / "settings.json").write_text(json.dumps({**data, "sandbox": "bwarp"}))
    before = len(llm_server.requests)
    bad = cli(["resume", run.name, "--approve"], agent_env)
    assert bad.returncode == 2 and "unknown sandbox 'bwarp' (did you mean 'bwrap'?)" in bad.stderr
    assert len(llm_server.requests) == before and saved(run)["sandbox"] == "bwarp"
    out = cli80(["resume", run.name, "--approve", "--set", "sandbox=auto"], agent_env)  # still no terminal
    assert out.returncode == 0, out.stdout + out.stderr
    assert "Aborted" not in out.stdout + out.stderr and "stdin is not a terminal" in out.stderr
    assert "setting changed: sandbox: 'bwarp' -> 'auto' (--set)" in out.stdout and saved(run)["sandbox"] == "auto"
    assert status(agent_env, run)["waiting"]["phase"] == "plan"
    lines = [line.strip() for line in out.stdout.splitlines()]
    assert f"agentlab plan {sid} --out plan.yaml" in lines  # 5. the park message says how to edit the plan
    assert f"agentlab resume {sid} --edit-plan plan.yaml" in lines

    # 5. agentlab plan writes the plan out; --edit-plan errors are clear; a partial plan is merged and validated
    shown = cli(["plan", run.name, "--out", str(tmp_path / "plan.yaml")], agent_env)
    assert shown.returncode == 0, shown.stderr
    assert yaml.safe_load((tmp_path / "plan.yaml").read_text())["title"] == PLAN["title"]
    (tmp_path / "bad.yaml").write_text("title: ok\nmetrics: [unclosed\n")
    (tmp_path / "typo.yaml").write_text("hypothesys: x\n")
    (tmp_path / "wrong.yaml").write_text("metrics:\n  - name: ppl\n    direction: sideways\n")
    for f, msg in (("missing.yaml", "no such file"), ("bad.yaml", "bad.yaml:3:1: invalid YAML"),
                   ("typo.yaml", "unknown plan field 'hypothesys' (did you mean 'hypothesis'?)"),
                   ("wrong.yaml", "field metrics.0.direction")):
        bad = cli(["resume", run.name, "--edit-plan", str(tmp_path / f)], agent_env)
        assert bad.returncode == 2 and msg in bad.stderr and "Traceback" not in bad.stderr, (f, bad.stderr)
    out = cli(["resume", run.name, "--edit-plan", str(tmp_path / "partial.yaml"), "--max-tokens", "1"], agent_env)
    assert out.returncode == 3 and "budget" in out.stdout, out.stdout + out.stderr  # stops at once in experiment
    plan = yaml.safe_load(cli(["plan", run.name], agent_env).stdout)
    assert plan["hypothesis"] == "Four sink tokens keep the error small."
    assert plan["title"] == PLAN["title"] and plan["metrics"][0]["name"] == "ppl"  # the rest kept
    lines = [line.strip() for line in cli80(["resume", run.name, "--max-tokens", "1"], agent_env).stdout.splitlines()]
    raise_it = [line for line in lines if line.startswith(f"agentlab resume {sid} --max-tokens ")]
    assert raise_it and int(raise_it[0].split()[-1]) > 1, lines  # 6. whole at 80 columns, with a limit that goes on


# ---- 7. a decision may carry settings: validated, saved, logged, a new budget, the phase retried ------------

def test_a_decision_with_settings_raises_the_budget_and_retries(agent_env, llm_server):
    from rich.console import Console

    from agentlab.config import load_settings
    from agentlab.runner import RunnerError, create_run, resume_run, start_run
    from agentlab.runs import RunDir

    full_run(llm_server, Plan=PLAN)
    settings = load_settings(None, {"max_tokens": 50, "checkpoints": "literature", "max_papers": 1})
    run = create_run(settings, IDEA)
    con = Console(file=open(os.devnull, "w"))
    out = start_run(run, settings, IDEA, con)
    assert out.status == "stopped" and out.payload["kind"] == "budget"
    with pytest.raises(RunnerError, match="unknown sandbox 'bwarp'"):
        resume_run(run, {"action": "retry", "settings": {"sandbox": "bwarp"}}, console=con)
    assert saved(run.path)["max_tokens"] == 50
    out = resume_run(RunDir(run.path), {"action": "retry", "settings": {"max_tokens": 10**8}}, console=con)
    assert out.status == "parked" and out.payload["phase"] == "literature_review"
    assert saved(run.path)["max_tokens"] == 10**8
    assert [(e["setting"], e["old"], e["new"], e["source"]) for e in events(run.path)] == [
        ("max_tokens", 50, 10**8, "answer")]

    # the same answer from an asker (the interactive prompt) in the middle of a run; a bad one is asked again
    llm_server.requests.clear()
    run2 = create_run(settings, IDEA + " again")
    answers = [{"action": "retry", "settings": {"max_tokens": "lots"}},
               {"action": "retry", "settings": {"max_tokens": 10**8}}]
    asked: list[dict] = []

    def asker(payload: dict) -> dict:
        asked.append(payload)
        if not answers:  # the literature checkpoint after the retried phase: the person leaves (Ctrl-C)
            raise KeyboardInterrupt
        return answers.pop(0)

    out = start_run(run2, settings, IDEA + " again", con, asker=asker)
    assert out.status == "interrupted" and [p["kind"] for p in asked] == ["budget", "budget", "checkpoint"]
    assert saved(run2.path)["max_tokens"] == 10**8
    assert [e["new"] for e in events(run2.path)] == [10**8]
