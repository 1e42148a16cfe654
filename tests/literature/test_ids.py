"""Paper ids (the one arXiv-id helper and the source-qualified scheme), how settings map to sources,
and the guard on a local folder's own BibTeX."""

from __future__ import annotations

import pytest

from agentlab.config import Settings
from agentlab.literature.bibtex import parse_bibtex
from agentlab.literature.ids import (
    ArxivId,
    arxiv_base,
    dedup_key,
    find_arxiv,
    normalize_id,
    parse_arxiv,
    qualify,
    split_id,
)
from agentlab.literature.local import LocalSource
from agentlab.literature.paper_source import PAPER_SOURCES, SourceContext, configured_sources
from agentlab.registry import UnknownName


@pytest.mark.parametrize("ref, want", [
    ("2202.12139v1", ArxivId("2202.12139", 1)),
    ("2104.12255", ArxivId("2104.12255")),
    ("0704.0001", ArxivId("0704.0001")),  # the first new-style id (4 digits)
    ("arXiv:2311.03658", ArxivId("2311.03658")),
    ("arxiv:2502.15920v3", ArxivId("2502.15920", 3)),
    ("https://arxiv.org/abs/2304.02623v1", ArxivId("2304.02623", 1)),
    ("https://arxiv.org/pdf/2304.02623v1.pdf", ArxivId("2304.02623", 1)),
    ("http://export.arxiv.org/abs/hep-th/9901001v2", ArxivId("hep-th/9901001", 2)),
    ("10.48550/arXiv.2502.15920", ArxivId("2502.15920")),
    ("astro-ph/0601001", ArxivId("astro-ph/0601001")),
    ("quant-ph/0201082v1", ArxivId("quant-ph/0201082", 1)),
    ("math.CO/0601001", ArxivId("math.CO/0601001")),
])
def test_parse_arxiv_forms(ref, want):
    assert parse_arxiv(ref) == want
    assert arxiv_base(ref) == want.base and dedup_key(ref) == want.base


@pytest.mark.parametrize("ref", ["abc", "0000.0000", "2213.00001", "local:2304.02623", "1", "", "foo/0601001",
                                 "10.1145/3292500.3330701", "2304.02623v1_pasa"])
def test_not_arxiv_ids(ref):
    assert parse_arxiv(ref) is None


def test_find_arxiv_in_text():
    assert str(find_arxiv("2501.10120v1_pasa")) == "2501.10120v1"  # a file stem
    assert str(find_arxiv("journal = {arXiv preprint arXiv:2311.03658}")) == "2311.03658"
    assert str(find_arxiv("see http://arxiv.org/abs/astro-ph/0601001v1.")) == "astro-ph/0601001v1"
    assert find_arxiv("doi 10.1145/3292500.3330701, p. 1234.5") is None
    assert find_arxiv("x2304.02623") is None


def test_qualified_scheme_keeps_arxiv_ids_bare():
    assert qualify("arxiv", "arXiv:2202.12139v1") == "2202.12139v1"
    assert qualify("local", "vaswani") == "local:vaswani" == qualify("local", "local:vaswani")
    assert split_id("local:vaswani") == ("local", "vaswani")
    assert split_id("semantic_scholar:649def34") == ("semantic_scholar", "649def34")
    assert split_id("2202.12139v1") == ("arxiv", "2202.12139v1") == split_id("arxiv:2202.12139v1")
    assert split_id("k1") == (None, "k1")
    assert normalize_id("https://arxiv.org/abs/2202.12139v1") == "2202.12139v1"
    assert dedup_key("arxiv:2202.12139v2") == dedup_key("2202.12139") == "2202.12139"
    assert dedup_key("local:vaswani") == "local:vaswani"


def test_existing_settings_map_to_sources(tmp_path):
    assert configured_sources(Settings()) == ["arxiv"]
    assert configured_sources(Settings(offline=True)) == ["cache"]
    assert configured_sources(Settings(papers_dir=str(tmp_path), offline=True)) == ["local"]
    assert PAPER_SOURCES.names()[:3] == ["arxiv", "local", "cache"]
    with pytest.raises(UnknownName, match="arxiv, local, cache"):
        PAPER_SOURCES.get("nope")


def test_local_source_keeps_a_plain_bibtex_entry_and_rebuilds_a_hostile_one(tmp_path):
    (tmp_path / "list.bib").write_text(
        "@inproceedings{doe2024, title={A {Plain} Paper}, author={Jane Doe}, booktitle={Proc. X}, year={2024}}\n"
        "@misc{evil2024, title={\\input{/etc/shadow}}, author={Eve}, year={2024}}\n")
    src = LocalSource(SourceContext(Settings(papers_dir=str(tmp_path)), None, "local"))
    found = {p["id"]: p for p in src.search([], 10)}
    assert set(found) == {"local:doe2024", "local:evil2024"}
    plain = src.bibtex(found["local:doe2024"], "doe2024a")
    assert plain.startswith("@inproceedings{doe2024a,") and "booktitle={Proc. X}" in plain
    rebuilt = src.bibtex(found["local:evil2024"], "evil2024")
    assert rebuilt.startswith("@misc{evil2024,") and "\\" not in rebuilt and "{/etc/shadow}" not in rebuilt
    assert parse_bibtex(rebuilt)[0]["author"] == "Eve" and "eprint" not in parse_bibtex(rebuilt)[0]
    assert src.fetch_text(found["local:doe2024"]) == (None, "no PDF for this BibTeX entry in --papers")
