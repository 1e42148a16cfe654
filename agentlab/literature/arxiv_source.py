"""The arXiv source: search through the `arxiv` package (configurable endpoint and rate limit), PDF
downloads, and arXiv-style BibTeX. `ArxivSource` is what the literature step uses."""

from __future__ import annotations

import re
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from urllib.parse import urlparse

import arxiv

from agentlab.errors import Resumable
from agentlab.literature.bibtex import entry_from_metadata, safe_key
from agentlab.literature.ids import parse_arxiv
from agentlab.literature.paper_source import BaseSource, SourceContext
from agentlab.literature.pdftext import PdfError, pdf_to_text


class LiteratureUnavailable(Resumable, RuntimeError):
    """The literature source cannot be reached; the run stays resumable."""


def make_client(url: str, delay: float, page_size: int = 50) -> arxiv.Client:
    client = arxiv.Client(page_size=page_size, delay_seconds=delay, num_retries=2)
    client.query_url_format = url.rstrip("?") + "?{}"  # instance override of the class default
    return client


def result_to_paper(r: arxiv.Result) -> dict:
    short = r.get_short_id()
    year = r.published.year if r.published else None
    first = (r.authors[0].name.split()[-1] if r.authors else "anon").lower()
    first = re.sub(r"[^a-z]", "", first) or "anon"
    word = next((w.lower() for w in re.findall(r"[A-Za-z]{4,}", r.title or "")), "paper")
    return {
        "id": short,
        "title": " ".join((r.title or "").split()),
        "authors": [a.name for a in r.authors],
        "year": year,
        "primary_category": r.primary_category,
        "abstract": " ".join((r.summary or "").split()),
        "url": r.entry_id,
        "pdf_url": r.pdf_url,
        "bibkey": f"{first}{year or ''}{word}",
    }


def to_arxiv_query(query: str) -> str:
    """Plain keywords -> `all:w1 AND all:w2 ...` (explicit, predictable matching); a query that
    already uses arXiv syntax (field prefixes, AND/OR/ANDNOT, quotes) is passed unchanged."""
    if re.search(r"\b(ti|au|abs|co|jr|cat|rn|id|all):|\b(AND|OR|ANDNOT)\b|\"", query):
        return query
    words = [w for w in re.findall(r"[\w\-\.+]+", query) if w.strip("-.+")]
    return " AND ".join(f'all:"{w}"' if "-" in w else f"all:{w}" for w in words) or query


def search(client: arxiv.Client, query: str, limit: int) -> list[dict]:
    """Up to `limit` papers. A later page that fails (arXiv returns empty pages now and then) keeps the
    pages already read; only a query that yields nothing at all because arXiv failed is an error."""
    results: list[arxiv.Result] = []
    try:
        for r in client.results(arxiv.Search(query=to_arxiv_query(query), max_results=limit)):
            results.append(r)
    except (arxiv.HTTPError, arxiv.UnexpectedEmptyPageError, OSError) as exc:
        if results:
            return [result_to_paper(r) for r in results]
        raise LiteratureUnavailable(
            f"arXiv query {query!r} failed at {client.query_url_format.split('?')[0]}: {exc}. "
            "Check the network or --arxiv-url, then `agentlab resume RUN`."
        ) from exc
    return [result_to_paper(r) for r in results]


def search_ids(client: arxiv.Client, ids: list[str]) -> list[dict]:
    """Metadata for arXiv ids (e.g. from a BibTeX `eprint` field); missing ids are simply absent."""
    if not ids:
        return []
    try:
        results = list(client.results(arxiv.Search(id_list=ids, max_results=len(ids))))
    except (arxiv.HTTPError, arxiv.UnexpectedEmptyPageError, OSError) as exc:
        raise LiteratureUnavailable(
            f"arXiv id lookup {','.join(ids)} failed at {client.query_url_format.split('?')[0]}: {exc}. "
            "Check the network or --arxiv-url, then `agentlab resume RUN`."
        ) from exc
    return [result_to_paper(r) for r in results]


class DownloadError(RuntimeError):
    """One paper's PDF could not be fetched (404, timeout, refused); the review goes on without it."""


