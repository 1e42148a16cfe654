"""The source-independent half of the literature step: gather candidates from the configured sources,
rank them, and get each selected paper's full text and BibTeX from the sources that know it.
Failures are per paper (or per source at search time): recorded with a reason, and the review goes on."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from agentlab.literature.bibtex import safe_key
from agentlab.literature.ids import dedup_key, normalize_id
from agentlab.literature.paper_source import PaperSource, Sources, SourceSkipped
from agentlab.retrieval.retriever import make_retriever

__all__ = ["Candidates", "base_id", "bibtex_of", "fetch_text", "gather", "metadata_text", "rank"]


def base_id(pid: str) -> str:
    """The id all versions of a paper share (2401.01234v2 -> 2401.01234); see ids.dedup_key."""
    return dedup_key(pid)


@dataclass
class Candidates:
    papers: dict[str, dict] = field(default_factory=dict)  # dedup key -> paper (first finder's metadata)
    hits: dict[str, int] = field(default_factory=dict)  # dedup key -> how many (query, source) found it
    found_by: dict[str, list[str]] = field(default_factory=dict)  # dedup key -> source names, in order

    def add(self, paper: dict, source: str = "") -> None:
        key = dedup_key(paper["id"])
        if key not in self.papers:
            self.papers[key] = paper
        self.hits[key] = self.hits.get(key, 0) + 1
        if source and source not in self.found_by.setdefault(key, []):
            self.found_by[key].append(source)

    def finders(self, paper: dict) -> list[str]:
        return self.found_by.get(dedup_key(paper["id"]), [])


def gather(sources: Sequence[PaperSource], queries: list[str], cands: Candidates, per_query: int,
           failures: list[dict]) -> None:
    """Search every source; each paper's id is normalised by the source that found it. A source that
    raises SourceSkipped is recorded as a search failure; LiteratureUnavailable propagates."""
    for src in sources:
        try:
            found = src.search(queries, per_query)
        except SourceSkipped as exc:
            failures.append({"paper_id": "", "stage": "search", "reason": str(exc)})
            continue
        for paper in found:
            paper["id"] = src.normalize_id(paper["id"]) or normalize_id(paper["id"])
            cands.add(paper, src.name)


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


def _text_chain(paper: dict, sources: Sources, cands: Candidates) -> list[PaperSource]:
    """Who may have the text: the cache, the sources that found the paper, then the one owning its id."""
    chain = [sources.get("cache"), *(sources.get(n) for n in cands.finders(paper)), sources.owner(paper["id"])]
    out: list[PaperSource] = []
    for src in chain:
        if src is not None and all(src is not s for s in out):
            out.append(src)
    return out


def fetch_text(paper: dict, sources: Sources, cands: Candidates) -> tuple[str | None, str | None]:
    """(full text, None) or (None, failure reason: the last source's). Text a network source fetched
    goes into the shared cache, so a paper is downloaded once across runs."""
    reason: str | None = None
    for src in _text_chain(paper, sources, cands):
        text, why = src.fetch_text(paper)
        if text is not None:
            if src.cache_text:
                sources.cache.put({k: v for k, v in paper.items() if k not in ("bibtex", "n_chunks", "full_text")},
                                  text, full_text=True, source=src.name)
            return text, None
        if src.name != "cache":  # "not in the cache" is never the interesting reason
            reason = why
    return None, reason or "no source has the full text"


def cacheable(paper: dict, sources: Sources, cands: Candidates) -> bool:
    """Whether the paper's metadata may go into the shared cache (it comes from a network source)."""
    owner = sources.owner(paper["id"])
    srcs = [owner] if owner is not None else [sources.get(n) for n in cands.finders(paper)]
    return any(s.cache_text for s in srcs)


def bibtex_of(paper: dict, sources: Sources, cands: Candidates) -> str:
    """The paper's BibTeX from the first source that found it (its owner otherwise), under its bibkey.
    The source sees all the metadata it returned (e.g. a DOI), not only the keys the state keeps."""
    names = cands.finders(paper)
    src = sources.get(names[0]) if names else sources.owner(paper["id"]) or sources.get("cache")
    full = {**cands.papers.get(dedup_key(paper["id"]), {}), **paper}
    return src.bibtex(full, safe_key(paper)).rstrip("\n")


def metadata_text(paper: dict) -> str:
    """What stands in for the full text when the PDF failed: title and abstract (one chunk)."""
    return f"{paper.get('title', '')}\n\n{paper.get('abstract', '')}".strip()
