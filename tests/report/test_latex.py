"""LaTeX helpers: sanitising model LaTeX, finding the section of an error, the log excerpt."""

from agentlab.report.latex import log_error, render, sanitize, tex_escape
from agentlab.report.writer import plain_text, section_at


def test_sanitize_removes_file_access_and_macro_definitions():
    latex, problems = sanitize(r"\section{Results} We read \input{/etc/passwd} and \def\x{1} \write18{rm}.")
    assert not latex.startswith(r"\section") and r"\input" not in latex and r"\def" not in latex
    assert r"\write18" not in latex and len(problems) == 3


def test_sanitize_fixes_what_models_often_get_wrong():
    latex, _ = sanitize("memory falls 75% to ≈ 12.5 MB, 4× smaller")
    assert latex == r"memory falls 75\% to $\approx$ 12.5 MB, 4$\times$ smaller"


def test_escape_and_latex_safe_template_delimiters():
    assert tex_escape("a_b & 50% {x}") == r"a\_b \& 50\% \{x\}"
    tex = render("partials/table.tex.j2", caption="C", label="tab:t1", align="lr", header=["a", "b"],
                 rows=[["x", "1"], ["y", "2"]])
    assert r"\toprule" in tex and r"x & 1 \\" in tex and r"\label{tab:t1}" in tex and "%#" not in tex


def test_error_line_maps_to_its_section():
    tex = "\\documentclass{article}\n% agentlab-section-begin: method\nbad \\foo\n% agentlab-section-end: method\n"
    assert section_at(tex, 3) == "method" and section_at(tex, 1) is None and section_at(tex, None) is None
    log = "junk\n./main.tex:3: Undefined control sequence.\nl.3 bad \\foo\n"
    excerpt, line = log_error(log)
    assert line == 3 and excerpt.startswith("./main.tex:3: Undefined control sequence.")


def test_plain_text_fallback_keeps_the_words():
    got = plain_text(r"\textbf{Perplexity} is \val[2]{seeds:h2o:ppl} \cite{k}, 50\% lower % a comment 41.3" "\nnext")
    assert got == r"Perplexity is \val[2]{seeds:h2o:ppl} , 50 \% lower next"  # the reference survives, the comment not
