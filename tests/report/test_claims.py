"""Claim checks of a section's source and of the PDF text, sentence splitting and dropping (docs/integrity.md §2)."""

import pytest

from agentlab.report import claims
from agentlab.report.evidence import Evidence
from agentlab.report.values import Ledger, Value

PATH = "runs/r/seeds/results.json"


def _v(name, value, metric, stat, kind, rows=(), methods=(), unit="", text=None):
    return Value(name, value, metric, stat, kind, tuple(rows), tuple(methods), "seeds", PATH, unit,
                 text if text is not None else f"{value:g}")


VALUES = [
    _v("seeds:h2o:ppl", 14.2, "ppl", "mean", "result", ["h2o"], ["h2o"]),
    _v("seeds:snapkv:ppl", 14.0, "ppl", "mean", "result", ["snapkv"], ["snapkv"]),
    _v("seeds:proposed:ppl", 13.1, "ppl", "mean", "result", ["proposed"], ["proposed"]),
    _v("seeds:proposed:ppl_lo", 12.9, "ppl", "lo", "result", ["proposed"], ["proposed"]),
    _v("seeds:proposed:ppl_hi", 13.3, "ppl", "hi", "result", ["proposed"], ["proposed"]),
    _v("seeds:proposed:ppl_n", 3.0, "ppl", "n", "count", ["proposed"], ["proposed"]),
    _v("seeds:h2o:kv_bytes", 2.0, "kv_bytes", "mean", "result", ["h2o"], ["h2o"], unit="MiB"),
    _v("seeds:proposed:kv_bytes", 1.5, "kv_bytes", "mean", "result", ["proposed"], ["proposed"], unit="MiB"),
    _v("seeds:proposed:latency", 0.2, "latency", "mean", "result", ["proposed"], ["proposed"]),
    _v("cmp:h2o:p", 0.01, "p", "p", "test", ["h2o"], ["proposed", "h2o"]),
    _v("cmp:snapkv:p", 0.4, "p", "p", "test", ["snapkv"], ["proposed", "snapkv"]),
    _v("count:seeds", 3.0, "", "count", "count"),
    _v("count:items", 64.0, "", "count", "count"),
    _v("stat:confidence", 95.0, "", "stat", "stat", unit="%", text="95"),
    _v("stat:alpha", 0.05, "", "stat", "stat"),
]
PAPER = "H2O reduces the KV cache memory by up to 5x at a 20% budget on OPT-6.7B."


def evidence(**kw) -> Evidence:
    base = dict(ledger=Ledger.from_values(VALUES), n_seeds=3, devices=["cpu", "x86_64"],
                models=["huggingfacetb/smollm2-135m"], methods={"proposed", "h2o", "snapkv"},
                tests={"h2o": 0.01, "snapkv": 0.4}, alpha=0.05, keys={"zhang2023h2o", "li2024snapkv"},
                paper_text={"zhang2023h2o": [(3, "Intro text."), (7, PAPER)]},
                known_methods={"h2o", "snapkv", "streamingllm", "tova", "full"})
    base.update(kw)
    return Evidence(**base)


def found(latex: str, ev: Evidence | None = None) -> list[tuple[str, str]]:
    """(kind, flagged source) of every issue."""
    return [(i.kind, latex[i.start:i.end]) for i in claims.check(latex, ev or evidence(), "results")]


def kinds(latex: str, ev: Evidence | None = None) -> set[str]:
    return {k for k, _ in found(latex, ev)}


