"""Tables and figures come from the data; the model's spec only chooses what to show."""

from agentlab.report.figures import build_figure, build_table, datasets, fmt_value
from agentlab.report.schemas import FigureSpec, TableSpec
from tests.report.scripted import load_ctx


def test_datasets_from_metrics_attempts_tables_and_details():
    ctx = load_ctx()
    ctx["results"]["tables"] = {"by_layer": {"columns": ["layer", "kept"], "rows": [[0, 12], [1, 9]]},
                                "other": [{"a": 1}]}
    d = datasets(ctx)
    assert list(d) == ["metrics", "attempts", "tables.by_layer", "tables.other", "details.per_budget"]
    assert d["tables.by_layer"]["rows"] == [{"layer": 0, "kept": 12}, {"layer": 1, "kept": 9}]
    assert d["metrics"]["rows"][0] == {"metric": "perplexity", "value": 14.237, "better": "lower"}


def test_table_numbers_are_read_from_the_data_and_traced():
    tex, trace = build_table(TableSpec(source="details.per_budget", columns=["budget", "perplexity", "nope"],
                                       caption="Sweep & more"), datasets(load_ctx()), 2)
    assert r"0.125 & 17.81 \\" in tex and r"Sweep \& more" in tex and "nope" not in tex
    assert trace[1] == {"number": "17.81", "status": "ok", "section": "table 2", "context": "generated from the data",
                        "source": "experiments/attempt-2/results.json: details.per_budget row 1, perplexity"}


def test_bad_specs_are_dropped_with_a_reason(tmp_path):
    d = datasets(load_ctx())
    assert build_table(TableSpec(source="made_up"), d, 1).startswith("table 1 dropped: no dataset 'made_up'")
    msg = build_figure(FigureSpec(source="details.per_budget", x="budget", y=["accuracy"]), d, 1, tmp_path)
    assert msg.startswith("figure 1 dropped") and "accuracy" in msg


def test_figure_is_drawn_from_the_data(tmp_path):
    tex = build_figure(FigureSpec(kind="line", source="details.per_budget", x="budget", y=["perplexity"]),
                       datasets(load_ctx()), 1, tmp_path)
    assert r"\includegraphics[width=0.8\linewidth]{figures/fig-1.pdf}" in tex and r"\label{fig:f1}" in tex
    assert (tmp_path / "fig-1.pdf").read_bytes()[:4] == b"%PDF"


def test_number_format():
    assert [fmt_value(v) for v in (4.0, 14.237, 0.000123, 1234567.0, None, "a_b")] == \
        ["4", "14.24", "0.000123", r"$1.235\times 10^{6}$", "--", r"a\_b"]
