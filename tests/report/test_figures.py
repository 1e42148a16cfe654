"""Tables and figures come from the stages' results files; the model's spec only chooses what extra to show."""

import os

import pytest

from agentlab.experiment.analysis import stage_results
from agentlab.report.figures import build_figure, build_table, datasets, fmt_value, has_results, results_exhibits
from agentlab.report.schemas import FigureSpec, TableSpec
from tests.report.scripted import legacy_ctx, load_ctx

SEEDS = "experiments/p1/seeds-1/results.json"
MINE = "proposed[budget=0.25,recency=32,pool=5]"


def test_one_dataset_per_stage_the_ablations_and_the_comparisons(tmp_path):
    d = datasets(load_ctx(tmp_path))
    assert list(d) == ["stage.baselines", "stage.implement", "stage.sweep", "stage.ablations", "ablations",
                       "stage.seeds", "analysis.comparisons"]
    assert d["stage.seeds"]["path"] == SEEDS and has_results(d)
    row = next(r for r in d["stage.seeds"]["rows"] if r["_key"] == f"cells[{MINE}]")
    assert row["method"] == "proposed" and row["params"] == "budget=0.25, recency=32, pool=5"
    assert row["ppl"] == pytest.approx(14.24) and row["ppl_n"] == 3 and row["ppl_lo"] < 14.24 < row["ppl_hi"]
    assert row["kv_bytes"] == 393216 and row["compression"] == 4
    assert len(d["stage.sweep"]["rows"]) == 10 and d["stage.baselines"]["rows"][1]["ppl_lo"] is None  # one seed
    comps = {r["baseline"]: r for r in d["analysis.comparisons"]["rows"]}
    assert comps["snapkv"]["conclusion"] == "better"
    assert comps["snapkv"]["diff"] == pytest.approx(-0.36)
    assert comps["full"]["conclusion"] == "worse" and comps["h2o"]["p"] < 1e-6
    abl = {r["changed"]: r for r in d["ablations"]["rows"]}
    assert set(abl) == {"none (full method)", "recency=0", "pool=1"}
    assert abl["recency=0"]["delta"] == pytest.approx(0.71) and abl["recency=0"]["p"] < 0.05


def test_stage_tables_and_figures_are_drawn_by_code(tmp_path):
    ctx = load_ctx(tmp_path / "repo")
    data = datasets(ctx)
    out = tmp_path / "report"
    ex = results_exhibits(ctx, data, out)
    assert ex.problems == []
    assert ex.tables == ["stage-baselines", "stage-implement", "stage-sweep", "stage-ablations", "stage-seeds",
                         "comparisons"]
    assert ex.labels == [f"tab:{t}" for t in ex.tables] + ["fig:sweep", "fig:pareto"]
    for stem in ("sweep", "pareto"):
        pdf, png = out / "figures" / f"{stem}.pdf", out / "figures" / f"{stem}.png"
        assert pdf.read_bytes()[:4] == b"%PDF" and png.read_bytes()[:4] == b"\x89PNG"
    assert r"\includegraphics[width=0.8\linewidth]{figures/sweep.pdf}" in ex.figures[0]
    seeds_tex = (out / "tables" / "stage-seeds.tex").read_text()
    assert r"\label{tab:stage-seeds}" in seeds_tex and "14.24" in seeds_tex and "test split" in seeds_tex
    assert "recency=0" in (out / "tables" / "stage-ablations.tex").read_text()
    assert ex.sources >= {"stage.seeds", "stage.ablations", "ablations", "analysis.comparisons"}
    ppl = [t for t in ex.trace if t["section"] == "table stage-seeds" and t["number"] == "14.24"]
    assert ppl and ppl[0]["source"] == f"{SEEDS}: cells[{MINE}].ppl"
    sweep = [t["source"] for t in ex.trace if t["number"] == "16.9"]
    assert sweep == ["experiments/p1/sweep-1/results.json: cells[proposed[budget=0.125,recency=32,pool=5]].ppl"]


def test_a_failed_stage_has_no_table_and_no_results_means_no_exhibits(tmp_path):
    ctx = load_ctx(tmp_path)
    ctx["experiment"]["stages"]["sweep"].update(status="failed", reason="every node failed")
    d = datasets(ctx)
    assert "stage.sweep" not in d and "stage.seeds" in d
    ex = results_exhibits(ctx, d, tmp_path / "report")
    assert "fig:sweep" not in ex.labels and "fig:pareto" in ex.labels  # the Pareto plot falls back to seeds
    for st in ctx["experiment"]["stages"].values():
        st["status"] = "failed"
    d = datasets(ctx)
    assert d == {} and not has_results(d)
    assert results_exhibits(ctx, d, tmp_path / "r2").tables == []


def test_a_hostile_results_file_is_not_read(tmp_path):
    ctx = load_ctx(tmp_path)
    target = tmp_path / "experiments/p1/seeds-1/results.json"
    target.unlink()
    os.symlink(tmp_path / "experiments/p1/sweep-1/results.json", target)
    st = {s["name"]: s for s in stage_results(tmp_path, ctx["experiment"])}
    assert st["seeds"]["results"] is None and "symbolic link" in st["seeds"]["error"]
    assert "stage.seeds" not in datasets(ctx)


def test_legacy_run_datasets_from_metrics_attempts_tables_and_details():
    ctx = legacy_ctx()
    ctx["results"]["tables"] = {"by_layer": {"columns": ["layer", "kept"], "rows": [[0, 12], [1, 9]]},
                                "other": [{"a": 1}]}
    d = datasets(ctx)
    assert list(d) == ["metrics", "attempts", "tables.by_layer", "tables.other", "details.per_budget"]
    assert d["tables.by_layer"]["rows"] == [{"layer": 0, "kept": 12}, {"layer": 1, "kept": 9}]
    assert d["metrics"]["rows"][0] == {"metric": "perplexity", "value": 14.237, "better": ""}
    tex, trace = build_table(TableSpec(source="details.per_budget", columns=["budget", "perplexity", "nope"],
                                       caption="Sweep & more"), d, 2)
    assert r"0.125 & 17.81 \\" in tex and r"Sweep \& more" in tex and "nope" not in tex
    assert trace[1]["source"] == "experiments/attempt-2/results.json: details.per_budget row 1, perplexity"


def test_bad_specs_are_dropped_with_a_reason(tmp_path):
    d = datasets(load_ctx(tmp_path))
    assert build_table(TableSpec(source="made_up"), d, 1).startswith("table 1 dropped: no dataset 'made_up'")
    msg = build_figure(FigureSpec(source="stage.seeds", x="method", y=["accuracy"]), d, 1, tmp_path)
    assert msg.startswith("figure 1 dropped") and "accuracy" in msg


def test_outline_figure_is_drawn_from_the_data(tmp_path):
    tex = build_figure(FigureSpec(kind="bar", source="analysis.comparisons", x="baseline", y=["diff"]),
                       datasets(load_ctx(tmp_path)), 1, tmp_path / "figs")
    assert r"\includegraphics[width=0.8\linewidth]{figures/fig-1.pdf}" in tex and r"\label{fig:f1}" in tex
    assert (tmp_path / "figs" / "fig-1.pdf").read_bytes()[:4] == b"%PDF"


def test_number_format():
    assert [fmt_value(v) for v in (4.0, 14.237, 0.000123, 1234567.0, None, "a_b")] == \
        ["4", "14.24", "0.000123", r"$1.235\times 10^{6}$", "--", r"a\_b"]
