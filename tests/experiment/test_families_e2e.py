"""The staged experiment in the prune, attention and speculative families, through the real graph, sandbox and
harness (tiny Llama): one scripted run per family to the experiment checkpoint, lean settings."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
from rich.console import Console

from agentlab.config import load_settings
from agentlab.experiment.choices import families
from agentlab.runner import drive, pending_interrupt
from agentlab.runs import RunDir
from tests.fakes.family_scripts import FAMILIES, family_run

pytestmark = pytest.mark.slow

LEAN = {"checkpoints": "experiment", "max_papers": 1, "drafts": 1, "stage_budgets": {"implement": {"nodes": 2}},
        "seeds": 2, "harness_items": 2}


def _why(exp: dict) -> dict:
    """Each stage's status and its nodes' reasons and error tails (for a failure message)."""
    return {k: (s["status"], s.get("reason"), [(n["id"], n.get("reason"), (n.get("error_tail") or "")[-400:])
                                               for n in s["nodes"]]) for k, s in (exp.get("stages") or {}).items()}


def _results(run: RunDir, stage: dict) -> dict:
    return json.loads((run.repo_dir / stage["results_path"]).read_text())


@pytest.mark.parametrize("family", ["prune", "attention", "speculative"])
def test_a_scripted_run_reaches_the_experiment_checkpoint_with_every_stage_ok(agent_env, llm_server, family):
    script = FAMILIES[family]
    info = families()[family]
    family_run(llm_server, family)
    settings = load_settings(None, LEAN)
    run = RunDir.create(Path(settings.runs_dir), f"{family} study")
    settings.save(run.settings_path)
    out = drive(run, settings, {"idea": script["idea"]}, Console(file=io.StringIO()), live=False)
    assert out.status in ("parked", "stopped"), out
    payload, values = pending_interrupt(run, settings)
    exp = values["experiment"]
    assert payload["phase"] == "experiment" and payload["kind"] == "checkpoint", (payload.get("message"), _why(exp))
    assert exp["done"] and exp["family"] == family and exp["primary"] == info.primary
    assert list(exp["stages"]) == ["baselines", "implement", "sweep", "ablations", "seeds"]
    assert all(s["status"] == "ok" for s in exp["stages"].values()), _why(exp)
    assert (run.repo_dir / exp["stages"]["implement"]["nodes"][0]["dir"] / "method.py").read_text() == script["method"]

    # the sweep: the proposed method at every value of the family's knob, next to the baselines
    sweep = _results(run, exp["stages"]["sweep"])
    knobs = {c["params"].get(info.knob) for c in sweep["cells"] if c["method"] == "proposed" and c["status"] == "ok"}
    assert knobs == set(info.sweep)
    assert {c["method"] for c in sweep["cells"]} >= set(script["baselines"]["baselines"])

    # the ablation: the changed parameter next to the unablated method
    param, default, ablated = script["param"]
    abl = _results(run, exp["stages"]["ablations"])
    cells = {c["id"]: c for c in abl["cells"] if c["method"] == "proposed"}
    (cell,) = [c for cid, c in cells.items() if cid.startswith("ablation:")]
    assert cell["status"] == "ok" and cell["params"][param] == ablated
    assert cells["proposed"]["params"][param] == default

    # the final results: the test split, 2 seeds, the proposed method and the baselines in one file
    res = values["results"]
    assert res["spec"]["split"] == "test" and res["spec"]["seeds"] == [0, 1] and res["family"] == family
    final = {c["id"]: c for c in res["cells"]}
    prop = next(c for c in final.values() if c["method"] == "proposed")
    assert prop["status"] == "ok" and prop["values"][info.primary]["n"] == 2
    assert {c["method"] for c in final.values()} >= {info.reference, *script["baselines"]["baselines"]}
    ref = final[info.reference]["values"][info.primary]["per_item"]
    assert len(ref) == 2 and all(len(r) == 2 for r in ref)
    assert values["analysis"]["comparisons"], values["analysis"]
