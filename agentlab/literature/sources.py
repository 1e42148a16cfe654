"""Where papers come from (arXiv search, a local folder, the offline cache) and how their full text
gets into the run's store. Failures are per paper: recorded with a reason, and the review goes on."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from agentlab.config import Settings
from agentlab.literature import arxiv_source as ax
from agentlab.literature.local import scan_dir, title_from_text
from agentlab.literature.pdftext import PdfError, pdf_to_text
from agentlab.literature.store import PaperStore
from agentlab.retrieval.retriever import make_retriever


def base_id(pid: str) -> str:
    """arXiv id without its version (2401.01234v2 -> 2401.01234); other ids unchanged."""
    return re.sub(r"v\d+$", "", pid) if re.match(r"^\d{4}\.\d{4,5}v\d+$", pid) or "/" in pid else pid


@dataclass
class Candidates:
    papers: dict[str, dict] = field(default_factory=dict)  # base id -> paper
    hits: dict[str, int] = field(default_factory=dict)  # base id -> how many queries found it
    local_pdfs: dict[str, Path] = field(default_factory=dict)

    def add(self, paper: dict, pdf: Path | None = None) -> None:
        key = base_id(paper["id"])
        if key not in self.papers:
            self.papers[key] = paper
        self.hits[key] = self.hits.get(key, 0) + 1
        if pdf is not None:
            self.local_pdfs[paper["id"]] = pdf


def search_arxiv(client, queries: list[str], cands: Candidates, per_query: int) -> None:
    """Run each query through one shared `arxiv.Client` (it spaces requests by the configured delay)."""
    for q in queries:
        for p in ax.search(client, q, per_query):
            cands.add(p)


def from_local(settings: Settings, cands: Candidates) -> None:
    for paper, pdf in scan_dir(settings.papers_dir):
        cands.add(paper, pdf)


def from_cache(cache: PaperStore, cands: Candidates) -> None:
    for meta in cache.all_meta():
        meta = {k: v for k, v in meta.items() if k != "full_text"}
        cands.add(meta)


def rank(cands: Candidates, query: str, limit: int, retriever: str = "bm25") -> list[dict]:
    """Rank by relevance of title + abstract to the idea (+ feedback) with the configured retriever
    (BM25 by default), plus a small bonus for papers several queries found; ties keep discovery order."""
    keys = list(cands.papers)
    if not keys:
        return []
    texts = [f"{cands.papers[k].get('title', '')} {cands.papers[k].get('abstract', '')}" for k in keys]
    scores = dict(make_retriever(retriever, texts).rank(query))
    top = max(abs(v) for v in scores.values()) or 1.0
    order = sorted(range(len(keys)), key=lambda i: (-(scores[i] / top + 0.1 * (cands.hits[keys[i]] - 1)), i))
    return [cands.papers[keys[i]] for i in order[:limit]]


def fetch_text(paper: dict, settings: Settings, cache: PaperStore, cands: Candidates,
               throttle: ax.Throttle) -> tuple[str | None, str | None]:
    """(full text, None) or (None, failure reason). Cache first; then a local PDF; then the network
    (unless offline). A fetched and parsed text goes into the shared cache."""
    pid = paper["id"]
    for key in (pid, base_id(pid)):
        if cache.has(key, full_text=True):
            return cache.text(key), None
    if pid in cands.local_pdfs:
        try:
            text = pdf_to_text(cands.local_pdfs[pid].read_bytes())
        except (PdfError, OSError) as exc:
            return None, f"local PDF {cands.local_pdfs[pid].name}: {exc}"
        if not paper.get("title"):
            paper["title"] = title_from_text(text)
        return text, None
    if pid.startswith("local:"):
        return None, "no PDF for this BibTeX entry in --papers"
    if settings.offline:
        return None, "offline mode and the PDF is not in the cache"
    url = ax.pdf_url_for(paper, settings.arxiv_url, settings.arxiv_pdf_url)
    try:
        data = ax.download_pdf(url, settings.download_timeout, throttle)
        text = pdf_to_text(data)
    except (ax.DownloadError, PdfError) as exc:
        return None, str(exc)
    cache.put({k: v for k, v in paper.items() if k not in ("bibtex", "n_chunks", "full_text")}, text,
              full_text=True, source=url)
    return text, None


def metadata_text(paper: dict) -> str:
    """What stands in for the full text when the PDF failed: title and abstract (one chunk)."""
    return f"{paper.get('title', '')}\n\n{paper.get('abstract', '')}".strip()
