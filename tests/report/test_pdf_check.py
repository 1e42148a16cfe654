"""The check build (docs/integrity.md): every number code renders prints digit-free in check.tex, so a digit
left in its PDF text was typed by the writer. Real latexmk/bibtex and pdftotext; builds shared per module."""

import shutil
import subprocess
from pathlib import Path

import pytest

from agentlab.report import pdf_check
from agentlab.report.bib import build_bib
from agentlab.report.figures import build_figure, build_table, datasets
from agentlab.report.latex import compile_pdf, render
from agentlab.report.pdf_check import (
    CHECK_BIB,
    bbl_keys,
    check_bib,
    check_build,
    digit_tokens,
    pdf_text,
    scan,
    section_of,
    verify_bibliography,
    wrap_numbers,
)
from agentlab.report.schemas import SECTION_TITLES, SECTIONS, FigureSpec, TableSpec
from tests.report.scripted import load_ctx

TEMPLATES = Path(__file__).resolve().parents[2] / "templates"
KEYS = ("park2023linear", "zevcevic2023causal")
CLEAN = {
    "abstract": r"We study cache eviction; the proposed method reaches a perplexity of \agentlabnum{41.3}.",
    "introduction": (r"Eviction keeps memory small \citep{park2023linear}. \citet{zevcevic2023causal} disagree."
                     "\n\\subsection{Scope} We use fp16 weights, an A100 and SmolLM2-135M.\\footnote{A note.}"),
    "method": ("The score is\n\\begin{equation}s = \\alpha \\cdot \\frac{a}{b}\\label{eq:s}\\end{equation}\n"
               "\\begin{enumerate}\\item score\\item evict\\end{enumerate} See Equation~\\eqref{eq:s}."),
    "experimental_setup": r"Section~\ref{sec:res} reports the runs of Table~\ref{tab:t1}.",
    "results": (r"\label{sec:res}Table~\ref{tab:t1} and Figure~\ref{fig:f1} show it, page~\pageref{tab:t1}; "
                r"$p=\agentlabnum{$2.2\times 10^{-11}$}$, \agentlabnum{4.00$\times$} smaller, \agentlabnum{2.4\%}."),
    "conclusion": r"Eviction helps \cite{park2023linear,zevcevic2023causal}.",
}
TYPED = {
    "method": r"We set $k=4$ and keep the rest.",
    "results": r"Latency falls to 41.3 ms with the proposed method.",
    "discussion": r"It is .953 of the reference, about 2nd best.",
}


def make_report(out: Path, template: str, texts: dict[str, str], table_caption: str = "Final comparison",
                title: str = "Eviction without regret") -> Path:
    """A report directory like writer._render leaves it: main.tex and check.tex of `template`, tables/,
    figures/, references.bib from the fixture's papers, the template's .sty."""
    ctx = load_ctx(out / "run")
    data = datasets(ctx)
    (out / "tables").mkdir(parents=True)
    tex, _ = build_table(TableSpec(source="stage.seeds", caption=table_caption), data, 1)
    (out / "tables" / "t1.tex").write_text(tex)
    tex, _ = build_table(TableSpec(source="analysis.comparisons", caption="from results 2 (95 %)"), data, "cmp",
                         code_caption=True)
    (out / "tables" / "cmp.tex").write_text(tex)
    fig = build_figure(FigureSpec(kind="bar", source="analysis.comparisons", x="baseline", y=["diff"],
                                  caption="Difference by baseline"), data, 1, out / "figures")
    papers = [{**p, "bibtex": p.get("bibtex", "").replace("year={2023}", "year = 2023")} for p in ctx["papers"]]
    bib, _ = build_bib(papers)  # a bare year too: references-check.bib braces its letters
    assert "year = 2023" in bib
    (out / "references.bib").write_text(bib)
    for sty in (TEMPLATES / template).glob("*.sty"):
        shutil.copy(sty, out / sty.name)
    body = [{"name": n, "title": SECTION_TITLES[n], "latex": texts.get(n, "Nothing to add.")} for n in SECTIONS]
    for name, check in (("main.tex", False), ("check.tex", True)):
        (out / name).write_text(render(f"{template}/main.tex.j2", title=title, revision=2, abstract=texts["abstract"],
                                       sections=body, tables=["t1", "cmp"], figures=[fig], cited=True, check=check))
    return out


@pytest.fixture(scope="module")
def clean(tmp_path_factory):
    """A clean report per template: its check build, and (article) its main build."""
    built = {}
    for template in ("article", "conference"):
        out = make_report(tmp_path_factory.mktemp(template), template, CLEAN)
        built[template] = {"out": out, "check": check_build(out, 120)}
    built["article"]["main"] = compile_pdf(built["article"]["out"], 120)
    return built


