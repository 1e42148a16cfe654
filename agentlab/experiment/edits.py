"""Code from an LLM reply: whole files in named fenced blocks, or SEARCH/REPLACE edits against a parent node.

Never JSON-escaped strings (Aider measured that models write worse code that way). A reply sends files whole
(```` ```python method.py ````, or the name on the line before the block) or changes the parent's files with
Aider's `<<<<<<< SEARCH` / `=======` / `>>>>>>> REPLACE` blocks after a line naming the file. `parse_reply`
applies them in reply order and returns the complete new file set; each failure is an `EditError` whose message
tells the model what to fix. The reply is untrusted: plain relative names with four extensions, bounded counts
and sizes, parsed line by line (no regex runs over the whole reply). `format_files` renders files the way
`parse_reply` reads them (a file without a final newline comes back with one).
"""

from __future__ import annotations

import difflib
import os.path
import re
from dataclasses import dataclass, field
from typing import Callable, Literal

EXTENSIONS = (".py", ".json", ".txt", ".md")
MAX_EDITS = 64
# a token with one of these extensions is meant as a file name (and then refused if not allowed)
_KNOWN = {"py", "json", "txt", "md", "sh", "bash", "yaml", "yml", "toml", "cfg", "ini", "csv", "ipynb", "js", "ts",
          "c", "h", "cc", "cpp", "cu", "rs", "go", "pyx", "html", "tex", "env", "pth", "pt", "so"}
_KEYS = {"title", "file", "filename", "name", "path"}
_LANGS = {"py": "python", "json": "json", "md": "markdown", "txt": "text"}
_PY = {"", "python", "py", "python3"}
_DECOR = "#*`'\"> \t:{}"
_PART = re.compile(r"[A-Za-z0-9_.-]{1,64}")
_PREFIX = re.compile(r"(?:file ?name|file|path)(?:\s*[:=]\s*|\s+)", re.IGNORECASE)
_SEARCH = re.compile(r"<{5,9} ?SEARCH")
_DIVIDER = re.compile(r"={5,9}")
_REPLACE = re.compile(r">{5,9} ?REPLACE")
_FENCE = re.compile(r"(`{3,}|~{3,})([^`]*)")
_RULE = ("File names are plain relative names such as method.py or pkg/mod.py (letters, digits, _ . -, "
         "at most one folder) ending in .py, .json, .txt or .md.")
FORMAT = ("Send each file whole in a fenced block named in its info string:\n\n```python method.py\n"
          "<the complete file>\n```\n\nor change the parent's files with SEARCH/REPLACE blocks after a line "
          "naming the file:\n\nmethod.py\n<<<<<<< SEARCH\n<lines copied exactly from the file>\n=======\n"
          "<the lines that replace them>\n>>>>>>> REPLACE")


class EditError(ValueError):
    """The reply's code could not be read or applied; the message is written for the model to fix it."""


@dataclass
class EditResult:
    files: dict[str, str]
    changed: list[str]
    mode: Literal["files", "edits", "mixed"]


@dataclass
class _Item:
    kind: str  # "file", "edit" or "unnamed"
    name: str | None
    line: int
    text: str = ""
    search: list[str] = field(default_factory=list)
    replace: list[str] = field(default_factory=list)
    lang: str = ""


@dataclass
class _Fence:
    marker: str
    indent: int
    name: str | None
    lang: str
    line: int
    body: list[str] = field(default_factory=list)
    edits: bool = False


def _clip(text: str, limit: int = 1500, max_lines: int = 30) -> str:
    lines = text.split("\n")
    out = "\n".join(line[:200] for line in lines[:max_lines])[:limit]
    return out if out == text else out + "\n[... clipped]"


def _token_name(tok: str, explicit: bool = False) -> str | None:
    """`tok` as a file name if it is meant as one: a known extension, or introduced as a name (title=, File:)."""
    tok = tok.strip(_DECOR)
    if not tok or len(tok) > 200 or any(c.isspace() for c in tok):
        return None
    base = tok.rpartition("/")[2]
    ext = base.rpartition(".")[2].lower() if "." in base else ""
    return tok if explicit or ext in _KNOWN else None


def _line_name(line: str) -> str | None:
    """The file a line names: `method.py`, `**method.py**`, `# method.py`, `File: method.py`, ..."""
    s = line.strip().strip(_DECOR)
    if len(s) > 300:
        return None
    m = _PREFIX.match(s)
    return _token_name(s[m.end():], True) if m and m.end() < len(s) else _token_name(s)


