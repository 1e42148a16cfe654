"""How a person's answer at a checkpoint maps onto the graph's next step."""

from __future__ import annotations

import pytest

from agentlab.phases.checkpoint import BadDecision, apply_decision, validate_decision

PLAN = {"title": "t", "hypothesis": "h", "method": "m", "metrics": [{"name": "ppl", "direction": "lower"}]}
AT_PLAN = {"kind": "checkpoint", "phase": "plan"}


def test_approve_goes_to_the_next_phase():
    cmd = apply_decision({"phase": "plan"}, {"action": "approve"}, stopped=False)
    assert cmd.goto == "experiment"


def test_feedback_is_queued_for_the_next_phase():
    cmd = apply_decision({"phase": "interpret"}, {"action": "feedback", "text": "use 4x"}, stopped=False)
    assert cmd.goto == "write_report" and cmd.update["feedback"] == {"write_report": ["use 4x"]}


def test_feedback_at_the_plan_checkpoint_replans_with_it():
    cmd = apply_decision({"phase": "plan"}, {"action": "feedback", "text": "use 4x"}, stopped=False)
    assert cmd.goto == "plan" and cmd.update["feedback"] == {"plan": ["use 4x"]}


def test_back_returns_with_feedback_for_that_phase():
    d = validate_decision({"action": "back", "phase": "plan", "text": "cheaper baseline"},
                          {"kind": "checkpoint", "phase": "interpret"})
    cmd = apply_decision({"phase": "interpret"}, d, stopped=False)
    assert cmd.goto == "plan" and cmd.update["feedback"]["plan"] == ["cheaper baseline"]


def test_back_accepts_checkpoint_names_and_refuses_the_future():
    assert validate_decision({"action": "back", "phase": "literature"}, AT_PLAN)["phase"] == "literature_review"
    with pytest.raises(BadDecision, match="comes after"):
        validate_decision({"action": "back", "phase": "review"}, AT_PLAN)
    with pytest.raises(BadDecision, match="unknown phase"):
        validate_decision({"action": "back", "phase": "nowhere"}, AT_PLAN)


def test_edit_validates_the_plan():
    d = validate_decision({"action": "edit", "plan": PLAN}, AT_PLAN)
    assert apply_decision({"phase": "plan"}, d, stopped=False).update["plan"]["metrics"][0]["name"] == "ppl"
    with pytest.raises(BadDecision, match="edited plan is invalid"):
        validate_decision({"action": "edit", "plan": {"title": "no metrics"}}, AT_PLAN)
    with pytest.raises(BadDecision, match="plan checkpoint"):
        validate_decision({"action": "edit", "plan": PLAN}, {"kind": "checkpoint", "phase": "interpret"})


def test_retry_after_a_stop_reruns_the_stopped_phase():
    state = {"phase": "plan", "stop": {"kind": "budget", "phase": "experiment", "message": "m"}}
    cmd = apply_decision(state, {"action": "retry"}, stopped=True)
    assert cmd.goto == "experiment" and cmd.update["stop"] is None


def test_final_checkpoint_approve_ends_and_feedback_revises():
    assert apply_decision({"phase": "review"}, {"action": "approve"}, stopped=False).goto == "__end__"
    cmd = apply_decision({"phase": "review"}, {"action": "feedback", "text": "shorter"}, stopped=False)
    assert cmd.goto == "write_report" and cmd.update["feedback"]["write_report"] == ["shorter"]
    assert apply_decision({"phase": "review"}, {"action": "reject"}, stopped=False).update["rejected"] is True


def test_a_report_with_open_integrity_problems_cannot_be_accepted():
    from types import SimpleNamespace

    from agentlab.config import Settings
    from agentlab.phases.checkpoint import checkpoint_payload

    state = {"phase": "review", "revision": 2, "reviews": [{"overall": 9, "decision": "revise"}],
             "report": {"pdf": "report/main.pdf", "integrity": {"open": ["caption: the number 8 in the PDF"]}}}
    ctx = SimpleNamespace(settings=Settings(checkpoints=()))  # no stop asked for: it stops anyway
    payload = checkpoint_payload(state, ctx)
    assert payload and "cannot be accepted" in payload["message"] and "approve" not in payload["options"]
    with pytest.raises(BadDecision, match=r"cannot be accepted: 1 integrity problem.*the number 8"):
        validate_decision({"action": "approve"}, payload)
    assert validate_decision({"action": "reject"}, payload)["action"] == "reject"
    assert validate_decision({"action": "back", "phase": "write_report", "text": "fix"}, payload)
    clean = {**state, "report": {"pdf": "report/main.pdf", "integrity": {"open": []}}}
    assert checkpoint_payload(clean, ctx) is None


def test_headless_approve_never_loops_on_a_report_that_cannot_be_accepted(tmp_path):
    """`--on-checkpoint approve` answers approve only where it is offered; a blocked report stops the run."""
    from types import SimpleNamespace

    from agentlab.config import Settings
    from agentlab.runner import _loop
    from agentlab.runs import RunDir

    blocked = {"kind": "checkpoint", "phase": "review", "message": "the report cannot be accepted: ...",
               "options": ["back <phase>", "reject"]}
    fed: list = []

    class Graph:  # one interrupt, then the same one again: what the graph shows while the report stays blocked
        def stream(self, inp, config, **kw):
            fed.append(inp)
            return iter(())

        def get_state(self, config):
            return SimpleNamespace(interrupts=[SimpleNamespace(value=blocked)], values={})

    prog = SimpleNamespace(pause=lambda: None, resume=lambda: None)
    run = RunDir.create(tmp_path, "blocked report")
    out = _loop(run, Settings(on_checkpoint="approve"), Graph(), None, None, prog, None)
    assert out.status == "stopped" and out.exit_code == 3 and out.payload is blocked and len(fed) == 1