# ---- digits and number words ----------------------------------------------------------------------------------
@pytest.mark.parametrize("text, token", [
    ("It reaches 41.3 here.", "41.3"), ("It takes 41.3ms.", "41.3ms"), ("A 3.2X gain.", "3.2X"), ("A 4x gain.", "4x"),
    ("Use 1e-3 here.", "1e-3"), ("Use 1.2e-3 here.", "1.2e-3"), ("Got .953 here.", ".953"), ("The 2nd one.", "2nd"),
    ("A 4-bit cache.", "4-bit"), ("A 2:4 pattern.", "2:4"), ("We use 12,000 tokens.", "12,000"),
    ("We set $k=4$.", "4"), (r"A $\frac{1}{2}$ share.", "1"), ("A rate of $10^{-3}$.", "10"),
    (r"Done\footnote{After 3 steps.}.", "3"), (r"\textbf{7} wins.", "7"), (r"It is $\times$4 faster.", "4"),
    (r"\begin{figure}\caption{At 5 steps.}\end{figure}", "5"),
])
def test_typed_numbers_are_digit_issues(text, token):
    got = [t for k, t in found(text) if k == "digit"]
    assert token in got
    msg = next(i.message for i in claims.check(text, evidence()) if i.kind == "digit")
    assert "is typed" in msg and "\\val{" in msg and "\\quoted{KEY}" in msg


def test_identifiers_names_and_protected_arguments_are_not_digits():
    latex = (r"H2O, fp16, SmolLM2-135M, GPT-4 and Llama-3 are names. See Fig.~\ref{fig:3}, \eqref{eq:2}, "
             r"\autoref{t1}, \cref{s2}, \pageref{p4} and \label{sec:5}. Ours reaches \val[2]{seeds:proposed:ppl}. "
             r"\includegraphics[width=0.5\linewidth]{figures/fig-1.pdf} As \quoted{zhang2023h2o}{up to 5x} "
             r"says \cite{zhang2023h2o}. % a comment with 42" "\n"
             r"\begin{itemize}\item We use \val{count:seeds} seeds.\end{itemize}")
    assert [k for k, _ in found(latex) if k == "digit"] == []


@pytest.mark.parametrize("word", ["two", "Three", "twenty", "ninety", "hundred", "thousands", "million", "dozen",
                                  "half", "halves", "halved", "halving", "twice", "thrice", "doubled", "doubling",
                                  "triples", "quadrupled", "twofold", "fourfold", "ten-fold", "n-fold",
                                  "orders of magnitude", "percent", "per cent"])
def test_number_words(word):
    assert ("number_word", word) in found(f"It is {word} better here.")


@pytest.mark.parametrize("text", ["One method wins.", "A manifold.", "We unfold it.", "A scaffold.",
                                  "We use half precision.", r"It drops by \val{pct(seeds:proposed:ppl, seeds:h2o:ppl)}"
                                  " percent."])
def test_words_that_are_not_number_words(text):
    assert "number_word" not in kinds(text)


def test_number_word_messages_say_what_to_write():
    msgs = {i.message for i in claims.check("It is twice as fast and three are left.", evidence())}
    assert any("ratio(A, B)" in m for m in msgs) and any("count:" in m for m in msgs)


# ---- values -----------------------------------------------------------------------------------------------------
def test_unknown_value_and_incomparable_derived_value():
    issues = claims.check(r"It is \val{seeds:h2o:nope} and \val{pct(seeds:h2o:ppl, seeds:h2o:kv_bytes)}.", evidence())
    by = {i.kind: i.message for i in issues}
    assert "no column 'nope'" in by["value_ref"] and "ppl" in by["value_ref"]
    assert "same metric" in by["derived"]
    assert kinds(r"Ours changes perplexity by \val{pct(seeds:proposed:ppl, seeds:h2o:ppl)} against H2O.") == set()
    assert "value_ref" in kinds(r"It is \val{pct(seeds:h2o:ppl, seeds:nope:ppl)}.")
    assert ("value_ref", r"\val{") in found(r"It is \val{} here.")
    assert "value_ref" in kinds(r"It is \val{seeds:h2o:ppl here.")
    assert "paper_number" in kinds(r"It is \quoted{zhang2023h2o} here \cite{zhang2023h2o}.")


# ---- significance -----------------------------------------------------------------------------------------------
def test_significance_needs_a_test_value():
    issues = claims.check("Ours is significantly better than H2O.", evidence())
    assert [i.kind for i in issues] == ["significance"] and "\\val{cmp:h2o:p}" in issues[0].message
    assert "cmp:snapkv:p" in issues[0].message
    assert kinds(r"Ours is significantly better than H2O (p = \val{cmp:h2o:p}).") == set()
    assert kinds(r"A paired t-test against H2O gives p = \val{cmp:h2o:p}.") == set()
    none = claims.check("The difference is statistically significant.", evidence(ledger=Ledger.from_values(
        [v for v in VALUES if v.stat != "p"]), tests={}))
    assert "no paired test ran" in none[0].message


