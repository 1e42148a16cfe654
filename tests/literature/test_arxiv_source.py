"""The real `arxiv` client against the fake Atom server (recorded real responses), and PDF downloads."""

from __future__ import annotations

import pytest

from agentlab.literature import arxiv_source as ax
from tests.fakes.arxiv_server import FakeArxiv
from tests.literature.fixture_paths import HAVE_PDFS, PDFS


def test_search_returns_paper_dicts(arxiv_server):
    client = ax.make_client(arxiv_server.url, 0)
    papers = ax.search(client, "testing", 12)
    assert len(papers) == 12  # two pages of the recorded feed
    p = papers[0]
    assert p["id"] == "2202.12139v1" and p["title"].startswith("Testing Deep Learning Models")
    assert p["year"] == 2022 and p["primary_category"] == "cs.SE" and p["authors"][0] == "Mohit Kumar Ahuja"
    assert p["bibkey"] == "ahuja2022testing"
    assert "@misc{ahuja2022testing" in ax.bibtex_for(p)
    assert "search_query=all%3Atesting" in arxiv_server.requests[0]  # keywords become all:... terms


def test_plain_keywords_become_an_explicit_arxiv_query():
    assert ax.to_arxiv_query("KV cache long-context") == 'all:KV AND all:cache AND all:"long-context"'
    assert ax.to_arxiv_query("ti:H2O AND abs:eviction") == "ti:H2O AND abs:eviction"


def test_id_lookup_and_missing_ids(arxiv_server):
    client = ax.make_client(arxiv_server.url, 0)
    (p,) = ax.search_ids(client, ["1605.08386"])
    assert p["primary_category"] == "math.CO"
    assert ax.search_ids(client, ["0808.05394", "1707.08567"])[0]["id"].startswith("1707.08567")


def test_unreachable_arxiv_raises_literature_unavailable():
    with FakeArxiv(fail_with=503) as fa:
        client = ax.make_client(fa.url, 0)
        with pytest.raises(ax.LiteratureUnavailable, match="resume"):
            ax.search(client, "kv cache", 5)
    client = ax.make_client("http://127.0.0.1:9/api/query", 0)  # nothing listens on port 9
    with pytest.raises(ax.LiteratureUnavailable, match="127.0.0.1:9"):
        ax.search(client, "kv cache", 5)


@pytest.mark.skipif(not HAVE_PDFS, reason="real PDF fixtures not available")
def test_pdf_download_ok_404_and_timeout():
    with FakeArxiv(pdfs={"2304.02623v1": PDFS / "2304.02623v1.pdf", "slow": PDFS / "2304.02623v1.pdf"},
                   pdf_delays={"slow": 2.0}) as fa:
        url = ax.pdf_url_for({"id": "2304.02623v1", "pdf_url": "https://arxiv.org/pdf/2304.02623v1"}, fa.url)
        assert url.startswith("http://127.0.0.1:") and url.endswith("/pdf/2304.02623v1")
        assert ax.download_pdf(url, 10).startswith(b"%PDF")
        with pytest.raises(ax.DownloadError, match="HTTP 404"):
            ax.download_pdf(url.replace("2304.02623v1", "9999.99999"), 10)
        with pytest.raises(ax.DownloadError, match="timed out"):
            ax.download_pdf(url.replace("2304.02623v1", "slow"), 0.3)


def test_pdf_url_on_real_arxiv_uses_the_feed_link():
    paper = {"id": "2304.02623v1", "pdf_url": "https://arxiv.org/pdf/2304.02623v1"}
    assert ax.pdf_url_for(paper, "https://export.arxiv.org/api/query") == "https://arxiv.org/pdf/2304.02623v1"
    assert ax.pdf_url_for(paper, "https://export.arxiv.org/api/query", "http://mirror/pdf") == "http://mirror/pdf/2304.02623v1"


def test_throttle_spaces_requests(monkeypatch):
    slept = []
    monkeypatch.setattr(ax.time, "sleep", lambda s: slept.append(s))
    t = ax.Throttle(3.0)
    t.wait()
    t.wait()
    assert slept and 2.9 < slept[0] <= 3.0
