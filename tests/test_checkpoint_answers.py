"""Checkpoint answers (issue 16): only the answers a checkpoint offers are taken, at the terminal prompt and
from resume flags; reject is confirmed; feedback at the plan checkpoint re-plans; an unchanged edit changes
nothing; a budget stop is answered by raising a budget; nothing the person copies is split at 80 columns.

The interactive tests drive the real CLI in a pseudo-terminal 80 columns wide (tests/terminal.py) against
the scripted LLM."""

from __future__ import annotations

import json
import re
import shutil
import time

import pytest

from agentlab.cli.prompt import option_lines, parse_answer, wrap_prose
from agentlab.phases.checkpoint import BadDecision, stop_options, validate_decision
from tests.fakes.scripts import PLAN, full_run
from tests.spine_helpers import cli, only_run, status
from tests.terminal import Terminal

LEAN = '[agentlab]\ndrafts = 1\nseeds = 1\nharness_items = 1\n\n[agentlab.stage_budgets.implement]\nnodes = 1\n'
LEAN_PLAN = {**PLAN, "ablations": []}
IDEA = "Sink tokens at 4x?"
AT_PLAN = {"kind": "checkpoint", "phase": "plan", "summary": {"plan": LEAN_PLAN},
           "options": ["approve", "feedback <text>", "back <phase>", "edit"]}
AT_REVIEW = {"kind": "checkpoint", "phase": "review", "summary": {},
             "options": ["approve", "feedback <text>", "back <phase>", "reject"]}
BUDGET_STOP = {"kind": "budget", "phase": "literature_review", "options": stop_options("budget"),
               "message": "tokens budget exhausted: used 40 of 50, and the next call could use up to 900; the call "
                          "was not made. Raise it with `agentlab resume 20261201-195523-sink-tokens-at-4x-and-a-"
                          "long-3746 --max-tokens 1400`",
               "budget": {"tokens": {"used": 40, "limit": 50}, "cost": {"used": 0.0, "limit": None},
                          "minutes": {"used": 0.1, "limit": None}},
               "exceeded": {"which": "tokens", "setting": "max_tokens", "used": 40, "limit": 50, "estimate": 900,
                            "suggested": 1400}}


@pytest.fixture
def lean_env(agent_env, llm_server, tmp_path, monkeypatch):
    cfg = tmp_path / "lean.toml"
    cfg.write_text(LEAN)
    monkeypatch.setenv("AGENTLAB_CONFIG", str(cfg))
    return {**agent_env, "AGENTLAB_CONFIG": str(cfg)}


def lines_of(shown: str) -> list[str]:
    return [ln for ln in shown.splitlines() if ln.strip()]


def wait_for(cond, term: Terminal, timeout: float = 120) -> None:
    end = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < end and term.proc.poll() is None, term.text()[-3000:]
        time.sleep(0.1)


def one_line_each(shown: str, *phrases: str) -> None:
    """Each phrase is on one line of the last panel shown and the answer line(s) under it, and none of those
    lines is wider than the 80-column terminal."""
    shown = shown[shown.rindex("╭"):]
    lines = lines_of(shown)
    assert all(len(ln) <= 80 for ln in lines), [ln for ln in lines if len(ln) > 80]
    for p in phrases:
        assert any(p in ln for ln in lines), f"{p!r} is split across lines:\n{shown}"


# ---- the rules, without a terminal ------------------------------------------------------------------

def test_answers_a_checkpoint_does_not_offer_are_refused_naming_those_it_does():
    with pytest.raises(BadDecision, match=r"reject is not an answer at the plan checkpoint; answer one of: "
                                          r"approve, feedback <text>, back <phase>, edit$"):
        validate_decision({"action": "reject"}, AT_PLAN)
    with pytest.raises(BadDecision, match=r"retry .*not an answer at the review checkpoint.*reject"):
        validate_decision({"action": "retry"}, AT_REVIEW)
    with pytest.raises(BadDecision, match=r"approve is not an answer at this stop \(budget in literature_review\); "
                                          r"answer one of: raise <tokens\|cost\|minutes> N, back <phase>"):
        validate_decision({"action": "approve"}, BUDGET_STOP)
    with pytest.raises(BadDecision, match=r"'ok' is not an answer"):
        validate_decision({"action": "ok"}, AT_PLAN)
    assert validate_decision({"action": "reject"}, AT_REVIEW) == {"action": "reject"}
    assert validate_decision({"action": "retry"}, BUDGET_STOP) == {"action": "retry"}  # resume --max-tokens N