@pytest.fixture(scope="module")
def typed(tmp_path_factory):
    out = make_report(tmp_path_factory.mktemp("typed"), "article", {**CLEAN, **TYPED},
                      table_caption="Perplexity at 8x compression")
    return check_build(out, 120)


@pytest.mark.parametrize("template", ["article", "conference"])
def test_a_clean_reports_check_build_has_no_digit(clean, template):
    res = clean[template]["check"]
    assert res.ok, res.log_excerpt
    assert res.findings == [], [(f.section, f.token, f.context) for f in res.findings]
    text = " ".join(res.text.split())
    assert ("Revision NUM" in text) == (template == "article")
    for words in ("reaches a perplexity of NUM.", "Table I:", "Figure I:", "FIGURE", "V Results",
                  "(Park et al., cacd)", "et al. (cacd) disagree", "SmolLM2-135M", "References"):
        assert words in text, words
    assert "NUM NUM" in text  # the table cells
    assert {n for _, n in pdf_check._headings(res.text, SECTION_TITLES)} == {"title", *SECTIONS, "references"}
    assert (clean[template]["out"] / CHECK_BIB).exists()


def test_the_main_build_prints_the_numbers_and_reads_the_real_bibliography(clean):
    main = clean["article"]["main"]
    assert main.ok, main.log_excerpt
    text = " ".join(pdf_text(main.pdf).split())
    assert "Revision 2" in text and "perplexity of 41.3." in text and "[1]" in text and "2023" in text
    assert "p = 2.2 × 10−11 , 4.00× smaller, 2.4%." in text and "Table 1:" in text and "1 Introduction" in text and "from results 2 (95 %)" in text
    assert sorted(bbl_keys(main.bbl)) == sorted(KEYS) and main.undefined_citations == []
    bib = (clean["article"]["out"] / "references.bib").read_text()
    assert main.bib_after == bib
    assert verify_bibliography(main.bbl, set(KEYS), set(KEYS), bib, main.bib_after) == []


def test_typed_numbers_are_found_in_their_section(typed):
    assert typed.ok, typed.log_excerpt
    found = {(f.section, f.token) for f in typed.findings}
    assert found == {("method", "4"), ("results", "41.3"), ("discussion", ".953"), ("discussion", "2nd"),
                     ("caption", "8x")}, [(f.section, f.token, f.context) for f in typed.findings]
    f = next(f for f in typed.findings if f.token == "41.3")
    assert "Latency falls to 41.3 ms" in f.context and len(f.context) < 80


def test_verify_bibliography_names_every_mismatch(clean):
    main = clean["article"]["main"]
    bib = (clean["article"]["out"] / "references.bib").read_text()
    problems = verify_bibliography(main.bbl, {KEYS[0], "ghost2020"}, {KEYS[0], "ghost2020"}, bib, bib + "%")
    assert problems == [f"bibliography entry {KEYS[1]!r} is not a paper of this run",
                        "cited key 'ghost2020' is missing from the bibliography",
                        "references.bib was changed by the build"]
    assert verify_bibliography(main.bbl, {KEYS[0]}, set(KEYS), bib, bib) == [
        f"bibliography entry {KEYS[1]!r} is not cited in the text"]


def document(out: Path, body: str) -> Path:
    out.mkdir(parents=True)
    (out / "references.bib").write_text(build_bib(load_ctx()["papers"])[0])
    secs = [{"name": "results", "title": "Results", "latex": body}]
    (out / "main.tex").write_text(render("article/main.tex.j2", title="T", revision=1, abstract="A.", sections=secs,
                                         tables=[], figures=[], cited=True))
    return out


def test_an_undefined_citation_fails_the_compile_and_names_the_key(tmp_path):
    out = document(tmp_path / "r", "Known \\cite{park2023linear}.\n\nUnknown \\citep{made2024up}.")
    res = compile_pdf(out, 120)
    assert not res.ok and res.pdf is None and res.undefined_citations == ["made2024up"]
    assert "made2024up" in res.log_excerpt and res.error_line is not None
    assert "made2024up" in (out / "main.tex").read_text().splitlines()[res.error_line - 1]
    assert bbl_keys(res.bbl) == ["park2023linear"]


