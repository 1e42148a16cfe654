"""The staged experiment through the real graph, sandbox and harness (tiny Llama): baselines, implement
(drafts, debug, improve), sweep, ablations, seeds; failures recorded with their reasons; a stage with no
valid node stops the run before any paper."""

from __future__ import annotations

import io
import json
from pathlib import Path

import git
import pytest
from rich.console import Console

from agentlab.config import load_settings
from agentlab.runner import drive, pending_interrupt
from agentlab.runs import RunDir
from tests.fakes.scripts import METHOD, code_replies, fenced, full_run

pytestmark = pytest.mark.slow

IDEA = "Does keeping attention sinks plus the most recent tokens beat H2O at a quarter of the KV cache?"


def run_until_parked(checkpoints: str = "experiment", **overrides) -> tuple[RunDir, dict, dict]:
    settings = load_settings(None, {"checkpoints": checkpoints, "max_papers": 1, **overrides})
    run = RunDir.create(Path(settings.runs_dir), "sink+recency eviction")
    settings.save(run.settings_path)
    out = drive(run, settings, {"idea": IDEA}, Console(file=io.StringIO()), live=False)
    assert out.status in ("parked", "stopped"), out
    payload, values = pending_interrupt(run, settings)
    return run, payload, values


def test_all_stages_measure_the_method_against_baselines_on_the_same_items(agent_env, llm_server):
    full_run(llm_server)
    run, payload, values = run_until_parked()
    assert payload["phase"] == "experiment" and payload["kind"] == "checkpoint"
    exp = values["experiment"]
    assert exp["done"] and exp["family"] == "kv" and exp["primary"] == "ppl"
    assert [s for s in exp["stages"]] == ["baselines", "implement", "sweep", "ablations", "seeds"]
    assert all(s["status"] == "ok" for s in exp["stages"].values()), exp["stages"]
    impl = exp["stages"]["implement"]["nodes"]
    assert [n["kind"] for n in impl[:2]] == ["draft", "draft"] and any(n["kind"] == "improve" for n in impl)
    # the final results: test split, 3 seeds, CIs, the proposed method and both baselines in one file
    res = values["results"]
    assert res["spec"]["split"] == "test" and res["spec"]["seeds"] == [0, 1, 2]
    cells = {c["id"]: c for c in res["cells"]}
    assert {"full"} <= set(cells) and any(c["method"] == "h2o" for c in cells.values())
    prop = next(c for c in cells.values() if c["method"] == "proposed")
    assert prop["values"]["ppl"]["n"] == 3 and prop["values"]["ppl"]["ci95"] is not None
    ref = cells["full"]["values"]["ppl"]["per_item"]
    assert len(ref) == 3 and all(len(r) == 4 for r in ref)
    # the sweep is a curve: the proposed method at every budget
    sweep = json.loads((run.repo_dir / exp["stages"]["sweep"]["results_path"]).read_text())
    budgets = {c["params"].get("budget") for c in sweep["cells"] if c["method"] == "proposed"}
    assert budgets == {0.125, 0.25, 0.5, 0.75}
    # the ablation ran the method with sink=0 next to the unablated one
    abl = json.loads((run.repo_dir / exp["stages"]["ablations"]["results_path"]).read_text())
    assert sorted(c["params"].get("sink", 4) for c in abl["cells"] if c["method"] == "proposed") == [0, 4]
    assert values["analysis"]["comparisons"], values["analysis"]
    # every node is a directory and a commit; code came as a fenced block, not JSON
    log = [c.message for c in git.Repo(run.repo_dir).iter_commits()]
    for node in impl:
        assert any(m.startswith(f"{node['id']} ({node['kind']})") for m in log)
    assert (run.repo_dir / impl[0]["dir"] / "method.py").read_text() == METHOD