def _info_name(info: str) -> str | None:
    """The file an info string names: `python method.py`, `python title="method.py"`, `python:method.py`."""
    for tok in info.split()[:8]:
        key, eq, val = tok.partition("=")
        if eq and key.strip("{").lower() in _KEYS:
            return _token_name(val, True)
        name = _token_name(tok.rpartition(":")[2])
        if name:
            return name
    return None


class _Parser:
    """One pass over the reply's lines: fenced blocks and SEARCH/REPLACE blocks, in order."""

    def __init__(self, lines: list[str]) -> None:
        self.lines, self.items, self.fence = lines, [], None
        self.prev, self.last, self.edits = "", None, 0

    def run(self) -> list[_Item]:
        i = 0
        while i < len(self.lines):
            line = self.lines[i]
            s = line.strip()
            if _SEARCH.fullmatch(s):
                i = self._edit(i)
            elif self.fence is not None:
                self._fence_line(line, s)
            elif m := _FENCE.fullmatch(s):
                info = m.group(2).strip()
                lang = info.split()[0].partition(":")[0].lower() if info else ""
                name = _info_name(info) or _line_name(self.prev)
                self.fence = _Fence(m.group(1), len(line) - len(line.lstrip()), name, lang, i + 1)
                self.prev = ""
            elif s:
                self.prev = line
            i += 1
        if self.fence is not None:
            raise EditError(f"The code block opened on line {self.fence.line} of the reply is never closed "
                            f"(was the reply cut off?). End every block with a {self.fence.marker} line.")
        return self.items

    def _fence_line(self, line: str, s: str) -> None:
        f = self.fence
        if len(s) >= len(f.marker) and s == f.marker[0] * len(s):
            self.fence, self.prev = None, ""
            if not f.edits:
                self._whole(f)
            return
        f.body.append(line[min(f.indent, len(line) - len(line.lstrip(" "))):])
        if s:
            self.prev = line

    def _whole(self, f: _Fence) -> None:
        body, name = f.body, f.name
        if name is None and body and body[0].lstrip().startswith("#"):
            name = _line_name(body[0])  # a first line `# file: method.py` (dropped from JSON, where it is no comment)
            body = body[1:] if name and name.endswith(".json") else body
        text = "\n".join(body) + "\n" if body else ""
        self.items.append(_Item("file" if name else "unnamed", name, f.line, text=text, lang=f.lang))

    def _edit(self, i: int) -> int:
        start, search, replace = i + 1, [], []
        part = search
        for i in range(i + 1, len(self.lines)):
            line = self.lines[i]
            s = line.strip()
            if _REPLACE.fullmatch(s) and part is replace:
                break
            if _SEARCH.fullmatch(s) or _REPLACE.fullmatch(s):
                raise EditError(f"The SEARCH/REPLACE block on line {start} of the reply has no ======= line "
                                f"before line {i + 1}. Each block is SEARCH, =======, REPLACE.")
            if _DIVIDER.fullmatch(s) and part is search:
                part = replace
            else:
                part.append(line)
        else:
            raise EditError(f"The SEARCH/REPLACE block on line {start} of the reply never ends with a "
                            ">>>>>>> REPLACE line (was the reply cut off?).")
        self.edits += 1
        if self.edits > MAX_EDITS:
            raise EditError(f"The reply has more than {MAX_EDITS} SEARCH/REPLACE blocks; send the file whole.")
        name = _line_name(self.prev) or (self.fence.name if self.fence else None) or self.last
        if self.fence is not None:
            self.fence.edits = True
        self.prev, self.last = "", name
        self.items.append(_Item("edit", name, start, search=search, replace=replace))
        return i


def _check_name(name: str, allowed: Callable[[str], bool] | None) -> str:
    shown = repr(name[:80])
    name = name[2:] if name.startswith("./") else name
    parts = name.split("/")
    if name.startswith(("/", "\\", "~")) or name[1:2] == ":":
        why = "is an absolute path"
    elif ".." in name:
        why = "leaves the working folder (..)"
    elif any(p.startswith(".") for p in parts):
        why = "is a hidden (dot) file"
    elif not name.endswith(EXTENSIONS):
        why = "has an extension that is not allowed"
    elif len(parts) > 2 or not all(_PART.fullmatch(p) for p in parts):
        why = "is not a plain relative name"
    elif allowed is not None and not allowed(name):
        why = "is not a file the reply may write"
    else:
        return name
    raise EditError(f"Refused file name {shown}: it {why}. {_RULE}")


