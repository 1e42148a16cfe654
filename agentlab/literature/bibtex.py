"""BibTeX: the one builder (metadata -> entry), the reader of local .bib files, and the guard on
BibTeX that comes with a paper.

BibTeX copies fields (and @preamble) into the .bbl that LaTeX reads, so BibTeX from outside (a local
.bib file, a source's export) is kept only when it is one balanced entry with harmless LaTeX in it
(`usable_entry`); anything else is rebuilt from metadata, whose text is escaped (`bib_text`). The report
(`agentlab.report.bib`) builds references.bib through `entry_for`, the literature sources through
`entry_from_metadata`, so both apply the same rules.
"""

from __future__ import annotations

import re

from agentlab.literature.ids import parse_arxiv

_ENTRY_KEY = re.compile(r"^(\s*@\s*\w+\s*\{)\s*([^,\s]+)\s*,", re.MULTILINE)
_AT_ENTRY = re.compile(r"@\s*\w+\s*[{(]")  # any entry, also @preamble/@string (copied into the .bbl)
_CS = re.compile(r"\\([A-Za-z@]+|.)", re.DOTALL)
#: the LaTeX a paper's own BibTeX may hold (accents, escapes, a few text commands); else it is rebuilt
_BIB_CS = frozenset("' ` \" ^ ~ = . u v H c k r t d b i j o O l L ss ae AE oe OE aa AA & % $ # _ { } - , "
                    "textbf textit emph textsc textrm texttt mathrm mathbf mathcal url".split()) | {" "}


# ---- building ---------------------------------------------------------------------------------------
def safe_key(paper: dict) -> str:
    """The paper's bibkey, reduced to characters every BibTeX accepts."""
    raw = paper.get("bibkey") or paper.get("id") or "paper"
    key = re.sub(r"[^A-Za-z0-9:_\-.]", "", str(raw))
    return key or "paper"


def bib_text(value: str) -> str:
    """Escape metadata for a BibTeX field (special LaTeX characters, unbalanced braces)."""
    value = " ".join(str(value).split())
    value = value.replace("\\", " ").replace("{", "").replace("}", "")
    for ch in "&%$#_":
        value = value.replace(ch, "\\" + ch)
    return value.replace("~", "\\~{}").replace("^", "\\^{}")


def _bib_url(value: str) -> str:
    return re.sub(r"[{}\\\s]", "", str(value))


def entry_from_metadata(paper: dict, key: str) -> str:
    """A @misc entry built from a paper's metadata (title, authors, year, url, doi). When the paper's
    `eprint` (else its `id`) is an arXiv id, it gets eprint/archivePrefix/primaryClass too."""
    authors = paper.get("authors") or []
    if isinstance(authors, str):
        authors = [a.strip() for a in authors.split(",") if a.strip()]
    fields = [("title", "{" + bib_text(paper.get("title") or key) + "}"),
              ("author", " and ".join(bib_text(a) for a in authors) or "Anonymous")]
    if paper.get("year"):
        fields.append(("year", bib_text(paper["year"])))
    arx = parse_arxiv(str(paper.get("eprint") or paper.get("id") or ""))
    if arx:
        fields += [("eprint", bib_text(str(arx))), ("archivePrefix", "arXiv")]
        if paper.get("primary_category"):
            fields.append(("primaryClass", bib_text(paper["primary_category"])))
    if paper.get("doi"):
        fields.append(("doi", _bib_url(paper["doi"])))
    if paper.get("url"):
        fields.append(("url", _bib_url(paper["url"])))
    body = ",\n".join(f"  {k} = {{{v}}}" for k, v in fields)  # title is double-braced: keeps its case
    return f"@misc{{{key},\n{body}\n}}\n"


# ---- BibTeX from outside ----------------------------------------------------------------------------
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


def usable_entry(text: str) -> bool:
    """Whether BibTeX from outside may be used as is (after re-keying)."""
    text = (text or "").strip()
    return bool(text) and _balanced(text) and len(_ENTRY_KEY.findall(text)) == 1 and _plain_bibtex(text)


def rekey(entry: str, key: str) -> str:
    """The entry with its citation key replaced by `key`."""
    return _ENTRY_KEY.sub(lambda m: f"{m.group(1)}{key},", entry.strip(), count=1)


def entry_for(paper: dict, key: str) -> str:
    """The paper's own BibTeX (re-keyed to `key`) when it is usable, else one built from metadata."""
    given = (paper.get("bibtex") or "").strip()
    if usable_entry(given):
        return rekey(given, key) + "\n"
    return entry_from_metadata(paper, key)


# ---- reading .bib files -----------------------------------------------------------------------------
def iter_entries(text: str) -> list[tuple[dict, str]]:
    """(entry as {"ENTRYTYPE", "ID", field: value}, its raw text) for each entry; tolerant of messy files."""
    out = []
    for m in re.finditer(r"@(\w+)\s*\{\s*([^,\s]+)\s*,", text):
        etype = m.group(1).lower()
        if etype in ("comment", "preamble", "string"):
            continue
        i, depth = m.end(), 1
        start = i
        while i < len(text) and depth:
            depth += {"{": 1, "}": -1}.get(text[i], 0)
            i += 1
        entry = {"ENTRYTYPE": etype, "ID": m.group(2)}
        entry.update(_fields(text[start: i - 1]))
        out.append((entry, text[m.start(): i]))
    return out


def parse_bibtex(text: str) -> list[dict]:
    """Entries as {"ENTRYTYPE", "ID", field: value}; tolerant of messy real-world files."""
    return [e for e, _ in iter_entries(text)]


def _fields(body: str) -> dict[str, str]:
    out: dict[str, str] = {}
    i = 0
    for m in re.finditer(r"(\w[\w\-]*)\s*=\s*", body):
        if m.start() < i:
            continue
        j = m.end()
        if j < len(body) and body[j] == "{":
            depth, k = 0, j
            while k < len(body):
                depth += {"{": 1, "}": -1}.get(body[k], 0)
                k += 1
                if depth == 0:
                    break
            value = body[j + 1: k - 1]
        elif j < len(body) and body[j] == '"':
            k = body.find('"', j + 1)
            k = len(body) if k == -1 else k + 1
            value = body[j + 1: k - 1]
        else:
            k = j
            while k < len(body) and body[k] not in ",\n":
                k += 1
            value = body[j:k]
        out[m.group(1).lower()] = " ".join(value.replace("{", "").replace("}", "").split())
        i = k
    return out