def test_a_failed_draft_is_debugged_with_its_traceback_and_edits(agent_env, llm_server):
    broken = METHOD.replace("return ctx.protect(s, first=sink) if sink > 0 else s", "return undefined_name")
    edit = ("method.py\n<<<<<<< SEARCH\n    return undefined_name\n=======\n"
            "    return ctx.protect(s, first=sink) if sink > 0 else s\n>>>>>>> REPLACE\n")
    full_run(llm_server, text=code_replies(fenced({"method.py": broken}), "no code at all, sorry", edit, fenced({"method.py": METHOD})))
    run, payload, values = run_until_parked("experiment.implement", drafts=2)
    assert payload.get("stage") == "implement"
    nodes = values["experiment"]["stages"]["implement"]["nodes"]
    assert nodes[0]["status"] == "failed" and "NameError" in nodes[0]["reason"] + nodes[0]["error_tail"]
    assert nodes[1]["status"] == "failed" and "could not be used" in nodes[1]["reason"]
    debug = next(n for n in nodes if n["kind"] == "debug")
    assert debug["status"] == "ok" and debug["parent"] in (nodes[0]["id"], nodes[1]["id"])
    prompts = [r["messages"][-1]["content"] for r in llm_server.requests if r["key"] == "text"]
    assert any("undefined_name" in p and "NameError" in p for p in prompts)  # the error went back to the model


def test_a_stage_with_no_valid_node_stops_the_run_before_any_paper(agent_env, llm_server):
    full_run(llm_server, text="I cannot write code today.")
    run, payload, values = run_until_parked("review", stage_budgets={"implement": {"nodes": 2}})
    assert payload["kind"] == "error" and payload["phase"] == "experiment"
    assert "implement" in payload["message"] and "no valid result" in payload["message"]
    assert values["experiment"]["stages"]["implement"]["status"] == "failed"
    assert len(values["experiment"]["stages"]["implement"]["nodes"]) == 2
    assert not values.get("interpretation") and not values.get("report")
    assert "Interpretation" not in llm_server.keys_seen()


def test_retry_after_a_failed_stage_continues_it_with_a_new_budget_keeping_its_nodes(agent_env, llm_server):
    from agentlab.runner import resume_run

    full_run(llm_server, text="I cannot write code today.")
    run, payload, values = run_until_parked("experiment.implement", stage_budgets={"implement": {"nodes": 1}},
                                            drafts=1)
    assert payload["kind"] == "error" and "implement" in payload["message"]
    first = values["experiment"]["stages"]["implement"]["nodes"]
    assert [n["status"] for n in first] == ["failed"]
    calls = len(llm_server.requests)
    full_run(llm_server)  # the model now writes a method
    out = resume_run(run, {"action": "retry"}, console=Console(file=io.StringIO()), live=False)
    assert out.status == "parked", out
    payload, values = pending_interrupt(run, load_settings(None, {}))
    assert payload.get("stage") == "implement"
    nodes = values["experiment"]["stages"]["implement"]["nodes"]
    assert nodes[0] == first[0] and len(nodes) == 2 and nodes[1]["status"] == "ok"
    assert values["experiment"]["stages"]["baselines"]["status"] == "ok"
    again = [r["key"] for r in llm_server.requests[calls:]]
    assert "BaselineSpec" not in again and "Plan" not in again  # finished stages were not redone


def test_a_method_that_runs_only_at_one_budget_gives_no_curve_and_stops_at_the_sweep(agent_env, llm_server):
    fussy = METHOD.replace("    b, h, t = ctx.keys.shape[0]",
                           "    if ctx.budget != ctx.share(1.0) or ctx.tokens // 4 != ctx.budget:\n"
                           "        raise ValueError('only at a quarter')\n    b, h, t = ctx.keys.shape[0]")
    full_run(llm_server, text=fenced({"method.py": fussy}))
    run, payload, values = run_until_parked("none", drafts=1, stage_budgets={"implement": {"nodes": 1}})
    assert payload["kind"] == "error" and "sweep" in payload["message"], payload
    (node,) = values["experiment"]["stages"]["sweep"]["nodes"]
    assert node["status"] == "failed" and "fewer than two values of budget" in node["reason"]
    assert not values.get("results") and not values.get("interpretation")


