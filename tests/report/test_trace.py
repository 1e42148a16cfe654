"""Number traceability: which numbers in LaTeX prose have a source, and which are blocked."""

import pytest

from agentlab.report.trace import collect_sources, find_numbers, redact, source_of, trace_latex
from tests.report.scripted import legacy_ctx, load_ctx

SEEDS = "experiments/p1/seeds-1/results.json"


@pytest.fixture
def sources(tmp_path):
    return collect_sources(load_ctx(tmp_path))


def _status(latex: str, sources) -> dict[str, str]:
    return {r["number"]: r["status"] for r in trace_latex(latex, sources, "results")}


def _source(latex: str, sources) -> str:
    return source_of(find_numbers(latex)[0], sources)


def test_table_values_rounded_percent_and_derived_are_traced(sources):
    st = _status(r"Perplexity is 14.24 (vs.\ 13.90 and 14.6), the cache shrinks by 75\% ($4\times$), a 2.4\% rise, "
                 r"0.36 below SnapKV (p < 0.05, 95\% intervals); at budget 0.125 the method reaches 16.9.", sources)
    assert st == {"14.24": "ok", "13.90": "ok", "14.6": "ok", "75%": "ok", "4": "ok", "2.4%": "ok", "0.36": "ok",
                  "0.05": "ok", "95%": "ok", "0.125": "ok", "16.9": "ok"}


def test_numbers_are_traced_to_the_file_they_came_from(sources):
    assert _source("a perplexity of 14.24", sources).startswith(
        f"{SEEDS}: cells[proposed[budget=0.25,recency=32,pool=5]].ppl")
    assert _source("then 16.9", sources).startswith(
        "experiments/p1/sweep-1/results.json: cells[proposed[budget=0.125,recency=32,pool=5]].ppl")
    assert _source("a drop of 0.36", sources).startswith(f"{SEEDS}: analysis.comparisons[snapkv[budget=0.25,window=32]]")
    assert _source("removing the recent window costs 0.71", sources).startswith(
        "experiments/p1/ablations-1/results.json: cells[proposed[budget=0.25,recency=0,pool=5]].delta")
    assert _source("contexts of 512 tokens", sources) == f"{SEEDS}: spec.context_tokens (also: " \
        "experiments/p1/baselines-1/results.json: spec.context_tokens; experiments/p1/implement-2/results.json: " \
        "spec.context_tokens)"


def test_fabricated_numbers_are_untraced(sources):
    st = _status(r"Our method is 41.3\% faster and reaches 91.3 accuracy with a 2.7x speedup.", sources)
    assert st == {"41.3%": "untraced", "91.3": "untraced", "2.7": "untraced"}


def test_wrong_precision_is_not_a_match(sources):
    assert _status("perplexity 14.31", sources)["14.31"] == "ok"  # the val-split value of the implement stage
    assert _status("perplexity 14.27", sources)["14.27"] == "untraced"  # no cell, seed or change is 14.27


def test_names_references_and_markup_are_not_numbers():
    latex = (r"Llama-2 in fp16 with a 7B model, see Table~\ref{tab:stage-seeds} and \cite{park2023linear}, "
             r"\includegraphics[width=0.8\linewidth]{figures/sweep.pdf} % a comment with 99.9")
    assert find_numbers(latex) == []


def test_note_numbers_years_and_small_counts_are_traced(sources):
    st = _status("They studied 27 concepts in 2023; we ran 5 stages with three seeds.", sources)
    assert st == {"27": "ok", "2023": "ok", "5": "ok"}


def test_redact_replaces_only_untraced_numbers(sources):
    out = redact(r"We reach 14.24 and a fabricated 99.1\% gain.", sources)
    assert "14.24" in out and "99.1" not in out and r"\untraced{}" in out


def test_no_results_means_no_result_numbers(tmp_path):
    ctx = load_ctx(tmp_path)
    for st in ctx["experiment"]["stages"].values():
        st.update(status="failed", results_path=None)
    ctx.update(results={}, analysis={})
    rows = trace_latex("perplexity 14.24 at 0.05", collect_sources(ctx), "results")
    assert [r["status"] for r in rows] == ["untraced", "untraced"]


def test_legacy_run_numbers_from_attempts_are_traced():
    st = _status(r"Perplexity is 14.24 (vs.\ 13.9), memory falls by 75\% to 12.5 MB, a 2.4\% rise.",
                 collect_sources(legacy_ctx()))
    assert st == {"14.24": "ok", "13.9": "ok", "75%": "ok", "12.5": "ok", "2.4%": "ok"}