def test_significance_polarity():
    assert kinds(r"Ours is significantly better than SnapKV (p = \val{cmp:snapkv:p}).") == {"significance"}
    assert kinds(r"The gain over SnapKV is not significant (p = \val{cmp:snapkv:p}).") == set()
    assert kinds(r"The gain over H2O is not statistically significant (p = \val{cmp:h2o:p}).") == {"significance"}
    assert kinds(r"The gain over H2O is insignificant (p = \val{cmp:h2o:p}).") == {"significance"}
    mixed = (r"Ours is significantly better than H2O (p = \val{cmp:h2o:p}), but the gain over SnapKV is not "
             r"significant (p = \val{cmp:snapkv:p}).")
    assert kinds(mixed) == set()


def test_significance_test_must_have_run():
    issues = claims.check(r"Ours is significantly better than SnapKV (p = \val{cmp:snapkv:p}).",
                          evidence(tests={"h2o": 0.01}))
    assert any("no paired test against 'snapkv' ran" in i.message for i in issues)


def test_intervals_and_alpha_describe_the_method():
    ci = r"The \val{stat:confidence} confidence interval is [\val{seeds:proposed:ppl_lo}, \val{seeds:proposed:ppl_hi}]."
    assert kinds(ci) == set()
    assert kinds("We report confidence intervals.") == {"significance"}
    assert kinds(r"We use a significance level of \val{stat:alpha}.") == set()


# ---- seeds ------------------------------------------------------------------------------------------------------
def test_seed_counts():
    assert kinds(r"We average over \val{count:seeds} seeds.") == set()
    assert kinds(r"We average over \val{seeds:proposed:ppl_n} runs.") == set()
    assert ("seeds", r"\val{count:items} seeds") in found(r"We use \val{count:items} seeds.")
    assert ("seeds", "5 seeds") in found("We use 5 seeds.")
    assert ("seeds", "three random seeds") in found("We use three random seeds.")
    assert ("seeds", "a single seed") in found("We use a single seed.")
    assert "seeds" not in kinds("We use a single seed.", evidence(n_seeds=1))
    assert ("seeds", "across seeds") in found("Results are stable across seeds.", evidence(n_seeds=1))
    assert "seeds" not in kinds("Results are stable across seeds.")
    assert "this run used 3 seeds" in claims.check("We use 5 seeds.", evidence())[-1].message


# ---- hardware and models ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["GPU", "GPUs", "CUDA", "A100", "H100", "H200", "V100", "A10G", "T4", "L4", "L40S",
                                  "RTX 4090", "TPU", "MI300X", "Apple M2", "Xeon", "EPYC", "Ryzen"])
def test_hardware_not_recorded(name):
    assert ("hardware", name) in found(f"We run on a {name} machine.")


def test_hardware_recorded_or_cited():
    assert "hardware" not in kinds("We run on a CPU.")
    assert "hardware" in kinds("We run on a CPU.", evidence(devices=["cuda", "nvidia h200"]))
    gpu = evidence(devices=["cuda", "nvidia h200"])
    assert kinds("We run on one H200 GPU with CUDA.", gpu) == set()
    assert "hardware" in kinds("We run on one H100 GPU.", gpu)
    assert "hardware" not in kinds(r"H2O was run on an A100 GPU \cite{zhang2023h2o}.")
    msg = claims.check("We use a GPU.", evidence())[0].message
    assert "cpu, x86_64" in msg and "\\val{env:device}" in msg


def test_models():
    assert ("model", "Llama-2-7B") in found("We evaluate Llama-2-7B.")
    assert ("model", "OPT-6.7B") in found("We evaluate OPT-6.7B.")
    assert ("model", "Mistral-7B") in found("We evaluate Mistral-7B.")
    assert ("model", "7B") in found("We evaluate a 7B model.")
    assert "model" not in kinds("We evaluate SmolLM2-135M.")
    assert "model" not in kinds("H2O was evaluated on OPT-6.7B \\cite{zhang2023h2o}.")
    assert "\\val{env:model}" in next(i.message for i in claims.check("On Llama-2-7B.", evidence()))


