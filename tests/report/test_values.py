"""The ledger: what a `\\val` reference resolves to, how code renders it, and what cannot be referenced."""

import pytest

from agentlab.report.evidence import evidence
from agentlab.report.figures import datasets
from agentlab.report.values import ValueRefError, build_ledger, render
from tests.report.scripted import legacy_ctx, load_ctx

SEEDS = "experiments/p1/seeds-1/results.json"


@pytest.fixture
def ctx(tmp_path):
    return load_ctx(tmp_path)


@pytest.fixture
def ledger(ctx):
    return build_ledger(ctx, datasets(ctx))


def test_values_resolve_by_cell_id_and_by_unambiguous_method_name(ledger):
    by_id = ledger.resolve("seeds:proposed[budget=0.25,recency=32,pool=5]:ppl")
    assert ledger.resolve("seeds:proposed:ppl") == by_id
    assert (by_id.text, by_id.path, by_id.stat, by_id.methods) == ("14.24", SEEDS, "mean", ("proposed",))
    assert ledger.resolve("seeds:h2o:ppl_lo").stat == "lo"
    assert ledger.resolve("seeds:h2o:ppl_n").value == 3
    assert ledger.resolve("seeds:proposed:param.budget").kind == "param"
    assert ledger.resolve("sweep:proposed[budget=0.125,recency=32,pool=5]:ppl").path.endswith("sweep-1/results.json")


def test_rendering_adds_the_unit_and_the_placeholder_macro(ledger):
    assert ledger.resolve("seeds:full:kv_bytes").latex() == r"\agentlabnum{1.5}~MiB"
    assert ledger.resolve("seeds:h2o:compression").latex() == r"\agentlabnum{4}$\times$"
    assert ledger.resolve("seeds:proposed:ppl", 3).text == "14.240"
    tex, rows = render(r"ppl \val{seeds:proposed:ppl} vs \val[1]{seeds:full:ppl}", ledger, "results")
    assert tex == r"ppl \agentlabnum{14.24} vs \agentlabnum{13.9}"
    assert [r["status"] for r in rows] == ["ok", "ok"] and rows[0]["source"].startswith(SEEDS)


def test_derived_values_are_computed_by_code(ledger):
    pct = ledger.resolve("pct(seeds:proposed:ppl, seeds:full:ppl)")
    a, b = ledger.resolve("seeds:proposed:ppl").value, ledger.resolve("seeds:full:ppl").value
    assert pct.value == pytest.approx((a - b) / b * 100) and pct.unit == "%"
    ratio = ledger.resolve("ratio(seeds:full:kv_bytes, seeds:proposed:kv_bytes)")
    assert ratio.text == "4.00" and ratio.latex() == r"\agentlabnum{4.00}$\times$"
    assert ledger.resolve("diff(seeds:snapkv:ppl, seeds:proposed:ppl)").value == pytest.approx(14.6 - 14.24, abs=0.01)


@pytest.mark.parametrize("ref, why", [
    ("pct(seeds:proposed:ppl, seeds:full:kv_bytes)", "same metric"),  # perplexity against bytes
    ("pct(seeds:proposed:ppl, sweep:proposed[budget=0.125,recency=32,pool=5]:ppl)", "different results files"),
    ("ratio(seeds:proposed:ppl_hi, seeds:full:ppl)", "same statistic"),
    ("pct(count:seeds, count:items)", "only measured results"),  # a count is not a result
    ("diff(seeds:proposed:ppl, seeds:proposed:ppl)", "same value"),
])
def test_derived_values_need_comparable_operands(ledger, ref, why):
    with pytest.raises(ValueRefError, match=why):
        ledger.resolve(ref)


def test_unknown_names_say_what_exists(ledger):
    with pytest.raises(ValueRefError, match=r"no value set 'plan'.*seeds"):
        ledger.resolve("plan:target")
    with pytest.raises(ValueRefError, match=r"no row 'tova'.*h2o"):
        ledger.resolve("seeds:tova:ppl")
    with pytest.raises(ValueRefError, match=r"no column 'accuracy'.*ppl"):
        ledger.resolve("seeds:h2o:accuracy")


def test_an_unresolved_reference_never_prints_a_number(ledger):
    tex, rows = render(r"we reach \val{seeds:h2o:accuracy}", ledger, "results")
    assert tex == r"we reach \untraced{}" and rows[0]["status"] == "untraced"


def test_plan_targets_and_failed_attempts_are_not_values(ctx, ledger):
    assert not [n for n in ledger.values if n.startswith(("plan", "attempt"))]
    assert all(v.path.startswith("experiments/p1/") for v in ledger.values.values() if v.kind == "result")


def test_evidence_records_seeds_devices_models_methods_and_tests(ctx, ledger):
    ev = evidence(ctx, datasets(ctx), ledger, {"park2023linear"})
    assert ev.n_seeds == 3 and ev.devices == ["cpu"] and ev.models == ["smollm2"]
    assert {"h2o", "snapkv", "full", "proposed"} <= ev.methods
    assert set(ev.tests) >= {"h2o", "snapkv"} and all(0 <= p <= 1 for p in ev.tests.values())
    assert ev.paper_text["park2023linear"][0][0] == 3


def test_a_run_saved_before_the_stages_has_its_metrics():
    ctx = legacy_ctx()
    ledger = build_ledger(ctx, datasets(ctx))
    assert any(n.startswith("metrics:") for n in ledger.values)
