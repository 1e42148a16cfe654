"""The analysis of harness results and the interpret phase: conclusions by paired tests, a verdict the
test must back, every stage in the prompt, and no interpretation without measured results."""

import copy
import json
import random

import pytest

from agentlab.experiment.analysis import (
    ablation_table,
    analyze,
    pareto_points,
    stage_table,
    sweep_series,
    verdict_allowed,
)
from agentlab.phases import interpret as phase
from agentlab.phases.common import PhaseStop, RunContext, run_phase
from tests.fakes.openai_server import ScriptedLLM
from tests.report.harness_run import cell, results, run_state, stage_files
from tests.report.scripted import FIXTURES, make_llm, make_run, user_text

SNAP = "snapkv[budget=0.25,window=32]"
MINE = "proposed[budget=0.25,recency=32,pool=5]"


def _by(analysis: dict) -> dict:
    return {c["baseline"]: c for c in analysis["comparisons"]}


# ---- analysis -------------------------------------------------------------------------------------

def test_a_clear_effect_is_better_with_p_below_alpha():
    a = analyze(stage_files()["seeds"])
    assert (a["primary"], a["direction"], a["split"], a["n_seeds"]) == ("ppl", "lower", "test", 3)
    assert a["proposed"] == MINE and a["strongest_baseline"] == SNAP and a["reference"] == "full"
    c = _by(a)
    assert c[SNAP]["conclusion"] == "better" and c[SNAP]["test"]["p"] < 0.05 and c[SNAP]["ci_overlap"] is False
    assert c["h2o[budget=0.25]"]["conclusion"] == "better"
    assert c["full"]["conclusion"] == "worse" and c["full"]["role"] == "reference"  # the uncompressed cache wins
    assert c[SNAP]["diff"] == pytest.approx(-0.36) and c[SNAP]["paired_on"] == "items"
    assert a["significant_any"] is True


def test_overlapping_noisy_data_is_inconclusive():
    c = _by(analyze(stage_files(noisy=True)["seeds"]))[SNAP]
    assert c["conclusion"] == "inconclusive" and c["test"]["p"] > 0.05 and c["ci_overlap"] is True


def test_fewer_than_two_paired_values_is_inconclusive():
    rng = random.Random(0)
    res = results("val", [0], [cell("full", {}, 14.0, 1, rng, role="reference"),
                               cell("proposed", {"budget": 0.25}, 12.0, 1, rng)])
    for c in res["cells"]:
        c["values"]["ppl"]["per_item"] = [c["values"]["ppl"]["per_item"][0][:1]]
    a = analyze(res)
    assert a["comparisons"][0]["test"]["n"] == 1 and a["comparisons"][0]["conclusion"] == "inconclusive"
    assert a["significant_any"] is False


def test_direction_comes_from_the_metric_and_bad_cells_are_skipped():
    rng = random.Random(1)
    res = results("val", [0, 1], [cell("greedy", {}, 10.0, 2, rng, role="reference"),
                                  cell("proposed", {"budget": 0.25}, 12.0, 2, rng),
                                  cell("h2o", {"budget": 0.25}, 11.0, 2, rng)])
    res["metrics"]["ppl"]["direction"] = "higher"  # as tokens_per_s: higher is better
    res["cells"].append({"id": "broken", "method": "snapkv", "role": "method", "status": "failed", "error": "boom"})
    res["cells"].append("not a cell")
    c = _by(analyze(res))
    assert set(c) == {"greedy", "h2o[budget=0.25]"} and c["h2o[budget=0.25]"]["conclusion"] == "better"
    res["cells"][2]["values"]["ppl"]["per_item"][0].pop()  # not the same items any more
    c = _by(analyze(res))["h2o[budget=0.25]"]
    assert c["conclusion"] == "inconclusive" and "not the same items" in c["error"]
    assert analyze({})["proposed"] is None and analyze({})["comparisons"] == []


def test_verdict_guard():
    clear, noisy = analyze(stage_files()["seeds"]), analyze(stage_files(noisy=True)["seeds"])
    assert verdict_allowed(clear, "supported") == ("supported", None)
    assert verdict_allowed(noisy, "inconclusive") == ("inconclusive", None)
    verdict, why = verdict_allowed(noisy, "supported")
    assert verdict == "inconclusive" and "no significance test passed" in why and SNAP in why and "overlap" in why
    verdict, why = verdict_allowed(clear, "refuted")
    assert verdict == "inconclusive" and "other way" in why
    rng = random.Random(2)
    one = analyze(results("val", [0], [cell("snapkv", {"budget": 0.25}, 15.0, 1, rng),
                                       cell("proposed", {"budget": 0.25}, 12.0, 1, rng)]))
    assert one["comparisons"][0]["conclusion"] == "better"  # significant over the items of the one seed ...
    verdict, why = verdict_allowed(one, "supported")
    assert verdict == "inconclusive" and "one seed" in why  # ... but one seed cannot support a verdict
    assert verdict_allowed({}, "supported")[0] == "inconclusive"


