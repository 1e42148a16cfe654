"""A local reading list: `--papers DIR` holding PDFs and/or BibTeX files (`LocalSource`).

A BibTeX entry gives metadata (title, authors, year, abstract, arXiv eprint); a PDF gives full text.
They are matched by arXiv id, by citation key == file stem, or by the entry's `file` field. An entry
without a PDF keeps its abstract (and, when it has an arXiv eprint, its PDF may be fetched by arXiv).
Ids: the arXiv id where one is known, else `local:<key or stem>`.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path

from agentlab.literature.bibtex import entry_from_metadata, iter_entries, parse_bibtex, rekey, usable_entry
from agentlab.literature.ids import arxiv_base, dedup_key, find_arxiv, slug
from agentlab.literature.paper_source import BaseSource, SourceContext
from agentlab.literature.pdftext import PdfError, pdf_to_text

__all__ = ["LocalSource", "entry_to_paper", "parse_bibtex", "scan_dir", "title_from_text"]


def entry_to_paper(e: dict) -> dict:
    arx = find_arxiv(e.get("eprint", "") or e.get("url", "") or e.get("journal", "") or "")
    pid = str(arx) if arx else f"local:{e['ID']}"
    year = re.search(r"\d{4}", e.get("year", ""))
    authors = [a.strip() for a in re.split(r"\s+and\s+", e.get("author", "")) if a.strip()]
    return {"id": pid, "title": e.get("title", e["ID"]), "authors": authors,
            "year": int(year.group(0)) if year else None,
            "primary_category": e.get("primaryclass"), "abstract": e.get("abstract", ""),
            "url": e.get("url", ""), "pdf_url": "", "bibkey": e["ID"], "file": e.get("file", "")}


def _scan(root: Path) -> list[tuple[dict, Path | None, str]]:
    """(paper, local PDF or None, the entry's raw BibTeX or "") for everything in the folder."""
    pdfs = {p.stem: p for p in sorted(root.glob("*.pdf"))}
    used: set[str] = set()
    out: list[tuple[dict, Path | None, str]] = []
    for bib in sorted(root.glob("*.bib")):
        for e, raw in iter_entries(bib.read_text(errors="replace")):
            paper = entry_to_paper(e)
            pdf = None
            for stem, path in pdfs.items():
                if stem in used:
                    continue
                m = find_arxiv(stem)
                if stem == e["ID"] or (m and m.base == arxiv_base(paper["id"])) or \
                        (paper["file"] and f"{stem}.pdf" in paper["file"]):
                    pdf = path
                    used.add(stem)
                    break
            paper.pop("file", None)
            out.append((paper, pdf, raw))
    for stem, path in pdfs.items():
        if stem in used:
            continue
        m = find_arxiv(stem)
        key = slug(stem)
        out.append(({"id": str(m) if m else f"local:{key}", "title": "", "authors": [], "year": None,
                     "primary_category": None, "abstract": "", "url": "", "pdf_url": "", "bibkey": key}, path, ""))
    return out


def scan_dir(folder: str | Path) -> list[tuple[dict, Path | None]]:
    """(paper metadata, local PDF path or None) for everything in the folder (not recursive)."""
    root = Path(folder).expanduser()
    if not root.is_dir():
        raise FileNotFoundError(f"--papers {root}: not a folder")
    return [(paper, pdf) for paper, pdf, _ in _scan(root)]


def title_from_text(text: str) -> str:
    """A best guess at a title: the first substantial line of the extracted text."""
    for line in text.splitlines():
        line = line.strip()
        if len(line) > 8 and not find_arxiv(line[:40]) and "@" not in line:
            return line[:200]
    return ""


class LocalSource(BaseSource):
    """The papers in one folder (`options["dir"]`, else `papers_dir`); lists them all, whatever the query."""

    name = "local"
    query_driven = False
    cache_text = False  # the PDF is already on disk
    network = False

    def __init__(self, ctx: SourceContext):
        super().__init__(ctx)
        self.folder = self.options.get("dir") or self.settings.papers_dir
        self._pdfs: dict[str, Path] = {}  # dedup key -> local PDF
        self._raw: dict[str, str] = {}  # dedup key -> the entry's own BibTeX

    def search(self, queries: Sequence[str], limit: int) -> list[dict]:
        if not self.folder:
            raise FileNotFoundError("the local paper source needs a folder (--papers DIR)")
        self.ctx.progress(f"reading the local papers in {self.folder}")
        root = Path(self.folder).expanduser()
        if not root.is_dir():
            raise FileNotFoundError(f"--papers {root}: not a folder")
        found = []
        for paper, pdf, raw in _scan(root):
            key = dedup_key(paper["id"])
            if pdf is not None:
                self._pdfs.setdefault(key, pdf)
            if raw:
                self._raw.setdefault(key, raw)
            found.append(paper)
        return found

    def fetch_text(self, paper: dict) -> tuple[str | None, str | None]:
        pdf = self._pdfs.get(dedup_key(paper["id"]))
        if pdf is None:
            return None, "no PDF for this BibTeX entry in --papers"
        try:
            text = pdf_to_text(pdf.read_bytes())
        except (PdfError, OSError) as exc:
            return None, f"local PDF {pdf.name}: {exc}"
        if not paper.get("title"):
            paper["title"] = title_from_text(text)
        return text, None

    def bibtex(self, paper: dict, key: str) -> str:
        """The entry as the .bib file has it (re-keyed) when it passes the guard, else one rebuilt."""
        raw = self._raw.get(dedup_key(paper["id"]), "")
        return rekey(raw, key) + "\n" if usable_entry(raw) else entry_from_metadata(paper, key)
