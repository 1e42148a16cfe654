"""The check build: the report compiled once more as check.tex, with every number code rendered printed as a
digit-free placeholder (see docs/integrity.md). Any digit left in that PDF's text was typed by the writer (or
computed by a LaTeX trick); `scan` finds each one and the section it is in. Also: the PDF's text
(pdftotext), the bibliography check (the .bbl holds exactly the cited run keys; references.bib unchanged),
and `references-check.bib`, the bibliography with the digits of its field values replaced by letters.

What prints digit-free in check.tex (templates/partials/check.tex.j2): `\\agentlabnum{...}` (values, the
revision, code-made captions) and the cells of code-built tables print NUM; page, section, table, figure,
footnote, equation and list counters print roman numerals; figures print a framed FIGURE; citations are
author-year, from references-check.bib.
"""

from __future__ import annotations

import os
import re
import selectors
import shutil
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

from agentlab.report.schemas import SECTION_TITLES
from agentlab.report.tex_compile import compile_pdf, read_capped

MAX_TEXT_BYTES = 4 << 20
MAX_BIB_BYTES = 20 << 20
CHECK_BIB = "references-check.bib"
_LETTERS = str.maketrans("0123456789", "abcdefghij")
_HEAD = re.compile(r"@\s*([A-Za-z]+)\s*([{(])")
_NAME = re.compile(r"[^\s=,{}()#\"]+\s*=\s*")
_MACRO = re.compile(r"[^\s,#{}()\"=]+")
_WS = re.compile(r"[\s,]*")
_JOIN = re.compile(r"\s*(?:#\s*)?")
_BIBITEM = re.compile(r"\\bibitem\s*")
_TOKEN = re.compile(r"\.?\d[\w%]*(?:[.,\-+][\w%]+)*")
_ID_JOIN = "-_."
_ROMAN = r"[IVXLCDM]+"
_NUMERALS = [a + b for a in ("", "X", "XX", "XXX") for b in ["", *"I II III IV V VI VII VIII IX".split()]][1:]
_CAPTION = re.compile(rf"^\s*(?:Table|Figure)\s+{_ROMAN}\s*:", re.MULTILINE)


@dataclass
class Finding:
    section: str | None  # a section name, "caption", "title" (before the abstract), "references", or None
    token: str
    context: str
    pos: int = -1  # where in the extracted text


@dataclass
class CheckBuild:
    ok: bool  # False: the check could not run (no PDF, or no text); findings are then empty
    text: str
    findings: list[Finding] = field(default_factory=list)
    log_excerpt: str = ""


# ---- code-rendered numbers ----------------------------------------------------------------------

def wrap_numbers(tex: str) -> str:
    """Escaped text code made (a caption, a path) with each digit run in \\agentlabnum{...}."""
    return re.sub(r"\d+(?:\.\d+)*", lambda m: f"\\agentlabnum{{{m.group(0)}}}", tex)


# ---- references-check.bib -----------------------------------------------------------------------

def _end(text: str, j: int) -> int:
    """The index after the braced group or quoted string that starts at j (braces balanced inside)."""
    depth, quote = 0, text[j] == '"'
    for k in range(j + quote, len(text)):
        if quote and text[k] == '"' and not depth:
            return k + 1
        depth += (text[k] == "{") - (text[k] == "}")
        if not quote and not depth:
            return k + 1
    return len(text)


def _value(bib: str, j: int, out: list[str]) -> int:
    """Copy one field value (parts joined by #) from j, digits as letters; a bare number gets braces."""
    while j < len(bib):
        if bib[j] in "{\"":
            end = _end(bib, j)
            out.append(bib[j:end].translate(_LETTERS))
        elif m := _MACRO.match(bib, j):
            end, word = m.end(), m.group(0)
            out.append("{" + word.translate(_LETTERS) + "}" if word.isdigit() else word)
        else:
            return j
        sep = _JOIN.match(bib, end)
        out.append(sep.group(0))
        j = sep.end()
        if "#" not in sep.group(0):
            return j
    return j


