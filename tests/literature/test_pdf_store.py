"""Real PDFs from fixtures -> text -> chunks with stable ids -> the SQLite paper store; BibTeX; local folder."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

from agentlab.literature.arxiv_source import bibtex_for
from agentlab.literature.local import parse_bibtex, scan_dir
from agentlab.literature.pdftext import PdfError, chunk_text, estimate_tokens, pdf_to_text
from agentlab.literature.store import PaperStore
from tests.literature.fixture_paths import HAVE_PDFS, PDFS

pytestmark = pytest.mark.skipif(not HAVE_PDFS, reason="real PDF fixtures not available")

SHARED_TEXT = Path("/work/shared/fixtures/paper_text/2304.02623v1.symbols.txt")


@pytest.fixture(scope="module")
def texts() -> dict[str, str]:
    return {p.name: pdf_to_text(p.read_bytes()) for p in sorted(PDFS.glob("*.pdf"))}


def test_real_pdfs_give_their_title_and_sentences(texts):
    beyond = texts["2304.02623v1.pdf"]
    assert beyond.startswith("Beyond Summarization:")
    assert "In this position paper, we argue that developing AI supports for expository writing" in beyond
    attention = texts["attention_is_all_you_need_neurips2017.pdf"]
    assert attention.startswith("Attention Is All You Need")
    assert "We propose a new simple network architecture, the Transformer, based solely on attention mechanisms" in attention
    assert "significantly" in attention  # the "ﬁ" ligature is normalised
    pasa = texts["2501.10120v1_pasa.pdf"]
    assert pasa.startswith("PaSa: An LLM Agent for Comprehensive Academic Paper Search")
    assert "two LLM agents: the Crawler and the Selector" in " ".join(pasa.split())


def test_hyphenated_line_breaks_are_joined(texts):
    beyond = " ".join(texts["2304.02623v1.pdf"].split())
    assert "leveraging this new technology can transform writing" in beyond  # "tech-\nnology" in the PDF


@pytest.mark.skipif(not SHARED_TEXT.exists(), reason="shared papermage text not available")
def test_words_match_papermage_ground_truth(texts):
    ours = set(re.findall(r"[a-z]{4,}", texts["2304.02623v1.pdf"].lower()))
    truth = set(re.findall(r"[a-z]{4,}", SHARED_TEXT.read_text().lower()))
    assert len(ours & truth) / len(truth) > 0.9


def test_chunks_are_bounded_stable_and_cover_the_text(texts):
    text = texts["2501.10120v1_pasa.pdf"]
    a, b = chunk_text(text, 200), chunk_text(text, 200)
    assert [c.id for c in a] == list(range(len(a))) and len(a) > 20
    assert [c.text for c in a] == [c.text for c in b]
    assert max(c.tokens for c in a) <= 200
    assert all(c.tokens == estimate_tokens(c.text) for c in a)
    joined = " ".join(" ".join(c.text for c in a).split())
    assert "two LLM agents: the Crawler and the Selector" in joined


def test_broken_pdfs_raise_pdf_error(tmp_path):
    with pytest.raises(PdfError, match="not a PDF"):
        pdf_to_text(b"<html>404</html>")
    with pytest.raises(PdfError):
        pdf_to_text(b"%PDF-1.4\nthis is not really a pdf at all")
    truncated = (PDFS / "2304.02623v1.pdf").read_bytes()[:5000]
    with pytest.raises(PdfError):
        pdf_to_text(truncated)


def test_store_roundtrip_and_rechunk(tmp_path, texts):
    path = tmp_path / "papers.sqlite"
    store = PaperStore(path, chunk_tokens=256)
    n = store.put({"id": "2304.02623v1", "title": "Beyond Summarization"}, texts["2304.02623v1.pdf"], full_text=True)
    assert n == store.n_chunks("2304.02623v1") > 5
    assert store.meta("2304.02623v1") == {"id": "2304.02623v1", "title": "Beyond Summarization", "full_text": True}
    assert store.chunk("2304.02623v1", 0).text.startswith("Beyond Summarization")
    assert store.has("2304.02623v1", full_text=True) and not store.has("nope")
    again = PaperStore(path, chunk_tokens=256)
    assert [c.text for c in again.chunks("2304.02623v1")] == [c.text for c in store.chunks("2304.02623v1")]
    finer = PaperStore(path, chunk_tokens=128)
    assert finer.n_chunks("2304.02623v1") > n


def test_bibtex_from_metadata():
    bib = bibtex_for({"id": "2306.14048v3", "title": "H$_2$O: Heavy-Hitter Oracle & more", "year": 2023,
                      "authors": ["Zhenyu Zhang", "Ying Sheng"], "primary_category": "cs.LG", "bibkey": "zhang2023heavy"})
    assert bib.startswith("@misc{zhang2023heavy,")
    assert "eprint = {2306.14048}" in bib and "primaryClass = {cs.LG}" in bib and "archivePrefix = {arXiv}" in bib
    assert "author = {Zhenyu Zhang and Ying Sheng}" in bib and "year = {2023}" in bib
    assert r"\&" in bib and r"H\$" in bib  # special characters escaped
    assert parse_bibtex(bib)[0]["eprint"] == "2306.14048"


BIB = """@misc{vaswani2017attention,
      title={Attention Is All You Need},
      author={Ashish Vaswani and Noam Shazeer and Niki Parmar},
      year={2017},
      eprint={1706.03762},
      archivePrefix={arXiv},
      primaryClass={cs.CL},
      file = {:attention_is_all_you_need_neurips2017.pdf:PDF}
}
@inproceedings{nopdf2024,
  title = {A Paper {Without} a PDF},
  author = "Jane Doe",
  year = 2024,
  abstract = {We only have the abstract.},
}
"""


def test_local_folder_pairs_bibtex_with_pdfs(tmp_path):
    shutil.copy(PDFS / "attention_is_all_you_need_neurips2017.pdf", tmp_path)
    shutil.copy(PDFS / "2304.02623v1.pdf", tmp_path)
    (tmp_path / "list.bib").write_text(BIB)
    found = {p["id"]: (p, pdf) for p, pdf in scan_dir(tmp_path)}
    assert set(found) == {"1706.03762", "local:nopdf2024", "2304.02623v1"}
    paper, pdf = found["1706.03762"]
    assert pdf.name == "attention_is_all_you_need_neurips2017.pdf" and paper["authors"][1] == "Noam Shazeer"
    assert paper["year"] == 2017 and paper["primary_category"] == "cs.CL"
    assert found["local:nopdf2024"][1] is None and found["local:nopdf2024"][0]["title"] == "A Paper Without a PDF"
    assert found["2304.02623v1"][1].name == "2304.02623v1.pdf"


def test_text_only_cache_store_never_chunks(tmp_path, texts):
    cache = PaperStore(tmp_path / "cache.sqlite", chunk_tokens=None)
    assert cache.put({"id": "x"}, texts["2304.02623v1.pdf"], full_text=True) == 0
    assert cache.text("x").startswith("Beyond Summarization") and cache.chunks("x") == []