# ---- methods: baselines and attribution -------------------------------------------------------------------------
def test_baselines_without_results():
    assert ("baseline", "StreamingLLM") in found("Ours outperforms StreamingLLM.")
    assert ("baseline", "TOVA") in found("Ours is better than TOVA.")
    assert "baseline" not in kinds("Ours outperforms H2O.")
    assert "baseline" not in kinds(r"StreamingLLM is better than dense attention \cite{zhang2023h2o}.")
    assert "baseline" not in kinds("StreamingLLM keeps attention sinks.")  # no comparison
    assert ("baseline", "full") in found("Ours beats the full cache.")  # an ordinary word: a name before a noun
    assert "baseline" not in kinds("Ours beats the full cache.", evidence(methods={"proposed", "h2o", "full"}))
    assert "baseline" not in kinds("Ours keeps the full context and beats H2O.")


def test_attribution():
    swapped = r"H2O reaches \val{seeds:proposed:ppl} while ours reaches \val{seeds:h2o:ppl}."
    assert [k for k, _ in found(swapped)] == ["attribution", "attribution"]
    assert kinds(r"H2O reaches \val{seeds:h2o:ppl} while ours reaches \val{seeds:proposed:ppl}.") == set()
    assert kinds(r"Compared with H2O, our method reaches \val{seeds:proposed:ppl}.") == set()
    assert kinds(r"We improve on H2O by \val{pct(seeds:proposed:ppl, seeds:h2o:ppl)}.") == set()
    assert kinds(r"We measure \val{seeds:h2o:ppl} for H2O.") == set()
    assert kinds(r"We beat H2O, reaching \val{seeds:proposed:ppl}.") == set()
    assert kinds(r"SnapKV reaches \val{seeds:h2o:ppl}.") == {"attribution"}
    msg = claims.check(r"SnapKV reaches \val{seeds:h2o:ppl}.", evidence())[0].message
    assert "h2o" in msg and "'SnapKV'" in msg


# ---- units and metrics ------------------------------------------------------------------------------------------
def test_units():
    assert ("unit", r"\val{seeds:proposed:ppl}~MB") in found(r"Our perplexity is \val{seeds:proposed:ppl}~MB.")
    assert "unit" in kinds(r"Our memory is \val{seeds:proposed:kv_bytes} MiB.")
    assert "unit" in kinds(r"Ours changes it by \val{pct(seeds:proposed:ppl, seeds:h2o:ppl)}\%.")
    assert "unit" in kinds(r"Ours is \val{ratio(seeds:proposed:ppl, seeds:h2o:ppl)}$\times$ lower.")
    assert "unit" in kinds(r"At the \val{stat:confidence}\% level.")
    assert "unit" in kinds(r"Ours takes \val{seeds:proposed:latency}~MB.")
    assert "unit" not in kinds(r"Our latency is \val{seeds:proposed:latency} s.")
    assert "unit" not in kinds(r"Our memory is \val{seeds:proposed:kv_bytes} lower.")
    assert "unit" not in kinds(r"We repeat it \val{count:seeds} times.")
    msg = claims.check(r"Memory is \val{seeds:proposed:kv_bytes}~MiB.", evidence())[0].message
    assert "already renders its unit" in msg and "delete" in msg


def test_metrics():
    assert ("metric", r"\val{seeds:proposed:ppl}") in found(r"The memory of ours is \val{seeds:proposed:ppl}.")
    assert "metric" not in kinds(r"The perplexity of ours is \val{seeds:proposed:ppl}.")
    assert "metric" not in kinds(r"At the same memory, our perplexity is \val{seeds:proposed:ppl}.")
    ratio = r"\val{ratio(seeds:h2o:kv_bytes, seeds:proposed:kv_bytes)}"
    assert "metric" not in kinds(f"Ours compresses the cache by {ratio}.")
    assert "metric" in kinds(r"Our latency is \val{seeds:proposed:kv_bytes}.")
    assert "metric" in kinds(r"Ours has a spread of \val{seeds:proposed:ppl} in memory.")  # the word right after
    assert "metric" not in kinds(r"Ours reaches \val{seeds:proposed:ppl} with a smaller cache footprint than H2O.")


