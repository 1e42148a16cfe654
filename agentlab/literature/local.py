"""A local reading list: `--papers DIR` holding PDFs and/or BibTeX files.

A BibTeX entry gives metadata (title, authors, year, abstract, arXiv eprint); a PDF gives full text.
They are matched by arXiv id, by citation key == file stem, or by the entry's `file` field. An entry
without a PDF keeps its abstract (and, when it has an arXiv eprint, its PDF may be fetched).
"""

from __future__ import annotations

import re
from pathlib import Path

ARXIV_ID = re.compile(r"(\d{4}\.\d{4,5})(v\d+)?")


def parse_bibtex(text: str) -> list[dict]:
    """Entries as {"ENTRYTYPE", "ID", field: value}; tolerant of messy real-world files."""
    entries = []
    for m in re.finditer(r"@(\w+)\s*\{\s*([^,\s]+)\s*,", text):
        etype = m.group(1).lower()
        if etype in ("comment", "preamble", "string"):
            continue
        i, depth = m.end(), 1
        start = i
        while i < len(text) and depth:
            depth += {"{": 1, "}": -1}.get(text[i], 0)
            i += 1
        body = text[start : i - 1]
        entry = {"ENTRYTYPE": etype, "ID": m.group(2)}
        entry.update(_fields(body))
        entries.append(entry)
    return entries


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
            value = body[j + 1 : k - 1]
        elif j < len(body) and body[j] == '"':
            k = body.find('"', j + 1)
            k = len(body) if k == -1 else k + 1
            value = body[j + 1 : k - 1]
        else:
            k = j
            while k < len(body) and body[k] not in ",\n":
                k += 1
            value = body[j:k]
        out[m.group(1).lower()] = " ".join(value.replace("{", "").replace("}", "").split())
        i = k
    return out


def entry_to_paper(e: dict) -> dict:
    arx = ARXIV_ID.search(e.get("eprint", "") or e.get("url", "") or e.get("journal", "") or "")
    pid = arx.group(0) if arx else f"local:{e['ID']}"
    year = re.search(r"\d{4}", e.get("year", ""))
    authors = [a.strip() for a in re.split(r"\s+and\s+", e.get("author", "")) if a.strip()]
    return {"id": pid, "title": e.get("title", e["ID"]), "authors": authors,
            "year": int(year.group(0)) if year else None,
            "primary_category": e.get("primaryclass"), "abstract": e.get("abstract", ""),
            "url": e.get("url", ""), "pdf_url": "", "bibkey": e["ID"], "file": e.get("file", "")}


def scan_dir(folder: str | Path) -> list[tuple[dict, Path | None]]:
    """(paper metadata, local PDF path or None) for everything in the folder (not recursive)."""
    root = Path(folder).expanduser()
    if not root.is_dir():
        raise FileNotFoundError(f"--papers {root}: not a folder")
    pdfs = {p.stem: p for p in sorted(root.glob("*.pdf"))}
    used: set[str] = set()
    out: list[tuple[dict, Path | None]] = []
    for bib in sorted(root.glob("*.bib")):
        for e in parse_bibtex(bib.read_text(errors="replace")):
            paper = entry_to_paper(e)
            pdf = None
            for stem, path in pdfs.items():
                if stem in used:
                    continue
                m = ARXIV_ID.search(stem)
                if stem == e["ID"] or (m and m.group(1) == paper["id"].split("v")[0]) or \
                        (paper["file"] and f"{stem}.pdf" in paper["file"]):
                    pdf = path
                    used.add(stem)
                    break
            paper.pop("file", None)
            out.append((paper, pdf))
    for stem, path in pdfs.items():
        if stem in used:
            continue
        m = ARXIV_ID.search(stem)
        slug = re.sub(r"[^A-Za-z0-9]+", "_", stem).strip("_").lower() or "paper"
        out.append(({"id": m.group(0) if m else f"local:{slug}", "title": "", "authors": [], "year": None,
                     "primary_category": None, "abstract": "", "url": "", "pdf_url": "", "bibkey": slug}, path))
    return out


def title_from_text(text: str) -> str:
    """A best guess at a title: the first substantial line of the extracted text."""
    for line in text.splitlines():
        line = line.strip()
        if len(line) > 8 and not ARXIV_ID.search(line[:40]) and "@" not in line:
            return line[:200]
    return ""