def test_only_the_answers_the_option_line_shows_are_taken():
    assert option_lines(AT_PLAN, 80) == ["answer: [a]pprove | [f]eedback <text> | [b]ack <phase> [text] | [e]dit"]
    for word in ("yes", "y", "ok", "reject", "retry", "r"):
        with pytest.raises(BadDecision, match=r"is not an answer at the plan checkpoint; answer one of: approve"):
            parse_answer(word, AT_PLAN)
    assert parse_answer("a", AT_PLAN) == parse_answer("Approve", AT_PLAN) == {"action": "approve"}
    assert parse_answer("f use a 2x window", AT_PLAN) == {"action": "feedback", "text": "use a 2x window"}
    assert parse_answer("b literature more papers", AT_PLAN) == {"action": "back", "phase": "literature",
                                                                  "text": "more papers"}
    assert option_lines(AT_REVIEW, 80)[0].endswith("| reject")  # no letter: reject is typed out
    with pytest.raises(BadDecision, match="'e' is not an answer at the review checkpoint"):
        parse_answer("e", AT_REVIEW)


def test_raise_is_a_retry_with_the_new_budget_and_is_checked():
    assert parse_answer("raise tokens 5000", BUDGET_STOP) == {"action": "retry", "settings": {"max_tokens": 5000}}
    d = validate_decision(parse_answer("raise tokens 5000 cost $2.5", BUDGET_STOP), BUDGET_STOP)
    assert d == {"action": "retry", "settings": {"max_tokens": 5000, "max_cost": 2.5}}
    with pytest.raises(BadDecision, match=r"would stop the run again: 40 are used and the next call may take up "
                                          r"to 900; raise it to at least 940 \(suggested: 1400\)"):
        validate_decision(parse_answer("raise tokens 500", BUDGET_STOP), BUDGET_STOP)
    for line, msg in [("raise", "e.g. raise tokens 1400"), ("raise tokens", "e.g. raise tokens 1400"),
                      ("raise bananas 3", "unknown budget 'bananas'"), ("raise minutes soon", "'soon' is not a number"),
                      ("retry", "not an answer at this stop"), ("raise tokens 1e400", "not a number")]:
        with pytest.raises(BadDecision, match=re.escape(msg)):
            validate_decision(parse_answer(line, BUDGET_STOP), BUDGET_STOP)
    error_stop = {"kind": "endpoint", "phase": "plan", "message": "down", "options": stop_options("endpoint")}
    assert "retry" in error_stop["options"]
    with pytest.raises(BadDecision, match="raising a budget is an answer to a budget stop"):
        validate_decision({"action": "retry", "settings": {"max_tokens": 9}}, error_stop)


def test_copyable_commands_and_options_are_never_split_inside_a_word():
    width = 76  # inside the panel on an 80-column terminal
    text = wrap_prose(BUDGET_STOP["message"], width)
    words = BUDGET_STOP["message"].split()
    assert all(len(ln) <= width for ln in text.splitlines()) and text.split() == words
    assert option_lines(BUDGET_STOP, 80) == ["answer: raise <tokens|cost|minutes> N | [b]ack <phase> [text]",
                                             "| [f]eedback <text>"]


# ---- through a terminal --------------------------------------------------------------------------------

def _plan_reply(body: dict, schema) -> dict:
    """The plan, or (when the prompt carries the researcher's feedback) a new plan that follows it."""
    if "Also measure a 2x window." in body["messages"][-1]["content"]:
        return {**LEAN_PLAN, "title": "Replanned: sinks and a 2x window",
                "method": "Keep 4 sink tokens and a window twice as long."}
    return LEAN_PLAN


