import math

import pytest

from agentlab.modules import stats


@pytest.mark.parametrize("q,df,expected", [
    (0.975, 2, 4.3027), (0.975, 10, 2.2281), (0.975, 1, 12.7062), (0.975, 30, 2.0423),
    (0.95, 5, 2.0150), (0.995, 3, 5.8409), (0.975, 1000, 1.9623),
])
def test_t_ppf_matches_the_t_table(q, df, expected):
    assert stats.t_ppf(q, df) == pytest.approx(expected, abs=1e-4)
    assert stats.t_ppf(1 - q, df) == pytest.approx(-expected, abs=1e-4)


def _sf_df1(t):  # Cauchy
    return 0.5 - math.atan(t) / math.pi


def _sf_df2(t):
    return 0.5 - t / (2 * math.sqrt(2 + t * t))


def _sf_df3(t):
    u = t / math.sqrt(3)
    return 0.5 - (math.atan(u) + u / (1 + u * u)) / math.pi


@pytest.mark.parametrize("t", [-3.0, -0.7, 0.0, 0.3, 1.0, 2.5, 9.0, 40.0])
def test_t_sf_equals_the_closed_forms_for_small_df(t):
    assert stats.t_sf(t, 1) == pytest.approx(_sf_df1(t), abs=1e-12)
    assert stats.t_sf(t, 2) == pytest.approx(_sf_df2(t), abs=1e-12)
    assert stats.t_sf(t, 3) == pytest.approx(_sf_df3(t), abs=1e-12)


def test_t_sf_and_ppf_are_inverse_and_tend_to_the_normal():
    for df in (1, 2.5, 7, 60):
        for q in (0.6, 0.9, 0.975, 0.999):
            assert stats.t_sf(stats.t_ppf(q, df), df) == pytest.approx(1 - q, rel=1e-8)
    assert stats.t_ppf(0.975, 1e6) == pytest.approx(1.95996, abs=1e-4)
    assert stats.t_sf(math.inf, 3) == 0.0 and stats.t_sf(-math.inf, 3) == 1.0
    with pytest.raises(ValueError):
        stats.t_ppf(1.0, 3)


def test_summarize_one_value_has_no_spread():
    s = stats.summarize([36.3])
    assert s == {"per_seed": [36.3], "mean": 36.3, "std": None, "ci95": None, "n": 1}


def test_summarize_three_values():
    s = stats.summarize([10.0, 12.0, 14.0])
    assert s["mean"] == 12.0 and s["std"] == pytest.approx(2.0) and s["n"] == 3
    half = 4.302653 * 2.0 / math.sqrt(3)
    assert s["ci95"] == pytest.approx([12.0 - half, 12.0 + half], abs=1e-5)
    with pytest.raises(ValueError):
        stats.summarize([])


def test_paired_test_by_hand():
    # differences 2, 1, 0, 3: mean 1.5, sample sd sqrt(5/3), se = sd / 2, t = 1.5 / se = 2.32379, df 3
    r = stats.paired_test([10, 12, 9, 11], [8, 11, 9, 8])
    se = math.sqrt(5 / 3) / 2
    assert r["test"] == "paired t" and r["n"] == 4 and r["df"] == 3
    assert r["mean_diff"] == 1.5
    assert r["t"] == pytest.approx(1.5 / se) == pytest.approx(2.32379, abs=1e-5)
    assert r["p"] == pytest.approx(2 * _sf_df3(1.5 / se), abs=1e-10)
    assert 0.1 < r["p"] < 0.11
    half = 3.182446 * se
    assert r["ci95_diff"] == pytest.approx([1.5 - half, 1.5 + half], abs=1e-5)
    flipped = stats.paired_test([8, 11, 9, 8], [10, 12, 9, 11])
    assert flipped["t"] == pytest.approx(-r["t"]) and flipped["p"] == pytest.approx(r["p"])


def test_paired_test_degenerate_cases():
    same = stats.paired_test([1.0, 2.0, 3.0], [1.0, 2.0, 3.0])
    assert same["t"] == 0 and same["p"] == 1.0 and same["mean_diff"] == 0.0
    shifted = stats.paired_test([2.0, 3.0, 4.0], [1.0, 2.0, 3.0])
    assert shifted["p"] == 0.0 and shifted["t"] == math.inf
    one = stats.paired_test([2.0], [1.0])
    assert one["p"] is None and one["t"] is None and one["ci95_diff"] is None and one["mean_diff"] == 1.0
    with pytest.raises(ValueError):
        stats.paired_test([1.0, 2.0], [1.0])


def _cell(cid, per_item=None, per_seed=None):
    per_seed = per_seed if per_seed is not None else [sum(s) / len(s) for s in per_item]
    value = stats.summarize(per_seed)
    if per_item is not None:
        value["per_item"] = per_item
    return {"id": cid, "status": "ok", "error": "", "values": {"ppl": value}}


def test_compare_pairs_the_items_seed_by_seed():
    a = _cell("proposed", per_item=[[10, 12], [9, 11]])
    b = _cell("h2o", per_item=[[8, 11], [9, 8]])
    r = stats.compare(a, b, "ppl")
    assert r["a"] == "proposed" and r["b"] == "h2o" and r["paired_on"] == "items"
    assert r["mean_a"] == 10.5 and r["mean_b"] == 9.0 and r["diff"] == 1.5
    assert r["rel_diff"] == pytest.approx(1.5 / 9.0)
    assert r["test"] == stats.paired_test([10, 12, 9, 11], [8, 11, 9, 8])
    assert r["ci_overlap"] is True  # per-seed CIs over 2 seeds are wide


def test_compare_falls_back_to_seeds_and_reports_ci_overlap():
    a = _cell("a", per_seed=[1.0, 1.1, 0.9])
    b = _cell("b", per_seed=[5.0, 5.1, 4.9])
    r = stats.compare(a, b, "ppl")
    assert r["paired_on"] == "seeds" and r["test"]["n"] == 3 and r["ci_overlap"] is False
    one = stats.compare(_cell("a", per_item=[[1.0, 2.0]]), _cell("b", per_item=[[1.5, 2.5]]), "ppl")
    assert one["ci_overlap"] is None and one["test"]["n"] == 2


def test_compare_rejects_failed_cells_and_unequal_items():
    failed = {"id": "x", "status": "failed", "error": "RuntimeError: boom", "values": {}}
    with pytest.raises(ValueError, match="boom"):
        stats.compare(failed, _cell("b", per_item=[[1.0]]), "ppl")
    with pytest.raises(ValueError, match="not the same items"):
        stats.compare(_cell("a", per_item=[[1.0, 2.0]]), _cell("b", per_item=[[1.0]]), "ppl")
