"""End to end through the real CLI, in fresh processes, against the scripted LLM and fake arXiv."""

from __future__ import annotations

import os
import signal
import time

import git
import pytest

from tests.fakes.openai_server import Reply
from tests.fakes.scripts import METHOD, PLAN, fenced
from tests.fakes.scripts import full_run as _full_run
from tests.spine_helpers import cli, cli_popen, ledger_rows, only_run, status

pytestmark = pytest.mark.slow
IDEA = "Does sink+window KV eviction keep perplexity within 5% at 4x compression on a small Llama?"

# These tests are about the spine (checkpoints, resume, budgets, errors), not the experiment: every run uses the
# smallest staged experiment (one draft, one seed, one item; a plan without ablations, so that stage is skipped).
LEAN = """[agentlab]
drafts = 1
seeds = 1
harness_items = 1

[agentlab.stage_budgets.implement]
nodes = 1
"""
LEAN_PLAN = {**PLAN, "ablations": []}


@pytest.fixture(autouse=True)
def _lean(agent_env, tmp_path, monkeypatch):
    """The lean settings as the run's TOML file, for the CLI processes (agent_env) and this one."""
    cfg = tmp_path / "lean.toml"
    cfg.write_text(LEAN)
    agent_env["AGENTLAB_CONFIG"] = str(cfg)
    monkeypatch.setenv("AGENTLAB_CONFIG", str(cfg))


def full_run(srv, **overrides):
    return _full_run(srv, **{"Plan": LEAN_PLAN, **overrides})


def commits(run) -> list[str]:
    return [c.message for c in git.Repo(run / "repo").iter_commits()]


def test_headless_run_ends_in_pdf_git_history_and_a_ledger_matching_the_server(agent_env, llm_server):
    full_run(llm_server)
    out = cli(["run", IDEA, "--headless", "--on-checkpoint", "approve", "--max-papers", "3"], agent_env)
    assert out.returncode == 0, out.stdout + out.stderr
    run = only_run(agent_env)
    st = status(agent_env, run)
    assert st["status"] == "done" and st["phase"] == "review"
    pdf = run / "repo" / st["report"]
    assert pdf.exists() and pdf.read_bytes()[:4] == b"%PDF"
    exp = st["experiment"]
    assert exp["done"] and list(exp["stages"]) == ["baselines", "implement", "sweep", "ablations", "seeds"]
    assert [s["status"] for s in exp["stages"].values()] == ["ok", "ok", "ok", "skipped", "ok"], exp
    log = commits(run)
    assert any(m.startswith("implement-1 (draft): ok score ") for m in log), log
    assert any(m.startswith("seeds-1 (seeds): ok") for m in log), log
    assert any("report" in m.lower() for m in log), log
    rows = ledger_rows(run)
    pt, ct = llm_server.usage_totals()
    assert (sum(r["prompt_tokens"] for r in rows), sum(r["completion_tokens"] for r in rows)) == (pt, ct)
    assert {"literature_review", "plan", "experiment", "interpret", "write_report", "review"} <= {r["phase"] for r in rows}


def test_every_checkpoint_parks_and_resumes_from_a_new_process(agent_env, llm_server):
    full_run(llm_server)
    out = cli(["run", IDEA, "--headless", "--checkpoints", "all", "--max-papers", "2"], agent_env)
    assert out.returncode == 0 and "agentlab resume" in out.stdout, out.stdout + out.stderr
    run = only_run(agent_env)
    seen = []
    for _ in range(8):
        st = status(agent_env, run)
        if st["status"] == "done":
            break
        assert st["status"] == "parked" and st["waiting"]["kind"] == "checkpoint"
        seen.append(st["waiting"]["phase"])
        out = cli(["resume", run.name, "--approve", "--headless"], agent_env)
        assert out.returncode == 0, out.stdout + out.stderr
    assert seen == ["literature_review", "plan", "experiment", "interpret", "review"]
    assert status(agent_env, run)["status"] == "done"


def test_back_to_plan_replans_with_the_feedback_in_the_prompt(agent_env, llm_server):
    full_run(llm_server)
    assert cli(["run", IDEA, "--headless", "--checkpoints", "interpret"], agent_env).returncode == 0
    run = only_run(agent_env)
    assert status(agent_env, run)["waiting"]["phase"] == "interpret"
    out = cli(["resume", run.name, "--back", "plan", "--feedback", "use a 32-token window instead", "--headless"],
              agent_env)
    assert out.returncode == 0, out.stdout + out.stderr
    plans = [r for r in llm_server.requests if r["key"] == "Plan"]
    assert len(plans) == 2
    assert "use a 32-token window instead" in plans[1]["messages"][-1]["content"]
    assert "use a 32-token window instead" not in plans[0]["messages"][-1]["content"]
    st = status(agent_env, run)
    assert st["waiting"]["phase"] == "interpret" and st["experiment"]["done"]
    # the experiment ran again, as a second pass next to the first
    assert (run / "repo" / "experiments" / "p2" / "implement-1" / "method.py").read_text() == METHOD
    assert (run / "repo" / "experiments" / "p1" / "implement-1" / "method.py").exists()
    assert llm_server.keys_seen().count("text") == 2 and llm_server.keys_seen().count("BaselineSpec") == 2