def test_a_build_that_rewrites_references_bib_is_caught(tmp_path):
    """What the sanitizer stops, if it got through: the section writes references.bib before bibtex reads it."""
    evil = "@misc{evil2024, title={Made up}, author={Nobody}, year={2024}}"
    body = (f"\\immediate\\openout5=references.bib \\immediate\\write5{{{evil}}}\\immediate\\closeout5 "
            "See \\cite{evil2024}.")
    out = document(tmp_path / "r", body)
    bib = (out / "references.bib").read_text()
    res = compile_pdf(out, 120)
    problems = verify_bibliography(res.bbl, {"evil2024"}, set(KEYS), bib, res.bib_after)
    assert "bibliography entry 'evil2024' is not a paper of this run" in problems
    assert "references.bib was changed by the build" in problems
    assert (out / "references.bib").read_text() == bib  # the build directory's copy, never the report's


# ---- the pieces, without LaTeX -------------------------------------------------------------------

def test_digit_tokens():
    text = ("at 41.3 and 41.3ms, 3.2X (.953) 1e-3 2nd; k=4, 10-20 runs, 95% of H2O fp16 A100 SmolLM2-135M "
            "Llama-2-7B v1.5 NUM. NUM3 NUM.5 x-4 Ends 7.")
    assert [t for _, _, t in digit_tokens(text)] == ["41.3", "41.3ms", "3.2X", ".953", "1e-3", "2nd", "4", "10-20",
                                                     "95%", "3", ".5", "7"]
    s, e, tok = digit_tokens("x (12.5)")[0]
    assert (s, e, tok) == (3, 7, "12.5")


def test_section_of_reads_the_check_builds_headings():
    text = ("My Title 3\nAgentLab\nRevision NUM\n\nAbstract\nWe find 2.\n\nI\n\nIntroduction\n\nIntro 5.\n\n"
            "I.i\n\nMethod\n\nA subsection 4.\n\nII\n\n(i)\n\nTable I: At 8x\nnext line 9\n\nNUM\n\nMethod\n\n"
            "The method 6.\n\nIII Results\nRes 1.\nReferences\nA. Author. cacd.\n")
    titles = {"abstract": "Abstract", "introduction": "Introduction", "method": "Method", "results": "Results"}
    got = [(f.section, f.token) for f in scan(text, titles)]
    assert got == [("title", "3"), ("abstract", "2"), ("introduction", "5"), ("introduction", "4"),
                   ("caption", "8x"), ("caption", "9"), ("method", "6"), ("results", "1")]
    assert section_of(text, text.index("cacd"), titles) == "references"
    assert section_of("no headings 4", 12, titles) is None


def test_check_bib_replaces_digits_of_values_only():
    bib = ("@article{park2023linear,\n  title={The {3D} case},\n  journal={arXiv:2311.03658},\n  year=2023,"
           " month = jan,\n  note = \"v2\" # 7\n}\n@misc(k1, year = 1999, pages={1--2})\n")
    got = check_bib(bib)
    assert got == ("@article{park2023linear,\n  title={The {dD} case},\n  journal={arXiv:cdbb.adgfi},\n"
                   "  year={cacd}, month = jan,\n  note = \"vc\" # {h}\n}\n@misc(k1, year = {bjjj}, pages={b--c})\n")


def test_bbl_keys_reads_labels_with_brackets_and_braces():
    bbl = ("\\begin{thebibliography}{2}\n\\bibitem[{Park et~al.(2023)}]{park2023linear}\nx\n"
           "\\bibitem[Ze{\\v{c}}evi{\\'c} et~al.(2023)Ze{\\v{c}}evi{\\'c}, Willig, and\n  Kersting]{zev}\ny\n"
           "\\bibitem{plain}\n")
    assert bbl_keys(bbl) == ["park2023linear", "zev", "plain"]


def test_wrap_numbers_and_pdf_text_without_pdftotext(monkeypatch, tmp_path):
    assert wrap_numbers(r"95 \% from stage-2/r.json") == r"\agentlabnum{95} \% from stage-\agentlabnum{2}/r.json"
    monkeypatch.setattr(pdf_check.shutil, "which", lambda name: None)
    assert pdf_text(tmp_path / "x.pdf") == ""


def test_pdf_text_is_bounded(tmp_path):
    pdf = tmp_path / "s.pdf"
    (tmp_path / "s.tex").write_text("\\documentclass{article}\\begin{document}" + "word " * 3000 + "\\end{document}\n")
    subprocess.run(["pdflatex", "-interaction=nonstopmode", "s.tex"], cwd=tmp_path, capture_output=True, check=True)
    assert len(pdf_text(pdf)) > 10000 and len(pdf_text(pdf, cap=100).encode()) <= 100