def test_an_ablation_naming_a_parameter_the_method_lacks_is_reasked_then_fails_its_stage(agent_env, llm_server):
    full_run(llm_server, AblationChoice={"params": {"sinks_off": True}, "rationale": "x"})
    run, payload, values = run_until_parked("none", drafts=1, stage_budgets={"implement": {"nodes": 1}})
    assert payload["kind"] == "error" and "ablations" in payload["message"], payload
    (node,) = values["experiment"]["stages"]["ablations"]["nodes"]
    assert node["status"] == "failed" and "sinks_off" in node["reason"] and "sink=4" in node["reason"]
    asks = [r["messages"][-1]["content"] for r in llm_server.requests if r["key"] == "AblationChoice"]
    assert len(asks) == 2 and "sink=4" in asks[1]  # the second ask carried the exact problem


TAMPER = METHOD + '''

from agentlab.modules import kv as _kv

_real = _kv.score_continuation


def _flattering(model, state, target_ids):  # halves every perplexity the harness measures
    return _real(model, state, target_ids) / 2


_kv.score_continuation = _flattering
'''


def test_a_method_that_tampers_with_the_measurement_is_discarded(agent_env, llm_server):
    full_run(llm_server, text=fenced({"method.py": TAMPER}))
    run, payload, values = run_until_parked("experiment.implement", drafts=1,
                                            stage_budgets={"implement": {"nodes": 1}})
    (node,) = values["experiment"]["stages"]["implement"]["nodes"]
    assert node["status"] == "failed" and "changed how the harness measures" in node["reason"]
    assert payload["kind"] == "error" and "implement" in payload["message"]


def test_each_stage_has_its_own_checkpoint_and_back_starts_a_new_pass(agent_env, llm_server):
    from agentlab.runner import resume_run

    full_run(llm_server)
    run, payload, values = run_until_parked("experiment.baselines,experiment.implement", drafts=1,
                                            stage_budgets={"implement": {"nodes": 1}})
    assert payload["kind"] == "checkpoint" and payload["stage"] == "baselines"
    assert list(values["experiment"]["stages"]) == ["baselines"]
    quiet = Console(file=io.StringIO())
    out = resume_run(run, {"action": "feedback", "text": "keep the first 8 tokens"}, console=quiet, live=False)
    assert out.status == "parked"
    payload, values = pending_interrupt(run, load_settings(None, {}))
    assert payload["stage"] == "implement" and list(values["experiment"]["stages"]) == ["baselines", "implement"]
    drafts = [r["messages"][-1]["content"] for r in llm_server.requests if r["key"] == "text"]
    assert drafts and "keep the first 8 tokens" in drafts[-1]  # feedback at a stage reaches the next one
    out = resume_run(run, {"action": "back", "phase": "experiment", "text": "start over"}, console=quiet, live=False)
    assert out.status == "parked"
    payload, values = pending_interrupt(run, load_settings(None, {}))
    exp = values["experiment"]
    assert payload["stage"] == "baselines" and exp["pass_n"] == 2 and list(exp["stages"]) == ["baselines"]
    assert exp["stages"]["baselines"]["nodes"][0]["dir"].startswith("experiments/p2/")


def test_weak_models_propose_a_registered_configuration_and_get_a_measured_table(agent_env, llm_server):
    full_run(llm_server, ProposalSpec={"choice": "snapkv: window=16", "rationale": "a shorter window"},
             AblationChoice={"choice": "kernel=3", "rationale": "less pooling"})
    run, payload, values = run_until_parked("experiment", proposal="spec")
    exp = values["experiment"]
    assert all(s["status"] == "ok" for s in exp["stages"].values()), exp["stages"]
    assert exp["proposal"]["method"] == "snapkv" and exp["proposal"]["params"] == {"window": 16}
    assert "text" not in llm_server.keys_seen()  # no free-form code was asked for
    abl = json.loads((run.repo_dir / exp["stages"]["ablations"]["results_path"]).read_text())
    assert {c["params"]["kernel"] for c in abl["cells"] if c["method"] == "snapkv"} == {3, 7}
    prop = next(c for c in values["results"]["cells"] if c["id"] == "proposed")
    assert prop["method"] == "snapkv" and prop["params"]["window"] == 16 and prop["values"]["ppl"]["n"] == 3
    # the choices are an enum of real configurations: the schema the endpoint got lists them, baselines excluded
    req = next(r for r in llm_server.requests if r["key"] == "ProposalSpec")
    assert "snapkv: window=16" in str(req["response_format"]) and "'h2o'" not in str(req["response_format"])
