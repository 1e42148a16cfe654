"""references.bib from the run's paper store only; the \\cite keys a section names.

Each entry is the paper's own BibTeX when it passes the guard, else one rebuilt from metadata
(`agentlab.literature.bibtex.entry_for`: the same builder and guard the literature sources use)."""

from __future__ import annotations

from agentlab.literature.bibtex import entry_for, entry_from_metadata, safe_key, usable_entry
from agentlab.report.claim_words import CITE_RE

#: the one BibTeX builder and its guard on a paper's own BibTeX live in agentlab.literature.bibtex
__all__ = ["build_bib", "cited_keys", "entry_for", "entry_from_metadata", "safe_key", "unknown_cites", "usable_entry"]


def build_bib(papers: list[dict]) -> tuple[str, dict[str, dict]]:
    """(references.bib text, key -> paper) for every paper in the run's store (unique keys)."""
    by_key: dict[str, dict] = {}
    parts = []
    for p in papers:
        key = safe_key(p)
        if key in by_key:
            continue
        by_key[key] = p
        parts.append(entry_for(p, key))
    return "\n".join(parts), by_key


def cited_keys(latex: str) -> list[str]:
    out: list[str] = []
    for m in CITE_RE.finditer(latex):  # every \\...cite... variant, options, a space before the brace
        for k in m.group(3).split(","):
            k = k.strip()
            if k and k not in out:
                out.append(k)
    return out


def unknown_cites(latex: str, known: set[str]) -> list[str]:
    return [k for k in cited_keys(latex) if k not in known]