def test_counts_are_not_measured_changes():
    assert ("metric", r"\val{count:items}") in found(r"Ours reduces perplexity by \val{count:items}.")
    assert "metric" in kinds(r"Ours gives \val{count:items} lower perplexity.")
    assert "unit" in kinds(r"Ours gives a \val{count:items}$\times$ compression.")
    assert kinds(r"We evaluate perplexity on \val{count:items} items.") == set()


def test_unmeasured_metric_claims():
    no_speed = evidence(ledger=Ledger.from_values([v for v in VALUES if v.metric != "latency"]))
    assert ("metric", "Faster") in found("Faster KV Cache Eviction by Learned Scores", no_speed)
    assert "metric" not in kinds("Faster KV Cache Eviction by Learned Scores")  # the run measured latency
    assert ("metric", "accuracy") in found("Ours improves accuracy over H2O.")
    assert "metric" not in kinds("Ours lowers perplexity and memory.")
    assert "metric" not in kinds(r"Faster methods exist \cite{zhang2023h2o}.")
    assert kinds("At the same time, ours is better than H2O.") == set()


# ---- citations --------------------------------------------------------------------------------------------------
def test_cited_result():
    assert ("cited_result", r"\val{seeds:h2o:ppl}") in found(r"H2O \cite{zhang2023h2o} reaches \val{seeds:h2o:ppl}.")
    assert "cited_result" not in kinds(r"In our runs, H2O \cite{zhang2023h2o} reaches \val{seeds:h2o:ppl}.")
    assert "cited_result" not in kinds(r"H2O \cite{zhang2023h2o} evicts tokens.")


def test_paper_numbers():
    ok = r"H2O saves memory by \quoted{zhang2023h2o}{up to 5x} \cite{zhang2023h2o}."
    assert kinds(ok) == set()
    assert kinds(r"H2O uses \quoted{zhang2023h2o}{a 20\%  budget} \citep{zhang2023h2o}.") == set()
    wrong = claims.check(r"H2O saves \quoted{zhang2023h2o}{up to 6x} \cite{zhang2023h2o}.", evidence())
    assert [i.kind for i in wrong] == ["paper_number"] and "not verbatim" in wrong[0].message
    assert "chunk 7" in claims.check(r"It is \quoted{zhang2023h2o}{5 times} \cite{zhang2023h2o}.",
                                     evidence())[0].message
    assert "needs \\cite{zhang2023h2o}" in claims.check(r"It saves \quoted{zhang2023h2o}{up to 5x}.",
                                                        evidence())[0].message
    assert "not a paper of this run" in claims.check(r"It is \quoted{ghost}{up to 5x} \cite{zhang2023h2o}.",
                                                     evidence())[0].message
    assert "no text of" in claims.check(r"It is \quoted{li2024snapkv}{up to 5x} \cite{li2024snapkv}.",
                                        evidence())[0].message


@pytest.mark.parametrize("cite", [r"\cite{ghost}", r"\citep{ghost}", r"\citet*{ghost}", r"\citealt{ghost}",
                                  r"\citealp[see][p.~3]{ghost}", r"\Citet{ghost}", r"\Citep{ghost}",
                                  r"\citeauthor{ghost}", r"\citeyear{ghost}", r"\citeyearpar{ghost}",
                                  r"\nocite{ghost}", r"\cite {ghost}", r"\cite{zhang2023h2o, ghost}"])
def test_unknown_cites(cite):
    issues = [i for i in claims.check(f"As shown {cite}.", evidence()) if i.kind == "unknown_cite"]
    assert len(issues) == 1 and "'ghost'" in issues[0].message and "zhang2023h2o" in issues[0].message