def check_bib(bib: str) -> str:
    """references.bib with every digit of a field value (and @string/@preamble text) replaced by a letter
    (0->a ... 9->j); entry keys and field names as they are, bare numbers (`year = 2023`) braced."""
    out, i = [], 0
    while (m := _HEAD.search(bib, i)) is not None:
        out.append(bib[i:m.end()])
        kind, close = m.group(1).lower(), "}" if m.group(2) == "{" else ")"
        j = m.end()
        if kind == "comment":
            i = _end(bib, j - 1) if close == "}" else (bib.find(")", j) + 1 or len(bib))
            out.append(bib[j:i])
            continue
        if kind not in ("preamble", "string"):
            comma = bib.find(",", j)
            if comma < 0:
                i = j
                break
            out.append(bib[j:comma + 1])
            j = comma + 1
        while j < len(bib):
            ws = _WS.match(bib, j)
            out.append(ws.group(0))
            j = ws.end()
            if j >= len(bib) or bib[j] == close:
                out.append(bib[j:j + 1])
                j += 1
                break
            name = _NAME.match(bib, j) if kind != "preamble" else None
            if name:
                out.append(name.group(0))
                j = name.end()
            after = _value(bib, j, out)
            if after == j:  # not BibTeX we understand: one character on, digits as letters
                out.append(bib[j].translate(_LETTERS))
                after = j + 1
            j = after
        i = j
    out.append(bib[i:])
    return "".join(out)


def write_check_bib(out: Path) -> Path | None:
    """out/references-check.bib from out/references.bib (None, and no stale copy, when there is none)."""
    dest = out / CHECK_BIB
    if dest.is_symlink() or dest.exists():
        dest.unlink()
    data = read_capped(out / "references.bib", MAX_BIB_BYTES)
    if data is None:
        return None
    dest.write_text(check_bib(data.decode(errors="replace")))
    return dest


# ---- the PDF's text -----------------------------------------------------------------------------

def pdf_text(pdf: Path, timeout: float = 60, cap: int = MAX_TEXT_BYTES) -> str:
    """The PDF's text (pdftotext, reading order, UTF-8), at most `cap` bytes; "" when pdftotext is missing,
    fails or runs past `timeout`."""
    exe = shutil.which("pdftotext")
    if not exe:
        return ""
    proc = subprocess.Popen([exe, "-q", "-enc", "UTF-8", str(pdf), "-"], stdin=subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, start_new_session=True)
    chunks, size, deadline, done = [], 0, time.monotonic() + timeout, False
    with selectors.DefaultSelector() as sel:
        sel.register(proc.stdout, selectors.EVENT_READ)
        while size < cap and (left := deadline - time.monotonic()) > 0:
            if not sel.select(left):
                continue
            data = os.read(proc.stdout.fileno(), min(65536, cap - size))
            if not data:
                done = True
                break
            chunks.append(data)
            size += len(data)
    if not done:
        proc.kill()
    rc = proc.wait()
    proc.stdout.close()
    return b"".join(chunks).decode(errors="replace") if rc == 0 or (not done and size >= cap) else ""


# ---- the bibliography ---------------------------------------------------------------------------

def bbl_keys(bbl: str) -> list[str]:
    """The keys of the `\\bibitem[label]{key}` entries of a .bbl, in order."""
    keys = []
    for m in _BIBITEM.finditer(bbl):
        j = m.end()
        if bbl.startswith("[", j):  # the label may hold braces and brackets
            depth, j = 0, j + 1
            while j < len(bbl) and (bbl[j] != "]" or depth):
                depth += (bbl[j] == "{") - (bbl[j] == "}")
                j += 1
            j = re.compile(r"\]\s*").match(bbl, j).end() if j < len(bbl) else j
        key = re.compile(r"\{([^{}]*)\}").match(bbl, j)
        if key and key.group(1).strip():
            keys.append(key.group(1).strip())
    return keys


def verify_bibliography(bbl: str, cited: set[str], run_keys: set[str], bib_written: str,
                        bib_after: str) -> list[str]:
    """Problems: a bibliography entry that is not cited or not a paper of this run, a cited key missing from
    the bibliography, references.bib changed by the build."""
    keys = bbl_keys(bbl)
    problems = [f"bibliography entry {k!r} is listed twice" for k in sorted({k for k in keys if keys.count(k) > 1})]
    for k in dict.fromkeys(keys):
        if k not in run_keys:
            problems.append(f"bibliography entry {k!r} is not a paper of this run")
        elif k not in cited:
            problems.append(f"bibliography entry {k!r} is not cited in the text")
    problems += [f"cited key {k!r} is missing from the bibliography" for k in sorted(cited - set(keys))]
    if bib_after != bib_written:
        problems.append("references.bib was changed by the build" if bib_after else
                        "references.bib is missing after the build")
    return problems