def test_stage_table_sweep_series_pareto_and_ablations():
    files = stage_files()
    rows = {r["id"]: r for r in stage_table(files["seeds"])}
    assert rows[MINE]["ppl"] == pytest.approx(14.24) and rows[MINE]["ppl_n"] == 3
    assert rows[MINE]["ppl_lo"] < 14.24 < rows[MINE]["ppl_hi"] and rows["full"]["kv_bytes"] == 1572864
    assert stage_table(files["baselines"], ["ppl", "nope"])[0]["nope"] is None
    series = sweep_series(files["sweep"], "budget")
    assert set(series) == {"proposed", "h2o", "snapkv"}  # the reference has no knob
    assert [p[:2] for p in series["proposed"]] == [(0.125, pytest.approx(16.9)), (0.25, pytest.approx(14.31)),
                                                   (0.5, pytest.approx(14.02))]
    assert all(p[2] < p[1] < p[3] for p in series["h2o"])  # two seeds: intervals
    front = {p["id"] for p in pareto_points(files["sweep"], "ppl", "kv_bytes") if p["pareto"]}
    assert front == {"full", *(f"proposed[budget={b},recency=32,pool=5]" for b in (0.125, 0.25, 0.5))}
    abl = {r["changed"]: r for r in ablation_table(files["ablations"], {"budget": 0.25, "recency": 32, "pool": 5})}
    assert abl["recency=0"]["delta"] == pytest.approx(0.71) and abl["none (full method)"]["delta"] is None


# ---- the interpret phase --------------------------------------------------------------------------

def _state(run, noisy=False, **changes) -> dict:
    ctx = json.loads((FIXTURES / "ctx.json").read_text())
    state = {"idea": ctx["idea"], "plan": ctx["plan"], **run_state(run.repo_dir, noisy=noisy)}
    state.update(changes)
    return state


@pytest.fixture
def srv():
    with ScriptedLLM() as s:
        yield s


def _run(srv, tmp_path, state_fn, verdict="supported"):
    srv.on("Interpretation", {"summary": "The method beats SnapKV.", "verdict": verdict,
                              "key_findings": ["lower perplexity than SnapKV"], "caveats": ["one model"]})
    llm, settings = make_llm(srv, tmp_path)
    run = make_run(tmp_path, files=False)
    state = state_fn(run)
    cmd = run_phase("interpret", state, RunContext(settings, run, llm), phase._body)
    return cmd, run


def test_supported_without_a_significant_test_is_downgraded(srv, tmp_path):
    cmd, run = _run(srv, tmp_path, lambda run: _state(run, noisy=True))
    interp = cmd.update["interpretation"]
    assert cmd.update["stop"] is None and interp["verdict"] == "inconclusive"
    assert interp["claimed_verdict"] == "supported" and "no significance test passed" in interp["verdict_caveat"]
    assert interp["caveats"] == ["one model", interp["verdict_caveat"]]
    assert "changed to 'inconclusive'" in run.log_path.read_text()
    prompt = user_text(next(r for r in srv.requests if r["key"] == "Interpretation"))
    for stage in ("baselines", "implement", "sweep", "ablations", "seeds"):
        assert f"- {stage}: ok, experiments/p1/{stage}-" in prompt
    assert '<data stage="sweep">' in prompt and "proposed[budget=0.125,recency=32,pool=5]" in prompt
    assert '"conclusion": "inconclusive"' in prompt and "per_item" not in prompt  # tables, not raw items
    assert "test split, 3 seed(s)" in prompt


def test_a_significant_win_keeps_supported(srv, tmp_path):
    cmd, _ = _run(srv, tmp_path, lambda run: _state(run))
    interp = cmd.update["interpretation"]
    assert interp["verdict"] == "supported" and interp["verdict_caveat"] is None
    assert cmd.update["analysis"]["strongest_baseline"] == SNAP


def test_a_failed_stage_is_shown_with_its_reason(srv, tmp_path):
    def state(run):
        s = _state(run)
        s["experiment"]["stages"]["ablations"].update(status="skipped", reason="the plan names no ablations")
        return s

    _run(srv, tmp_path, state)
    prompt = user_text(next(r for r in srv.requests if r["key"] == "Interpretation"))
    assert "- ablations: skipped (the plan names no ablations)" in prompt and '<data stage="ablations">' not in prompt


@pytest.mark.parametrize("change", [{"results": {}}, "not done"])
def test_no_result_no_paper(srv, tmp_path, change):
    def state(run):
        s = _state(run)
        if change == "not done":
            s["experiment"] = copy.deepcopy(s["experiment"]) | {"done": False, "stage": "sweep"}
        else:
            s.update(change)
        return s

    cmd, _ = _run(srv, tmp_path, state)
    stop = cmd.update["stop"]
    assert cmd.goto == "checkpoint" and stop["phase"] == "interpret" and stop["error_type"] == "PhaseStop"
    assert "No result, no paper" in stop["message"]
    assert not [r for r in srv.requests if r["key"] == "Interpretation"]  # nothing paid
    with pytest.raises(PhaseStop, match="no measured results"):
        phase.require_results(state(make_run(tmp_path / "again", files=False)))
