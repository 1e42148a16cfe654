"""arXiv search through the `arxiv` package, with a configurable endpoint and its rate limit."""

from __future__ import annotations

import re

import arxiv


class LiteratureUnavailable(RuntimeError):
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


def search(client: arxiv.Client, query: str, limit: int) -> list[dict]:
    try:
        results = list(client.results(arxiv.Search(query=query, max_results=limit)))
    except (arxiv.HTTPError, arxiv.UnexpectedEmptyPageError, OSError) as exc:
        raise LiteratureUnavailable(
            f"arXiv query {query!r} failed at {client.query_url_format.split('?')[0]}: {exc}. "
            "Check the network or --arxiv-url, then `agentlab resume RUN`."
        ) from exc
    return [result_to_paper(r) for r in results]