def test_known_cites():
    assert kinds(r"As shown \citep{zhang2023h2o,li2024snapkv} and \citet{li2024snapkv}.") == set()


@pytest.mark.parametrize("text, typed", [("As Zhang et al. (2023) show.", "Zhang et al. (2023)"),
                                         ("As Zhang and Li 2023 show.", "Zhang and Li 2023"),
                                         ("As shown (Zhang, 2023).", "(Zhang, 2023)"),
                                         ("As shown [12].", "[12]"), ("As shown [12, 27].", "[12, 27]"),
                                         ("As Zhang et al. show.", "et al.")])
def test_text_citations(text, typed):
    assert ("text_citation", typed) in found(text)


def test_et_al_with_a_cite_is_fine():
    assert kinds(r"Zhang et al.~\cite{zhang2023h2o} evict tokens.") == set()


# ---- sentences --------------------------------------------------------------------------------------------------
def _sents(latex: str) -> list[str]:
    return [latex[a:b] for a, b in claims.sentences(latex)]


def test_sentence_boundaries_and_abbreviations():
    latex = (r"We compare methods, e.g. H2O, i.e. a baseline, as Zhang et al. \cite{zhang2023h2o} and "
             r"Li et~al.~\cite{li2024snapkv} did. See Fig.~\ref{f} vs. Tab.~\ref{t}, cf. Sec.~\ref{s} and "
             r"Eq.~\ref{e}. Ours reaches \val[2]{seeds:proposed:ppl}. Is it good? Yes! \val{count:seeds} seeds ran.")
    assert _sents(latex) == [
        r"We compare methods, e.g. H2O, i.e. a baseline, as Zhang et al. \cite{zhang2023h2o} and "
        r"Li et~al.~\cite{li2024snapkv} did.",
        r"See Fig.~\ref{f} vs. Tab.~\ref{t}, cf. Sec.~\ref{s} and Eq.~\ref{e}.",
        r"Ours reaches \val[2]{seeds:proposed:ppl}.", "Is it good?", "Yes!", r"\val{count:seeds} seeds ran."]


def test_sentences_do_not_split_inside_arguments_math_or_braces():
    latex = (r"A \val{pct(seeds:proposed:ppl, seeds:h2o:ppl)} drop. It says \quoted{zhang2023h2o}{by 5. Then} "
             r"here \cite{zhang2023h2o}. It works\footnote{First note. Second note.} well. We set $x. Y$ too. "
             r"\textbf{Result.} Next one.")
    assert _sents(latex) == [
        r"A \val{pct(seeds:proposed:ppl, seeds:h2o:ppl)} drop.",
        r"It says \quoted{zhang2023h2o}{by 5. Then} here \cite{zhang2023h2o}.",
        r"It works\footnote{First note. Second note.} well.", "We set $x. Y$ too.", r"\textbf{Result.}", "Next one."]


def test_sentences_blank_lines_items_headings_environments():
    latex = ("\\subsection{Setup}\nFirst para. It has\n\nno period\n\\begin{itemize}\n\\item One. Two.\n"
             "\\item Three.\n\\end{itemize}\nWe define\n\\begin{equation}\n  y = f(x). Z\n\\end{equation}\n"
             "as the map. % a comment. With more\nLast.\n"
             "\\begin{table}[t]\n\\begin{tabular}{lc} A. B & C \\\\ \\end{tabular}\n\n\\caption{Cap. More.}\n"
             "\\end{table}\nAfter.")
    assert _sents(latex) == [
        "\\subsection{Setup}", "First para.", "It has", "no period", "\\begin{itemize}", "\\item One.", "Two.",
        "\\item Three.", "\\end{itemize}", "We define\n\\begin{equation}\n  y = f(x). Z\n\\end{equation}\nas the map.",
        "Last.", "\\begin{table}[t]\n\\begin{tabular}{lc} A. B & C \\\\ \\end{tabular}\n\n\\caption{Cap. More.}\n"
        "\\end{table}", "After."]


def test_issue_sentence_is_its_sentence():
    latex = r"Fine here. Ours is 41.3 better. Fine again."
    (issue,) = claims.check(latex, evidence())
    assert latex[slice(*issue.sentence)] == "Ours is 41.3 better."