# ---- scanning the check build's text ------------------------------------------------------------

def digit_tokens(text: str) -> list[tuple[int, int, str]]:
    """(start, end, token) of every token that starts with a digit or `.digit` after a non-alphanumeric
    character: 41.3, 41.3ms, 3.2X, .953, 1e-3, 2nd, 10-20. Not digits inside a name that starts with a letter
    (H2O, fp16, A100, SmolLM2-135M, Llama-2-7B), but digits glued to a placeholder (NUM3, NUM.5) are."""
    out = []
    for m in _TOKEN.finditer(text):
        i = k = m.start()
        while k and (text[k - 1].isalnum() or text[k - 1] in _ID_JOIN):
            k -= 1
        word = text[k:i].lstrip(_ID_JOIN)  # the name the digit would continue (SmolLM2-135M)
        if word and word[0].isalpha() and not re.fullmatch(r"NUM[-_.]?", word):  # NUM3: digits glued to a value
            continue
        out.append((i, m.end(), m.group(0)))
    return out


def _headings(text: str, titles: dict[str, str]) -> list[tuple[int, str]]:
    """(position, part) where each part of the text starts: "title" at 0, the abstract at "Abstract", the
    k-th other section at its heading (a line with the roman numeral k, then, maybe after a float or an
    equation number, a line with its title; searched in order), "references" at the last "References"."""
    marks = [(0, "title")]
    m = re.search(r"^[ \t]*Abstract\b", text, re.MULTILINE)
    if m:
        marks.append((m.start(), "abstract"))
    pos = m.end() if m else 0
    for numeral, (name, title) in zip(_NUMERALS, [(n, t) for n, t in titles.items() if n != "abstract" and t]):
        title = re.escape(title)
        num = re.compile(rf"^[ \t]*{numeral}(?:[ \t]+{title})?[ \t]*$", re.MULTILINE).search(text, pos)
        head = num and (num if num.group(0).strip() != numeral else
                        re.compile(rf"^[ \t]*{title}[ \t]*$", re.MULTILINE).search(text, num.end()))
        if head:
            marks.append((num.start(), name))
            pos = head.end()
    refs = [r.start() for r in re.finditer(r"^[ \t]*References[ \t]*$", text, re.MULTILINE)]
    if refs:
        marks.append((refs[-1], "references"))
    return sorted(marks)


def _in_caption(text: str, pos: int) -> bool:
    start = text.rfind("\n\n", 0, pos)
    para = text[start + 1 if start >= 0 else 0: pos]
    return bool(_CAPTION.search(para))


def section_of(text: str, pos: int, titles: dict[str, str], _marks: list | None = None) -> str | None:
    """Which part of the check build's text `pos` is in: a section name, "caption" (a table or figure
    caption: its paragraph starts "Table IV:" / "Figure II:"), "title" (before the abstract), "references",
    or None when the text has no heading at all."""
    if _in_caption(text, pos):
        return "caption"
    marks = _marks if _marks is not None else _headings(text, titles)
    return max((m for m in marks if m[0] <= pos), default=(0, None))[1] if len(marks) > 1 else None


def scan(text: str, titles: dict[str, str]) -> list[Finding]:
    """A Finding for every digit token of the check build's text, with its section and ~60 characters around."""
    marks = _headings(text, titles)
    return [Finding(section_of(text, s, titles, marks), tok, " ".join(text[max(0, s - 30): e + 30].split()), s)
            for s, e, tok in digit_tokens(text)]


def check_build(out: Path, timeout: float, titles: dict[str, str] | None = None) -> CheckBuild:
    """Compile out/check.tex (rendered with check=True; references-check.bib is written here from
    out/references.bib), extract its text and scan it (`titles`: the sections in the order they are printed,
    default SECTION_TITLES). ok=False when the check could not run; the PDF lands in out/check.pdf."""
    titles = SECTION_TITLES if titles is None else titles
    write_check_bib(out)
    res = compile_pdf(out, timeout, main="check.tex")
    if not res.ok or res.pdf is None:
        return CheckBuild(False, "", [], res.log_excerpt)
    text = pdf_text(res.pdf, timeout)
    if not text.strip():
        return CheckBuild(False, "", [], "no text from check.pdf (is pdftotext installed? apt-get install "
                                         "poppler-utils)")
    return CheckBuild(True, text, scan(text, titles))
