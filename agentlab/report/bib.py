"""references.bib from the run's paper store only; checking and dropping unknown \\cite keys."""

from __future__ import annotations

import re

_CITE = re.compile(r"\\(?:[Cc]ite(?:p|t|alp|alt|author|year|yearpar)?|nocite)\*?(?:\[[^\]]*\]){0,2}\{([^}]*)\}")
_ENTRY_KEY = re.compile(r"^(\s*@\s*\w+\s*\{)\s*([^,\s]+)\s*,", re.MULTILINE)
_AT_ENTRY = re.compile(r"@\s*\w+\s*[{(]")  # any entry, also @preamble/@string (copied into the .bbl)
_CS = re.compile(r"\\([A-Za-z@]+|.)", re.DOTALL)
#: the LaTeX a paper's own BibTeX may hold (accents, escapes, a few text commands); else it is rebuilt
_BIB_CS = frozenset("' ` \" ^ ~ = . u v H c k r t d b i j o O l L ss ae AE oe OE aa AA & % $ # _ { } - , "
                    "textbf textit emph textsc textrm texttt mathrm mathbf mathcal url".split()) | {" "}


def safe_key(paper: dict) -> str:
    """The paper's bibkey, reduced to characters every BibTeX accepts."""
    raw = paper.get("bibkey") or paper.get("id") or "paper"
    key = re.sub(r"[^A-Za-z0-9:_\-.]", "", str(raw))
    return key or "paper"


def _bib_text(value: str) -> str:
    """Escape metadata for a BibTeX field (special LaTeX characters, unbalanced braces)."""
    value = " ".join(str(value).split())
    value = value.replace("\\", " ").replace("{", "").replace("}", "")
    for ch in "&%$#_":
        value = value.replace(ch, "\\" + ch)
    return value.replace("~", "\\~{}").replace("^", "\\^{}")


def entry_from_metadata(paper: dict, key: str) -> str:
    """A @misc entry for an arXiv paper built from its metadata."""
    authors = paper.get("authors") or []
    if isinstance(authors, str):
        authors = [a.strip() for a in authors.split(",") if a.strip()]
    fields = [("title", "{" + _bib_text(paper.get("title") or key) + "}"),
              ("author", " and ".join(_bib_text(a) for a in authors) or "Anonymous")]
    if paper.get("year"):
        fields.append(("year", str(paper["year"])))
    pid = str(paper.get("id") or "")
    if pid:
        fields += [("eprint", _bib_text(pid)), ("archivePrefix", "arXiv")]
        if paper.get("primary_category"):
            fields.append(("primaryClass", _bib_text(paper["primary_category"])))
    if paper.get("url"):
        fields.append(("url", re.sub(r"[{}\\\s]", "", str(paper["url"]))))
    body = ",\n".join(f"  {k} = {{{v}}}" for k, v in fields)
    return f"@misc{{{key},\n{body}\n}}\n"


def _balanced(text: str) -> bool:
    depth = 0
    for ch in text:
        depth += (ch == "{") - (ch == "}")
        if depth < 0:
            return False
    return depth == 0


def _plain_bibtex(text: str) -> bool:
    """One entry, and only harmless LaTeX in it (BibTeX copies fields, @preamble too, into the .bbl)."""
    return (len(_AT_ENTRY.findall(text)) == 1 and "^^" not in text
            and all(m.group(1) in _BIB_CS for m in _CS.finditer(text)))


def entry_for(paper: dict, key: str) -> str:
    """The paper's own BibTeX (re-keyed to `key`) when it is usable, else one built from metadata."""
    given = (paper.get("bibtex") or "").strip()
    if given and _balanced(given) and len(_ENTRY_KEY.findall(given)) == 1 and _plain_bibtex(given):
        return _ENTRY_KEY.sub(lambda m: f"{m.group(1)}{key},", given, count=1) + "\n"
    return entry_from_metadata(paper, key)


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
