"""references.bib comes from the run's paper store only; unknown cite keys are found and dropped."""

from agentlab.report.bib import build_bib, cited_keys, unknown_cites
from tests.report.scripted import load_ctx


def test_bib_has_every_paper_and_generates_missing_bibtex():
    bib, keys = build_bib(load_ctx()["papers"])
    assert list(keys) == ["park2023linear", "zevcevic2023causal", "stanley2016heat"]
    assert "@misc{stanley2016heat," in bib and "Heat-bath random walks with Markov bases" in bib
    assert "eprint = {1605.08386v1}" in bib and "Caprice Stanley and Tobias Windisch" in bib
    assert r"Ze{\v{c}}evi{\'c}" in bib  # given BibTeX kept as is


def test_given_bibtex_is_rekeyed_and_specials_escaped():
    papers = [{"id": "1", "title": "A & B: 50% of $x_1$", "authors": ["A. Author"], "year": 2020, "bibkey": "k1",
               "bibtex": "@article{otherkey,\n title={T},\n year={2020}\n}"},
              {"id": "2", "title": "A & B_2 {unbalanced", "authors": [], "bibkey": "k 2!"}]
    bib, keys = build_bib(papers)
    assert "@article{k1," in bib and "otherkey" not in bib
    assert list(keys) == ["k1", "k2"] and r"A \& B\_2 unbalanced" in bib


def test_unknown_cites_are_listed_in_every_variant():
    latex = r"See \cite{a,ghost} and \citet{ghost2} and \citep[p.~3]{a}, \cite {spaced} \Citealt*{b} \nocite{c}."
    assert cited_keys(latex) == ["a", "ghost", "ghost2", "spaced", "b", "c"]
    assert unknown_cites(latex, {"a"}) == ["ghost", "ghost2", "spaced", "b", "c"]


def test_given_bibtex_that_could_run_latex_is_rebuilt_from_metadata():
    """BibTeX copies fields and @preamble into the .bbl, which LaTeX reads: only plain entries are kept."""
    evil = ["@misc{x, title={\\input{/etc/shadow}}}",
            "@misc{x, title={T}}\n@preamble{\"\\csname input\\endcsname{/etc/shadow}\"}",
            "@misc{x, title={\\^^69nput{/etc/shadow}}}"]
    for given in evil:
        bib, _ = build_bib([{"id": "1", "title": "Safe title", "bibkey": "k", "bibtex": given,
                             "url": "http://x.org/\\input{/etc/shadow}"}])
        assert "{/etc/shadow}" not in bib and "\\" not in bib and "csname" not in bib and "Safe title" in bib
    assert cited_keys(r"\citealt{a} \Citet{b} \citeyearpar{c}") == ["a", "b", "c"]


def test_metadata_entry_marks_only_arxiv_ids_as_eprints():
    """The one builder asks the one arXiv-id helper: local/other ids get no arXiv eprint; prefixed,
    URL and old-style arXiv ids are normalised."""
    papers = [{"id": "local:vaswani", "title": "Attention", "bibkey": "vaswani"},
              {"id": "arxiv:2311.03658v2", "title": "Linear", "bibkey": "park"},
              {"id": "https://arxiv.org/abs/astro-ph/0601001", "title": "Old", "bibkey": "old",
               "primary_category": "astro-ph"},
              {"id": "semantic_scholar:649def34", "title": "S2", "bibkey": "s2", "doi": "10.5555/1{\\x}"}]
    bib, keys = build_bib(papers)
    entries = bib.split("\n\n")
    assert list(keys) == ["vaswani", "park", "old", "s2"]
    assert "eprint" not in entries[0] and "arXiv" not in entries[0]
    assert "eprint = {2311.03658v2}" in entries[1] and "archivePrefix = {arXiv}" in entries[1]
    assert "eprint = {astro-ph/0601001}" in entries[2] and "primaryClass = {astro-ph}" in entries[2]
    assert "doi = {10.5555/1x}" in entries[3] and "eprint" not in entries[3]
