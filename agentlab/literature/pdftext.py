"""PDF -> clean text -> numbered chunks with stable ids.

pypdf is used (BSD, already a dependency): on the fixture PDFs it keeps the reading order of
two-column layouts and the spaces between words, and it is about 3x faster than pdfplumber, whose
default `extract_text` interleaves the two columns and drops inter-word spaces on arXiv pdfTeX files
("Largelanguagemodelshave…"). pymupdf (AGPL) was not needed.
"""

from __future__ import annotations

import io
import logging
import re
import unicodedata
from dataclasses import dataclass

_TOKEN = re.compile(r"\w+|[^\w\s]")


class PdfError(ValueError):
    """The bytes are not a readable PDF, or it has no extractable text."""


def estimate_tokens(text: str) -> int:
    """A conservative token estimate (words + punctuation, or chars/4, whichever is larger)."""
    return max(len(_TOKEN.findall(text)), (len(text) + 3) // 4)


def pdf_to_text(data: bytes) -> str:
    """Extract the text of a PDF, page by page, as paragraphs separated by blank lines."""
    from pypdf import PdfReader
    from pypdf.errors import PdfReadError

    logging.getLogger("pypdf").setLevel(logging.ERROR)
    if not data.lstrip()[:5].startswith(b"%PDF"):
        raise PdfError("not a PDF (no %PDF header)")
    try:
        reader = PdfReader(io.BytesIO(data))
        pages = [p.extract_text() or "" for p in reader.pages]
    except (PdfReadError, ValueError, KeyError, TypeError, AttributeError, IndexError, OSError) as exc:
        raise PdfError(f"unreadable PDF: {type(exc).__name__}: {exc}") from exc
    text = "\n\n".join(paragraphs_of_page(p) for p in pages)
    if len(text.split()) < 20:
        raise PdfError("the PDF has no extractable text (scanned?)")
    return text


def _clean(text: str) -> str:
    text = unicodedata.normalize("NFKC", text).replace("\u00ad", "")
    return re.sub(r"[ \t\u00a0]+", " ", text)


def paragraphs_of_page(page_text: str) -> str:
    """Join a page's lines into paragraphs: a line that ends a sentence and is clearly shorter than
    the page's typical line closes a paragraph; hyphenated line breaks are joined."""
    lines = [ln.strip() for ln in _clean(page_text).split("\n")]
    lines = [ln for ln in lines if ln]
    if not lines:
        return ""
    widths = sorted(len(ln) for ln in lines)
    typical = widths[int(len(widths) * 0.75)]
    paras: list[str] = []
    cur = ""
    for ln in lines:
        if cur.endswith("-") and ln[:1].islower():
            cur = cur[:-1] + ln
        else:
            cur = f"{cur} {ln}" if cur else ln
        short = len(ln) < 0.8 * typical
        if short and (ln[-1] in ".:?!" or len(ln) < 0.5 * typical):
            paras.append(cur)
            cur = ""
    if cur:
        paras.append(cur)
    return "\n\n".join(paras)


@dataclass(frozen=True)
class Chunk:
    id: int
    text: str
    tokens: int


def split_paragraphs(text: str) -> list[str]:
    return [p.strip() for p in re.split(r"\n\s*\n", _clean(text)) if p.strip()]


def chunk_text(text: str, chunk_tokens: int = 256) -> list[Chunk]:
    """Pack paragraphs into chunks of at most ~chunk_tokens (long paragraphs are cut at sentence
    boundaries). Ids are positions 0..n-1: the same text and chunk size always give the same ids."""
    pieces: list[str] = []
    for para in split_paragraphs(text):
        if estimate_tokens(para) <= chunk_tokens:
            pieces.append(para)
            continue
        sentences = re.split(r"(?<=[.!?])\s+", para)
        cur = ""
        for s in sentences:
            while estimate_tokens(s) > chunk_tokens:  # one huge "sentence": hard cut by words
                words = s.split(" ")
                cut = max(1, len(words) // 2)
                while cut > 1 and estimate_tokens(" ".join(words[:cut])) > chunk_tokens:
                    cut //= 2
                if cur:
                    pieces.append(cur)
                    cur = ""
                pieces.append(" ".join(words[:cut]))
                s = " ".join(words[cut:])
            if cur and estimate_tokens(cur + " " + s) > chunk_tokens:
                pieces.append(cur)
                cur = s
            else:
                cur = f"{cur} {s}" if cur else s
        if cur:
            pieces.append(cur)
    merged: list[str] = []
    for p in pieces:  # pack small neighbouring paragraphs together
        if merged and estimate_tokens(merged[-1] + "\n" + p) <= chunk_tokens:
            merged[-1] = merged[-1] + "\n" + p
        else:
            merged.append(p)
    return [Chunk(i, t, estimate_tokens(t)) for i, t in enumerate(m for m in merged if m.strip())]