def _runs(hay: list[str], needle: list[str], cap: int = 20) -> list[int]:
    """Start indices of `needle` as a run of whole lines in `hay` (at most `cap`), in linear time: each distinct
    line becomes one character, then `str.find`."""
    table: dict[str, str] = {}
    code = "".join(table.setdefault(k, chr(len(table))) for k in hay)
    if any(k not in table for k in needle):
        return []
    pattern, hits = "".join(table[k] for k in needle), []
    pos = code.find(pattern)
    while pos >= 0 and len(hits) < cap:
        hits.append(pos)
        pos = code.find(pattern, pos + 1)
    return hits


def _indent(lines: list[str]) -> str:
    return os.path.commonprefix([s[: len(s) - len(s.lstrip())] for s in lines if s.strip()] or [""])


def _same_shape(window: list[str], search: list[str]) -> bool:
    wp, sp = len(_indent(window)), len(_indent(search))
    return all(a[wp:].rstrip() == b[sp:].rstrip() for a, b in zip(window, search))


def _reindent(replace: list[str], search: list[str], window: list[str]) -> list[str]:
    wp, sp = _indent(window), _indent(search)
    return [wp + r[len(sp):] if r.strip() and r.startswith(sp) else r for r in replace]


def _closest(lines: list[str], search: list[str]) -> int:
    """Where the lines most like `search` start: candidate starts from lines similar to SEARCH's first lines
    (difflib's cheap ratios, bounded work), the best of them by difflib's ratio line against line."""
    m, score = difflib.SequenceMatcher(autojunk=False), {}
    for j, probe in [(j, s.strip()[:120]) for j, s in enumerate(search) if s.strip()][:4]:
        m.set_seq2(probe)
        for k, line in enumerate(lines[:10_000]):
            m.set_seq1(line.strip()[:120])
            if m.real_quick_ratio() > 0.6 and (r := m.quick_ratio()) > 0.6:
                score[max(k - j, 0)] = score.get(max(k - j, 0), 0.0) + r

    def aligned(start: int) -> float:
        pairs = zip(lines[start:start + 15], search[:15])
        return sum(difflib.SequenceMatcher(None, a.strip()[:120], b.strip()[:120]).ratio() for a, b in pairs)

    return max(sorted(score, key=score.get, reverse=True)[:10], key=aligned, default=0)


def _mismatch(name: str, lines: list[str], search: list[str]) -> EditError:
    real = len(lines) - (len(lines) > 1 and lines[-1] == "")
    start = min(_closest(lines, search), max(real - 1, 0))
    end = min(real, start + len(search), start + 40)
    near = "\n".join(f"{k + 1:>5} | {lines[k][:200]}" for k in range(start, end)) or "(the file is empty)"
    return EditError(f"The SEARCH text for {name} does not match any lines of {name}.\nSEARCH:\n"
                     f"{_clip(chr(10).join(search))}\n\nThe most similar lines in {name} (lines {start + 1}-{end}):\n"
                     f"{near}\n\nCopy the SEARCH lines exactly from the file (same lines, same indentation), "
                     f"or send {name} whole in a fenced block.")


