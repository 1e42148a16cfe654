"""A new literature source is one class plus one registry entry (or one entry point): a tiny "fake
Semantic Scholar" defined here, served over real HTTP on 127.0.0.1, registered, configured next to
arXiv, and run through the literature step the phase node calls (`run_literature_review`)."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from urllib.parse import parse_qs, quote, urlparse

import pytest

from agentlab.config import Settings
from agentlab.literature.bibtex import parse_bibtex
from agentlab.literature.paper_source import PAPER_SOURCES, BaseSource, PaperSource, Sources, SourceSkipped
from agentlab.literature.pdftext import PdfError, pdf_to_text
from agentlab.literature.review import run_literature_review
from agentlab.llm import LLM, Ledger
from agentlab.retrieval import open_store
from agentlab.runs import RunDir
from tests.fakes.arxiv_server import FakeArxiv
from tests.fakes.loopback import LoopbackServer, send
from tests.literature.fixture_paths import HAVE_PDFS, PDFS
from tests.retrieval.scripted_coc import install

pytestmark = pytest.mark.skipif(not HAVE_PDFS, reason="real PDF fixtures not available")
IDEA = "testing deep learning models for robustness"
S2_ONLY = "649def34f8be52c8b66281af98ae884c09aef38b"
RECORDS = [
    {"paperId": S2_ONLY, "title": "Robustness Testing of Deep Learning Models: Attention Is All You Need",
     "abstract": "We study testing deep learning models for robustness with attention-only Transformer models.",
     "year": 2017, "authors": [{"authorId": "1", "name": "Ashish Vaswani"}, {"authorId": "2", "name": "Noam Shazeer"}],
     "externalIds": {"DOI": "10.5555/3295222.3295349"}, "openAccessPdf": {"url": "/pdf/" + S2_ONLY}},
    {"paperId": "0b1e2c3d", "title": "Testing Deep Learning Models: A First Comparative Study",
     "abstract": "The same paper arXiv also returns.", "year": 2022, "authors": [{"name": "Mohit Kumar Ahuja"}],
     "externalIds": {"ArXiv": "2202.12139"}, "openAccessPdf": None},
]


# ---- the fake service ------------------------------------------------------------------------------
@dataclass
class FakeS2(LoopbackServer):
    """`GET /graph/v1/paper/search?query=...&limit=...` -> {"total", "data": [...]}; `/pdf/<paperId>`."""

    pdfs: dict[str, Path] = field(default_factory=dict)
    requests: list[str] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *a):
                pass

            def do_GET(self):
                owner.requests.append(self.path)
                u = urlparse(self.path)
                if u.path.startswith("/pdf/") and u.path[5:] in owner.pdfs:
                    send(self, 200, owner.pdfs[u.path[5:]].read_bytes(), "application/pdf")
                elif u.path == "/graph/v1/paper/search":
                    limit = int(parse_qs(u.query).get("limit", ["10"])[0])
                    body = {"total": len(RECORDS), "offset": 0, "data": RECORDS[:limit]}
                    send(self, 200, json.dumps(body).encode(), "application/json")
                else:
                    send(self, 404, b'{"error": "not found"}', "application/json")

        return Handler


# ---- the new source: one class ---------------------------------------------------------------------
class FakeS2Source(BaseSource):
    """Semantic-Scholar-style search; a record with an arXiv id keeps it (so it meets arXiv's copy),
    others get `<name>:<paperId>`; full text from the open-access PDF; BibTeX by the one builder."""

    name = "fake_s2"
    query_driven = True

    def _get(self, url: str) -> bytes:
        with urllib.request.urlopen(url, timeout=10) as resp:
            return resp.read()

    def search(self, queries: Sequence[str], limit: int) -> list[dict]:
        out = []
        for q in queries:
            try:
                data = json.loads(self._get(f"{self.options['url']}/graph/v1/paper/search?query={quote(q)}&limit={limit}"))
            except (urllib.error.URLError, OSError, ValueError) as exc:
                raise SourceSkipped(f"{self.name}: {exc}") from exc
            for r in data["data"]:
                ext = r.get("externalIds") or {}
                last = r["authors"][0]["name"].split()[-1].lower()
                out.append(self.paper(ext.get("ArXiv") or r["paperId"], title=r["title"], abstract=r["abstract"],
                                      year=r["year"], authors=[a["name"] for a in r["authors"]],
                                      url=f"https://www.semanticscholar.org/paper/{r['paperId']}", doi=ext.get("DOI"),
                                      pdf_url=(r.get("openAccessPdf") or {}).get("url", ""),
                                      bibkey=f"{last}{r['year']}{r['title'].split()[0].lower()}"))
        return out

    def fetch_text(self, paper: dict) -> tuple[str | None, str | None]:
        if not paper.get("pdf_url"):
            return None, "no open-access PDF"
        try:
            return pdf_to_text(self._get(self.options["url"] + paper["pdf_url"])), None
        except (urllib.error.URLError, OSError, PdfError) as exc:
            return None, str(exc)


@dataclass(frozen=True)
class SourcesSettings(Settings):
    """The two settings this seam reads (`paper_sources`, `paper_source_options`), as config.py would add them."""

    paper_sources: tuple[str, ...] = ()
    paper_source_options: dict = field(default_factory=dict)


@pytest.fixture
def services(tmp_path, llm_server):
    with FakeArxiv(pdfs={"2202.12139v1": PDFS / "2501.10120v1_pasa.pdf"}) as fa, \
            FakeS2(pdfs={S2_ONLY: PDFS / "attention_is_all_you_need_neurips2017.pdf"}) as s2:
        install(llm_server)
        llm_server.on("SearchQueries", {"queries": ["testing deep learning"]}, {"queries": ["robustness survey"]})
        yield fa, s2, llm_server


def _settings(llm_server, fa, s2, tmp_path, sources: tuple[str, ...], name: str) -> SourcesSettings:
    return SourcesSettings(base_url=llm_server.base_url, model="scripted-model", backoff_base=0.01, arxiv_url=fa.url,
                           arxiv_delay=0, max_papers=3, cache_dir=str(tmp_path / "cache"), context_budget_tokens=3000,
                           paper_sources=sources, paper_source_options={name: {"url": s2.url}})


def _review(s: Settings, tmp_path: Path, run_name: str) -> tuple[dict, RunDir]:
    run = RunDir.create(tmp_path / "runs", run_name)
    return run_literature_review(IDEA, [], s, LLM(s, Ledger(None)), run, "literature_review/v1", lambda m: None), run


@pytest.fixture
def registered():
    """`PAPER_SOURCES.register(name, cls)`: what a built-in source's module does (one line)."""
    PAPER_SOURCES.register("fake_s2", FakeS2Source)
    yield "fake_s2"
    PAPER_SOURCES._objs.pop("fake_s2", None)  # the registry has no unregister; keep other tests' view clean
    PAPER_SOURCES._builtin.remove("fake_s2")


def test_registered_source_runs_next_to_arxiv(services, registered, tmp_path):
    fa, s2, llm_server = services
    s = _settings(llm_server, fa, s2, tmp_path, ("arxiv", "fake_s2"), "fake_s2")
    assert isinstance(Sources(s, None).get("fake_s2"), PaperSource)
    out, run = _review(s, tmp_path, "s2")
    by_id = {p["id"]: p for p in out["papers"]}
    new = by_id[f"fake_s2:{S2_ONLY}"]  # source-qualified id
    assert new["full_text"] and new["title"].startswith("Robustness Testing")
    store = open_store(run)
    assert "Transformer" in " ".join(c.text for c in store.chunks(new["id"]))
    (entry,) = parse_bibtex(new["bibtex"])
    assert entry["ID"] == new["bibkey"] == "vaswani2017robustness" and entry["doi"] == "10.5555/3295222.3295349"
    assert "eprint" not in entry and "archiveprefix" not in entry and entry["author"] == "Ashish Vaswani and Noam Shazeer"
    # the record with an arXiv id is the same paper as arXiv's: one entry, arXiv's id, text and BibTeX
    assert "2202.12139v1" in by_id and not any(i.startswith("fake_s2:2202") or i == "2202.12139" for i in by_id)
    pasa = by_id["2202.12139v1"]
    assert pasa["full_text"] and parse_bibtex(pasa["bibtex"])[0]["eprint"] == "2202.12139"
    assert len(out["notes"]) == len(out["papers"])
    assert {n["paper_id"] for n in out["notes"]} >= {new["id"], "2202.12139v1"}
    searched = [parse_qs(urlparse(r).query)["query"][0] for r in s2.requests if "/search" in r]
    assert searched == ["testing deep learning", "robustness survey"]  # refined queries reach it too
    assert any(r.startswith("/pdf/") for r in s2.requests) and fa.requests  # both services were used


def test_entry_point_plugin_is_found_and_configured(services, tmp_path, monkeypatch):
    """A third-party distribution: one entry point in group agentlab.paper_sources, nothing else."""
    fa, s2, llm_server = services
    dist = tmp_path / "site" / "fake_s2_plugin-0.1.dist-info"
    dist.mkdir(parents=True)
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: fake-s2-plugin\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text(
        "[agentlab.paper_sources]\nscholar = tests.literature.test_new_source:FakeS2Source\n")
    monkeypatch.syspath_prepend(str(dist.parent))
    PAPER_SOURCES.refresh()
    try:
        assert "scholar" in PAPER_SOURCES.names() and PAPER_SOURCES.is_plugin("scholar")
        s = _settings(llm_server, fa, s2, tmp_path, ("scholar",), "scholar")
        out, _ = _review(s, tmp_path, "plugin")
        ids = [p["id"] for p in out["papers"]]
        assert f"scholar:{S2_ONLY}" in ids and "2202.12139" in ids  # qualified by its registry name
        assert not [r for r in fa.requests if r.startswith("/api/")]  # arXiv not configured: not searched
        assert any(r.endswith("/pdf/2202.12139") for r in fa.requests)  # ...but it owns the arXiv id's PDF
    finally:
        monkeypatch.undo()
        PAPER_SOURCES.refresh()