# ---- dropping ---------------------------------------------------------------------------------------------------
def test_drop_whole_sentences():
    latex = "Intro here. Bad 41.3 sentence. Good one.\n\nSecond para. Also 7 bad.\n"
    spans = sorted({i.sentence for i in claims.check(latex, evidence())})
    out, removed = claims.drop_sentences(latex, spans)
    assert out == "Intro here. Good one.\n\nSecond para. \n" or out == "Intro here. Good one.\n\nSecond para.\n"
    assert removed == ["Bad 41.3 sentence.", "Also 7 bad."]
    assert claims.check(out, evidence()) == []


def test_drop_keeps_latex_balanced():
    latex = ("Keep this. \\textbf{Bold 5 claim.} Keep too.\n\n\\begin{itemize}\n\\item Only item 5.\n"
             "\\end{itemize}\nAfter the list.")
    spans = sorted({i.sentence for i in claims.check(latex, evidence())})
    out, removed = claims.drop_sentences(latex, spans)
    assert "itemize" not in out and "After the list." in out and "Keep this. Keep too." in out
    assert removed == ["\\textbf{Bold 5 claim.}", "\\item Only item 5."]
    assert out.count("{") == out.count("}")


def test_drop_unbalanced_span_takes_its_paragraph():
    latex = "First para.\n\nPara two \\textbf{starts. Then} ends here. Another.\n\nLast para."
    a = latex.index("Para two")
    out, removed = claims.drop_sentences(latex, [(a, latex.index("starts.") + 7)])
    assert out == "First para.\n\nLast para." and removed == ["Para two \\textbf{starts. Then} ends here. Another."]
    env = "Intro.\n\n\\begin{itemize}\n\\item A.\n\n\\item B.\n\\end{itemize}\nTail.\n\nEnd."
    out, _ = claims.drop_sentences(env, [(env.index("\\begin"), env.index("\\begin") + 15)])
    assert out == "Intro.\n\nEnd."
    assert claims.drop_sentences("Only. ", []) == ("Only. ", [])


# ---- the PDF text -----------------------------------------------------------------------------------------------
def test_check_text():
    text = ("Section II. Results\nOur method reaches NUM perplexity, NUM× smaller than H2O (Zhang et al., NUM). "
            "On the A100 GPU\nit runs 41.3 ms faster, twice as fast. FIGURE NUM shows SmolLM2-\n135M on page iv. "
            "As Zhang et al. (2023) and [12] show. They used an H100 (Li et al., NUM). It is 3.5x. We use .5 and "
            "Llama-2-7B.")
    got = [(i.kind, text[i.start:i.end]) for i in claims.check_text(text, evidence())]
    assert ("digit", "41.3") in got and ("digit", "3.5x") in got and ("digit", ".5") in got
    assert ("digit", "2023") in got and ("text_citation", "Zhang et al. (2023)") in got
    assert ("text_citation", "[12]") in got and ("number_word", "twice") in got
    assert ("hardware", "A100") in got and ("hardware", "GPU") in got and ("model", "Llama-2-7B") in got
    assert not any(k == "hardware" and t == "H100" for k, t in got)  # a sentence with a rendered citation
    assert not any(t in ("NUM", "FIGURE", "II", "iv", "135M") for _, t in got)
    issue = next(i for i in claims.check_text(text, evidence()) if text[i.start:i.end] == "3.5x")
    assert text[slice(*issue.sentence)] == "It is 3.5x."


