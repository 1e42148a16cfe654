"""references.bib from the run's paper store only; checking and dropping unknown \\cite keys.

Each entry is the paper's own BibTeX when it passes the guard, else one rebuilt from metadata
(`agentlab.literature.bibtex.entry_for`: the same builder and guard the literature sources use)."""

from __future__ import annotations

import re

from agentlab.literature.bibtex import entry_for, entry_from_metadata, safe_key, usable_entry

#: the one BibTeX builder and its guard on a paper's own BibTeX live in agentlab.literature.bibtex
__all__ = ["build_bib", "cited_keys", "drop_unknown_cites", "entry_for", "entry_from_metadata", "safe_key",
           "unknown_cites", "usable_entry"]

_CITE = re.compile(r"\\(?:[Cc]ite(?:p|t|alp|alt|author|year|yearpar)?|nocite)\*?(?:\[[^\]]*\]){0,2}\{([^}]*)\}")


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
    for m in _CITE.finditer(latex):
        for k in m.group(1).split(","):
            k = k.strip()
            if k and k not in out:
                out.append(k)
    return out


def unknown_cites(latex: str, known: set[str]) -> list[str]:
    return [k for k in cited_keys(latex) if k not in known]


def drop_unknown_cites(latex: str, known: set[str]) -> str:
    """Remove unknown keys from every \\cite; a \\cite left empty disappears."""
    def fix(m: re.Match) -> str:
        keys = [k.strip() for k in m.group(1).split(",") if k.strip() in known]
        if not keys:
            return ""
        whole = m.group(0)
        return whole[: whole.rindex("{") + 1] + ",".join(keys) + "}"
    return _CITE.sub(fix, latex)