def _apply(files: dict[str, str], name: str, it: _Item) -> str:
    search, replace = it.search, it.replace
    if not any(s.strip() for s in search):
        if name in files:
            raise EditError(f"The SEARCH part of the block for {name} is empty, but {name} exists. Copy the lines "
                            f"to change into SEARCH, or send {name} whole in a fenced block.")
        return "\n".join(replace) + "\n" if replace else ""
    if name not in files:
        raise EditError(f"{name} is not one of the files: {', '.join(sorted(files)) or '(there are none)'}. "
                        f"Edit one of those, or create {name} with an empty SEARCH part.")
    lines, new = files[name].split("\n"), replace
    hits = _runs(lines, search)
    if not hits:
        cap = max(21, 100_000 // len(search))  # bounds the shape checks below
        loose = _runs([s.strip() for s in lines], [s.strip() for s in search], cap)
        hits = [h for h in loose if _same_shape(lines[h:h + len(search)], search)][:20]
        new = _reindent(replace, search, lines[hits[0]:hits[0] + len(search)]) if len(hits) == 1 else replace
    if len(hits) > 1:
        many = f"{len(hits)} or more" if len(hits) >= 20 else str(len(hits))
        raise EditError(f"The SEARCH text for {name} matches {many} places (lines "
                        f"{', '.join(str(h + 1) for h in hits)}); it must match exactly one. Add the "
                        f"surrounding lines to SEARCH so that it is unique.")
    if not hits:
        raise _mismatch(name, lines, search)
    return "\n".join(lines[:hits[0]] + new + lines[hits[0] + len(search):])


def _pick_unnamed(items: list[_Item], default_name: str | None) -> _Item:
    blocks = [it for it in items if it.kind == "unnamed"]
    py = [it for it in blocks if it.lang in _PY]
    if default_name and len(py) == 1:
        return _Item("file", default_name, py[0].line, text=py[0].text)
    if not blocks:
        raise EditError(f"The reply contains no code. {FORMAT}")
    raise EditError(f"The reply has {len(blocks)} code block(s) but none says which file it is. {FORMAT}")


def _check_size(text: str, max_bytes: int) -> None:
    if "\x00" in text:
        raise EditError("The reply contains NUL bytes; send plain text.")
    try:
        size = len(text.encode("utf-8"))
    except UnicodeEncodeError:
        raise EditError("The reply is not valid Unicode text (lone surrogates); send plain text.") from None
    if size > 4 * max_bytes + 65_536:
        raise EditError(f"The reply is {size} bytes, too long; send at most {max_bytes} bytes of code.")


def _check_bounds(files: dict[str, str], touched: list[str], max_files: int, max_bytes: int) -> None:
    if len(files) > max_files:
        raise EditError(f"The reply would leave {len(files)} files ({', '.join(files)}); at most {max_files}.")
    sizes = {n: len(c.encode("utf-8")) for n, c in files.items()}
    for name in touched:
        if sizes[name] > max_bytes:
            raise EditError(f"{name} would be {sizes[name]} bytes; at most {max_bytes} bytes per file.")
    if sum(sizes.values()) > max_bytes:
        raise EditError(f"The files would total {sum(sizes.values())} bytes; at most {max_bytes} in all.")


def parse_reply(text: str, parent: dict[str, str] | None = None, allowed: Callable[[str], bool] | None = None,
                max_files: int = 8, max_bytes: int = 200_000, default_name: str | None = None) -> EditResult:
    """The complete new file set: `parent`'s files with the reply's edits applied and its whole files written.

    `default_name` names a lone unnamed python block (and edits that name no file) when one file is expected;
    `allowed(name)` may refuse names the checks pass (e.g. `results.json`). Raises `EditError`."""
    _check_size(text, max_bytes)
    items = _Parser(text.replace("\r\n", "\n").split("\n")).run()
    if all(it.kind == "unnamed" for it in items):
        items = [_pick_unnamed(items, default_name)]
    base = dict(parent or {})
    files, touched = dict(base), []
    for it in items:
        if it.kind == "unnamed":
            continue
        name = it.name or default_name or (next(iter(base)) if len(base) == 1 else None)
        if name is None:
            raise EditError(f"The SEARCH/REPLACE block on line {it.line} of the reply does not say which file it "
                            f"edits; put the file name alone on the line before it. Files: {', '.join(base)}.")
        name = _check_name(name, allowed)
        files[name] = it.text if it.kind == "file" else _apply(files, name, it)
        touched += [name] if name not in touched else []
    _check_bounds(files, touched, max_files, max_bytes)
    kinds = {it.kind for it in items} - {"unnamed"}
    mode = "mixed" if len(kinds) == 2 else "files" if "file" in kinds else "edits"
    return EditResult(files, [n for n in touched if base.get(n) != files[n]], mode)


def format_files(files: dict[str, str]) -> str:
    """The files as named fenced blocks (how the prompt shows a parent's code); `parse_reply` reads them back."""
    blocks = []
    for name, content in files.items():
        ticks = max([len(s) - len(s.lstrip("`")) + 1 for s in (x.strip() for x in content.split("\n"))] + [3])
        fence, lang = "`" * ticks, _LANGS.get(name.rpartition(".")[2], "")
        body = content[:-1] if content.endswith("\n") else content
        blocks.append(f"{fence}{lang} {name}\n" + (body + "\n" if content else "") + fence)
    return "\n\n".join(blocks) + "\n"