def test_plan_checkpoint_refuses_aliases_replans_on_feedback_and_reasks_one_bad_field(lean_env, llm_server):
    full_run(llm_server, Plan=_plan_reply)
    with Terminal(["run", IDEA, "--checkpoints", "plan", "--max-papers", "1"], lean_env) as term:
        shown = term.expect("your answer")
        one_line_each(shown, "answer: [a]pprove | [f]eedback <text> | [b]ack <phase> [text] | [e]dit")
        for word in ("yes", "ok", "y", "reject"):
            term.send(word)
            refused = term.expect("your answer")
            assert "is not an answer at the plan checkpoint; answer one of: approve, feedback <text>, back " \
                   "<phase>, edit" in " ".join(refused.split()), refused
        term.send("edit")  # no $EDITOR: inline; Enter keeps every field
        term.expect("Enter keeps a field")
        for _ in range(5):
            term.send("")
        assert "no change; still at the plan checkpoint." in term.expect("your answer")
        assert len([r for r in llm_server.requests if r["key"] == "Plan"]) == 1

        term.send("feedback Also measure a 2x window.")
        again = term.expect("your answer")
        assert "checkpoint after plan" in again and "Replanned: sinks and a 2x window" in again
        plans = [r for r in llm_server.requests if r["key"] == "Plan"]
        assert len(plans) == 2 and "Also measure a 2x window." not in str(plans[0]["messages"])
        assert "Also measure a 2x window." in plans[1]["messages"][-1]["content"]

        term.send("e")  # one bad field: only that one is asked again, the others keep what was typed
        for field, answer in [("title", ""), ("hypothesis", "Sinks and a 2x window keep perplexity within 5%."),
                              ("method", ""), ("experiment_outline", ""),
                              ("metrics as JSON", '[{"name": "ppl", "direction": "sideways"}]')]:
            term.expect(field)
            term.send(answer)
        term.expect("type metrics again")
        term.send('[{"name": "perplexity", "direction": "lower"}]')
        wait_for(lambda: any(r["key"] == "FamilyChoice" for r in llm_server.requests), term)
        reasked = term.text()[term.pos:].split("AgentLab run")[0]  # up to the progress display of the experiment
        assert reasked.count("metrics as JSON") == 1 and "hypothesis" not in reasked and "title" not in reasked
        term.interrupt()
        assert term.wait() in (0, 130)
    family = next(r for r in llm_server.requests if r["key"] == "FamilyChoice")["messages"][-1]["content"]
    assert "Sinks and a 2x window keep perplexity within 5%." in family  # the edited field
    assert "Keep 4 sink tokens and a window twice as long." in family  # the replanned method, kept
    assert "perplexity (lower is better)" in family


def test_budget_stop_is_answered_by_raising_a_budget(lean_env, llm_server):
    full_run(llm_server, Plan=LEAN_PLAN)
    with Terminal(["run", IDEA, "--checkpoints", "plan", "--max-papers", "1", "--max-tokens", "50"], lean_env) as t:
        shown = t.expect("your answer")
        run = only_run(lean_env)
        panel = shown[shown.rindex("╭"):]
        assert "run stopped in literature_review (budget)" in panel
        one_line_each(panel, "answer: raise <tokens|cost|minutes> N | [b]ack <phase> [text]", "| [f]eedback <text>",
                      f"`agentlab resume {run.name} --max-tokens ")
        table = next(ln for ln in lines_of(panel) if re.match(r"│ tokens +\d", ln))
        assert table.split()[1:4] == ["tokens", "0", "50"] and "the next call would pass it" in table
        assert re.search(r"answer `raise tokens \d+`", panel)
        t.send("retry")
        assert "'retry' is not an answer at this stop" in t.expect("your answer")
        t.send("raise tokens 10")
        assert "would stop the run again" in t.expect("your answer")
        t.send("raise tokens 5000000")
        t.expect("checkpoint after plan", timeout=120)
        t.expect("your answer")
        t.interrupt()
        assert t.wait() == 130
    assert json.loads((run / "settings.json").read_text())["max_tokens"] == 5000000
    out = cli(["resume", run.name, "--reject"], lean_env)  # a resume flag the plan checkpoint does not offer
    assert out.returncode == 2 and "reject is not an answer at the plan checkpoint" in out.stderr, out.stderr
    assert "approve, feedback <text>, back <phase>, edit" in " ".join(out.stderr.split())
    out = cli(["review", run.name, "--revise", "shorter"], lean_env)
    assert out.returncode == 2 and "not waiting at the review checkpoint (it waits at the plan checkpoint)" in \
        " ".join(out.stderr.split()), out.stderr
    assert status(lean_env, run)["waiting"]["phase"] == "plan"


