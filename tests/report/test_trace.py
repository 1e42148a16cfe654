"""Number traceability: which numbers in LaTeX prose have a source, and which are blocked."""

from agentlab.report.trace import collect_sources, find_numbers, redact, trace_latex
from tests.report.scripted import load_ctx


def _status(latex: str) -> dict[str, str]:
    rows = trace_latex(latex, collect_sources(load_ctx()), "results")
    return {r["number"]: r["status"] for r in rows}


def test_results_values_rounded_percent_and_derived_are_traced():
    st = _status(r"Perplexity is 14.24 (vs.\ 13.9), memory falls by 75\% to 12.5 MB, a 2.4\% rise, $4\times$ smaller.")
    assert st == {"14.24": "ok", "13.9": "ok", "75%": "ok", "12.5": "ok", "2.4%": "ok", "4": "ok"}


def test_fabricated_numbers_are_untraced():
    st = _status(r"Our method is 41.3\% faster and reaches 91.3 accuracy with a 2.7x speedup.")
    assert st == {"41.3%": "untraced", "91.3": "untraced", "2.7": "untraced"}


def test_wrong_precision_is_not_a_match():
    assert _status("perplexity 14.31")["14.31"] == "untraced"  # 14.237 does not round to 14.31


def test_names_references_and_markup_are_not_numbers():
    latex = (r"Llama-2 in fp16 with a 7B model, see Table~\ref{tab:t1} and \cite{park2023linear}, "
             r"\includegraphics[width=0.8\linewidth]{figures/fig-1.pdf} % a comment with 99.9")
    assert find_numbers(latex) == []


def test_note_numbers_years_and_small_counts_are_traced():
    st = _status("They studied 27 concepts in 2023; we ran 2 attempts with three seeds.")
    assert st == {"27": "ok", "2023": "ok", "2": "ok"}


def test_redact_replaces_only_untraced_numbers():
    out = redact(r"We reach 14.24 and a fabricated 99.1\% gain.", collect_sources(load_ctx()))
    assert "14.24" in out and "99.1" not in out and r"\untraced{}" in out


def test_no_results_means_no_result_numbers():
    ctx = load_ctx()
    ctx.update(results={}, best_attempt=None, attempts=[{"n": 1, "status": "failed", "metrics": {}}])
    rows = trace_latex("perplexity 14.24", collect_sources(ctx), "results")
    assert rows[0]["status"] == "untraced"