def test_kill_9_during_an_experiment_then_resume_completes_without_repaying(agent_env, llm_server):
    # method.py sleeps when the harness imports it in the sandbox: the run is killed inside the implement node
    full_run(llm_server, text=fenced({"method.py": "import time\ntime.sleep(6)\n" + METHOD}))
    proc = cli_popen(["run", IDEA, "--headless", "--on-checkpoint", "approve", "--max-papers", "2"], agent_env)
    deadline = time.time() + 180
    while time.time() < deadline and "text" not in llm_server.keys_seen():
        time.sleep(0.1)
    assert "text" in llm_server.keys_seen(), "the run never asked for method.py"
    time.sleep(2.5)  # the sandboxed harness job of implement-1 is now running
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    run = only_run(agent_env)
    assert status(agent_env, run)["status"] == "interrupted"
    repo = run / "repo" / "experiments" / "p1"
    baselines = repo / "baselines-1" / "results.json"
    assert baselines.exists() and not (repo / "implement-1" / "results.json").exists()  # killed mid-node
    baselines_mtime = baselines.stat().st_mtime_ns
    before = llm_server.keys_seen()
    out = cli(["resume", run.name, "--headless", "--on-checkpoint", "approve"], agent_env)
    assert out.returncode == 0, out.stdout + out.stderr
    assert status(agent_env, run)["status"] == "done"
    after = llm_server.keys_seen()[len(before):]
    assert "Plan" not in after and "BaselineSpec" not in after and "text" not in after  # nothing paid again
    assert llm_server.keys_seen().count("text") == 1 and llm_server.keys_seen().count("BaselineSpec") == 1
    # the finished node was not run again; the killed one ran to the end once
    log = commits(run)
    assert baselines.stat().st_mtime_ns == baselines_mtime
    assert sum(m.startswith("baselines-1 (spec)") for m in log) == 1, log
    assert sum(m.startswith("implement-1 (draft): ok") for m in log) == 1, log
    assert (repo / "implement-1" / "results.json").exists()


def test_empty_idea_is_refused_plainly(agent_env):
    out = cli(["run", "   ", "--headless"], agent_env)
    assert out.returncode == 2 and "idea is empty" in out.stderr


def test_unreachable_endpoint_stops_clearly_and_resumes_once_it_is_back(agent_env, llm_server):
    full_run(llm_server)
    env = {**agent_env, "OPENAI_BASE_URL": "http://127.0.0.1:9/v1"}
    out = cli(["run", IDEA, "--headless", "--on-checkpoint", "approve", "--max-papers", "2"], env)
    assert out.returncode == 3, out.stdout + out.stderr
    assert "cannot reach the LLM endpoint http://127.0.0.1:9/v1" in out.stdout
    run = only_run(agent_env)
    assert status(agent_env, run)["status"] == "stopped"
    out = cli(["resume", run.name, "--headless", "--on-checkpoint", "approve"], agent_env)  # real URL again
    assert out.returncode == 0, out.stdout + out.stderr
    assert status(agent_env, run)["status"] == "done"


def test_malformed_model_output_stops_with_the_reason_and_is_retried(agent_env, llm_server):
    full_run(llm_server)
    llm_server.on("Plan", "no JSON here", '{"title": "t"}', Reply(content='{"title": "t", "hyp', finish_reason="length"))
    out = cli(["run", IDEA, "--headless", "--on-checkpoint", "approve", "--max-papers", "2"], agent_env)
    assert out.returncode == 3
    assert "did not match Plan after 3 tries" in out.stdout
    run = only_run(agent_env)
    assert status(agent_env, run)["waiting"]["phase"] == "plan"
    llm_server.script.pop("Plan")  # the model behaves now: the scripted plan is answered
    full_run(llm_server)
    out = cli(["resume", run.name, "--headless", "--on-checkpoint", "approve"], agent_env)
    assert out.returncode == 0, out.stdout + out.stderr
    assert status(agent_env, run)["status"] == "done"


def test_exhausted_budget_stops_at_a_checkpoint_and_resume_with_a_new_budget_continues(agent_env, llm_server):
    full_run(llm_server)
    out = cli(["run", IDEA, "--headless", "--on-checkpoint", "approve", "--max-papers", "2", "--max-tokens", "1500"],
              agent_env)
    assert out.returncode == 3 and "tokens budget exhausted" in out.stdout, out.stdout + out.stderr
    run = only_run(agent_env)
    st = status(agent_env, run)
    assert st["waiting"]["kind"] == "budget"
    out = cli(["resume", run.name, "--headless", "--on-checkpoint", "approve", "--max-tokens", "10000000"], agent_env)
    assert out.returncode == 0, out.stdout + out.stderr
    assert status(agent_env, run)["status"] == "done"


def test_interactive_session_takes_feedback_and_edit_at_the_checkpoints(agent_env, llm_server, tmp_path):
    full_run(llm_server)
    answers = "\n".join([
        "edit",                      # plan checkpoint: no $EDITOR → inline edit, field by field
        "",                          # title (kept)
        "Four sink tokens keep the error small.",  # hypothesis (changed)
        "", "",                      # method, outline (kept)
        "",                          # metrics JSON (kept)
        "feedback report the kept-token count too",  # report checkpoint → revise with the feedback
        "approve",                   # report checkpoint again → done
    ]) + "\n"
    env = {**agent_env, "EDITOR": "", "VISUAL": ""}
    out = cli(["run", IDEA, "--interactive", "--checkpoints", "plan,report", "--max-papers", "2"], env, input=answers)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "checkpoint after plan" in out.stdout
    run = only_run(agent_env)
    st = status(agent_env, run)
    assert st["status"] == "done" and st["revision"] >= 2
    code_req = [r for r in llm_server.requests if r["key"] == "text"][0]  # the prompt for method.py
    assert "Four sink tokens keep the error small." in code_req["messages"][-1]["content"]
    later = [r for r in llm_server.requests if "report the kept-token count too" in str(r["messages"])]
    assert later, "the report feedback must reach the writer"