# ---- at the review checkpoint (one run, parked there once, copied for each test) -----------------------

@pytest.fixture(scope="module")
def at_review(tmp_path_factory):
    """(the environment, a run parked at the review checkpoint)."""
    from tests.fakes.arxiv_server import FakeArxiv
    from tests.fakes.openai_server import ScriptedLLM

    tmp = tmp_path_factory.mktemp("review")
    (tmp / "lean.toml").write_text(LEAN)
    with ScriptedLLM() as srv, FakeArxiv() as arxiv:
        full_run(srv, Plan=LEAN_PLAN)
        env = {"OPENAI_BASE_URL": srv.base_url, "OPENAI_API_KEY": "sk-test-not-secret",
               "AGENTLAB_MODEL": "scripted-model", "AGENTLAB_ARXIV_URL": arxiv.url, "AGENTLAB_ARXIV_DELAY": "0",
               "AGENTLAB_RUNS_DIR": str(tmp / "runs"), "AGENTLAB_BACKOFF_BASE": "0.01",
               "AGENTLAB_CACHE_DIR": str(tmp / "cache"), "AGENTLAB_EXPERIMENT_MODEL": "tiny-llama",
               "AGENTLAB_CONFIG": str(tmp / "lean.toml")}
        out = cli(["run", IDEA, "--headless", "--checkpoints", "review", "--max-papers", "1"], env, cwd=tmp)
        assert out.returncode == 0, out.stdout + out.stderr
        yield env, only_run(env)


@pytest.fixture
def review_run(at_review, tmp_path):
    env, run = at_review
    runs = tmp_path / "runs"
    shutil.copytree(run, runs / run.name)
    return {**env, "AGENTLAB_RUNS_DIR": str(runs)}, runs / run.name


@pytest.mark.slow
def test_reject_is_confirmed_and_says_what_happened(review_run):
    env, run = review_run
    with Terminal(["resume", run.name, "--interactive"], env) as term:  # it was started headless
        shown = term.expect("your answer")
        one_line_each(shown, "answer: [a]pprove | [f]eedback <text> | [b]ack <phase> [text] | reject")
        term.send("reject")
        term.expect("reject ends the run without accepting the report; type yes to confirm")
        term.send("no")
        assert "not rejected; still at the review checkpoint." in term.expect("your answer")
        term.send("reject")
        term.expect("type yes to confirm")
        term.send("yes")
        term.expect("rejected: the run ends here; the report is not accepted.")
        term.expect(f"Run {run.name} ended: the report was rejected.")
        assert term.wait() == 0
    assert status(env, run)["status"] == "rejected"


@pytest.mark.slow
def test_review_answers_on_a_finished_run_are_refused(review_run):
    env, run = review_run
    assert cli(["review", run.name, "--accept"], env).returncode == 0
    for flags in (["--revise", "Say how many tokens were kept."], ["--reject"], ["--accept"]):
        out = cli(["review", run.name, *flags], env)
        assert out.returncode == 2, out.stdout + out.stderr
        assert f"run {run.name} is finished (the report was accepted): {flags[0]} answers a run waiting at its " \
               "review checkpoint, so nothing changed" in " ".join(out.stderr.split())
    assert status(env, run)["status"] == "done"