class Throttle:
    """At most one request per `delay` seconds (arXiv asks for one every 3 s)."""

    def __init__(self, delay: float):
        self.delay = delay
        self._last = 0.0

    def mark(self) -> None:
        self._last = time.monotonic()

    def wait(self) -> None:
        now = time.monotonic()
        if self._last and now - self._last < self.delay:
            time.sleep(self.delay - (now - self._last))
        self._last = time.monotonic()


def pdf_url_for(paper: dict, arxiv_url: str, arxiv_pdf_url: str = "") -> str:
    """Where to fetch a paper's PDF: an explicit base, the feed's link for arxiv.org, else the
    configured API host's /pdf/<id> (mirrors and the test server)."""
    if arxiv_pdf_url:
        return arxiv_pdf_url.rstrip("/") + "/" + paper["id"]
    host = urlparse(arxiv_url)
    if host.hostname and host.hostname.endswith("arxiv.org") and paper.get("pdf_url"):
        return paper["pdf_url"]
    return f"{host.scheme}://{host.netloc}/pdf/{paper['id']}"


def download_pdf(url: str, timeout: float, throttle: Throttle | None = None, max_bytes: int = 60_000_000) -> bytes:
    if throttle:
        throttle.wait()
    req = urllib.request.Request(url, headers={"User-Agent": "agentlab (literature review)"})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            data = resp.read(max_bytes + 1)
    except urllib.error.HTTPError as exc:
        raise DownloadError(f"HTTP {exc.code} for {url}") from exc
    except (urllib.error.URLError, TimeoutError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise DownloadError(f"could not fetch {url}: {reason}") from exc
    if len(data) > max_bytes:
        raise DownloadError(f"{url} is larger than {max_bytes // 1_000_000} MB")
    return data


def arxiv_citation(paper: dict) -> dict:
    """arXiv's own citation convention for a paper with an arXiv id: the eprint without its version
    and the abstract page as url (what arxiv.org's "Export BibTeX" gives)."""
    a = parse_arxiv(str(paper.get("id") or ""))
    return {**paper, "eprint": a.base, "url": a.abs_url} if a else paper


def bibtex_for(paper: dict) -> str:
    """A BibTeX @misc entry from arXiv metadata under the paper's bibkey (the one builder, arXiv style)."""
    return entry_from_metadata(arxiv_citation(paper), safe_key(paper)).rstrip("\n")


class ArxivSource(BaseSource):
    """arXiv: search through the real `arxiv` client at `arxiv_url` (one client, spaced by
    `arxiv_delay`), PDFs from `arxiv_pdf_url` / the feed link / `<host>/pdf/<id>` through a throttle."""

    name = "arxiv"
    query_driven = True
    cache_text = True
    network = True

    def __init__(self, ctx: SourceContext):
        super().__init__(ctx)
        s = self.settings
        self.url = self.options.get("url", s.arxiv_url)
        self.pdf_base = self.options.get("pdf_url", s.arxiv_pdf_url)
        self.client = make_client(self.url, float(self.options.get("delay", s.arxiv_delay)))
        self.throttle = Throttle(float(self.options.get("delay", s.arxiv_delay)))

    def search(self, queries: Sequence[str], limit: int) -> list[dict]:
        self.ctx.progress(f"searching arXiv: {'; '.join(queries)}")
        found: list[dict] = []
        for q in queries:
            found += search(self.client, q, limit)
        self.throttle.mark()  # the last API request was just now: the first download waits its turn
        return found

    def fetch_text(self, paper: dict) -> tuple[str | None, str | None]:
        if self.settings.offline:
            return None, "offline mode and the PDF is not in the cache"
        url = pdf_url_for(paper, self.url, self.pdf_base)
        try:
            return pdf_to_text(download_pdf(url, self.settings.download_timeout, self.throttle)), None
        except (DownloadError, PdfError) as exc:
            return None, str(exc)

    def bibtex(self, paper: dict, key: str) -> str:
        return entry_from_metadata(arxiv_citation(paper), key)

    def normalize_id(self, ref: str) -> str | None:
        a = parse_arxiv(ref)
        return str(a) if a else None