def test_attribution_of_comparisons_and_lists():
    listed = r"H2O and SnapKV reach \val{seeds:h2o:ppl} and \val{seeds:snapkv:ppl}, respectively."
    assert kinds(listed) == set()
    assert "attribution" in kinds(r"H2O and SnapKV reach \val{seeds:snapkv:ppl} and \val{seeds:h2o:ppl}.")
    same = r"Compared with H2O, ours reaches \val{seeds:proposed:ppl} and \val{seeds:proposed:kv_bytes}."
    assert kinds(same) == set()
    pct = r"\val{pct(seeds:proposed:ppl, seeds:h2o:ppl)}"
    assert ("attribution", pct) in found(f"Compared with SnapKV, ours improves perplexity by {pct}.")
    assert kinds(f"Ours improves perplexity over H2O by {pct}, and SnapKV trails.") == set()
    assert "attribution" in kinds(r"Ours is significantly better than SnapKV (p = \val{cmp:h2o:p}).")
    full = evidence(methods={"proposed", "h2o", "snapkv", "full"})
    assert "attribution" in kinds(r"The full cache reaches \val{seeds:snapkv:ppl}.", full)
    assert kinds(r"The full cache reaches \val{seeds:snapkv:ppl}.", full) == {"attribution"}


def test_model_families_without_a_size():
    assert ("model", "GPT-4") in found("We also ran GPT-4.")
    assert ("model", "Mistral") in found("Ours also works on Mistral.")
    assert "model" not in kinds("We opt for SmolLM2 here.")
    assert "model" not in kinds(r"GPT-4 was used there \cite{zhang2023h2o}.")


def test_attribution_by_the_name_after_the_value():
    full = evidence(methods={"proposed", "h2o", "snapkv", "full"})
    honest = (r"Our method reaches a perplexity of \val{seeds:proposed:ppl} against \val{seeds:h2o:ppl} for H2O and "
              r"\val{seeds:snapkv:ppl} for SnapKV.")
    assert kinds(honest, full) == set()
    diff = r"\val{diff(seeds:snapkv:ppl, seeds:proposed:ppl)}"
    assert kinds(f"Our perplexity is {diff} below SnapKV.", full) == set()
    assert "attribution" in kinds(r"Our method reaches \val{seeds:proposed:ppl} for SnapKV.", full)
    assert kinds(r"Ours reaches \val{seeds:proposed:ppl} against H2O.", full) == set()
    assert kinds(r"Ours reaches \val{seeds:snapkv:ppl} (SnapKV).", full) == set()


def test_descriptions_are_not_claims():
    assert kinds("Lower perplexity and lower memory are better.", evidence(ledger=Ledger.from_values([]))) == set()
    assert kinds(r"Table~\ref{tab:t} lists the paired tests against each baseline.") == set()
    assert "metric" in kinds("Ours uses less memory than H2O.", evidence(
        ledger=Ledger.from_values([v for v in VALUES if v.metric != "kv_bytes"])))


def test_field_methods_and_speed_claims():
    assert ("baseline", "Quest") in found("Ours beats Quest.")
    assert ("baseline", "EAGLE") in found("EAGLE lags behind ours.")
    assert "baseline" not in kinds("In the quest for a small cache, ours beats H2O.")
    no_speed = evidence(ledger=Ledger.from_values([v for v in VALUES if v.metric != "latency"]))
    for title in ("Speeding Up Decoding with Score Eviction", "Accelerating Decoding via Score Eviction",
                  "Low-Latency Decoding with Score Eviction", "Score Eviction: Higher Throughput at Small Cost",
                  "The smaller cache also cuts decoding time."):
        assert "metric" in kinds(title, no_speed), title
    assert kinds("In the quest for speed, we keep H2O.", no_speed) == set()


def test_lists_do_not_swallow_other_values():
    full = evidence(methods={"proposed", "h2o", "snapkv", "full"}, ledger=Ledger.from_values(VALUES + [
        _v("seeds:full:kv_bytes", 8.0, "kv_bytes", "mean", "result", ["full"], ["full"], unit="MiB")]))
    ratio = r"\val{ratio(seeds:full:kv_bytes, seeds:proposed:kv_bytes)}"
    assert kinds(rf"The full cache needs \val{{seeds:full:kv_bytes}}; ours needs \val{{seeds:proposed:kv_bytes}}, "
                 f"a ratio of {ratio}.", full) == set()
    assert kinds(r"Compared with SnapKV (\val{seeds:snapkv:ppl}), our method (\val{seeds:proposed:ppl}) has lower "
                 r"perplexity, and the paired test gives $p = \val{cmp:snapkv:p}$.", full) == set()
