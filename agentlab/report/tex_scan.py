"""Reading a section's LaTeX source for the claim checks: same-length views (a position in a view is a position in
the source), brace depths, environments, math, and the sentence and paragraph spans built on them."""

from __future__ import annotations

import re

from agentlab.report.claim_words import (
    ABBREV_RE,
    BLANK_RE,
    BLOCK_ENVS,
    END_RE,
    HEADING_RE,
    ITEM_RE,
    MATH_ENVS,
    NAME_ARGS,
)

FILL = "\x01"  # what blanks a protected piece of source: no letter, digit, space, brace or period


_NAME_CMD_RE = re.compile(r"\\(" + "|".join(NAME_ARGS) + r")(?![A-Za-z])")


_ARG_COUNT = {"multicolumn": 2, "resizebox": 2, "setlength": 2}


_OPT_RE = re.compile(r"\s*(?:(?:\*|\[[^\]]*\]|\([^)]*\))\s*)*")


_CS_RE = re.compile(r"\\(?:([A-Za-z@]+)|(.))", re.S)


ENV_RE = re.compile(r"\\(begin|end)\s*\{([^{}]*)\}")


_MATH_TOKEN_RE = re.compile(r"\$\$|\$|\\\(|\\\)|\\\[|\\\]")


_MATH_CLOSE = {"$$": "$$", "$": "$", "\\(": "\\)", "\\[": "\\]"}


def decomment(s: str) -> str:
    """Comments blanked (an escaped \\% is not one)."""
    return re.sub(r"\\.|%[^\n]*", lambda m: m.group(0) if m.group(0)[0] == "\\" else " " * len(m.group(0)), s,
                  flags=re.S)


def group_end(s: str, i: int) -> int:
    """s[i] is "{": the index after its matching "}" (the end of s when it has none)."""
    depth, j = 0, i
    while j < len(s):
        c = s[j]
        if c == "\\":
            j += 2
            continue
        depth += 1 if c == "{" else -1 if c == "}" else 0
        if depth == 0:
            return j + 1
        j += 1
    return len(s)


def args_end(s: str, i: int, n: int) -> int:
    """The end of `n` brace arguments (with the optional [..], (..) and * before them) from i."""
    for _ in range(n):
        j = _OPT_RE.match(s, i).end()
        if j >= len(s) or s[j] != "{":
            return i
        i = group_end(s, j)
    return i


def _blank(chars: list[str], a: int, b: int) -> None:
    chars[a:b] = FILL * (b - a)


def prose_view(src: str, protected: list[tuple[int, int]]) -> str:
    """Escapes (\\%, \\\\, \\,) and the arguments of name commands (\\ref{..}, \\begin{..}) blanked; each protected
    span (\\val, \\quoted, \\cite) blanked but its backslash (a sentence may start there)."""
    chars = list(src)
    for m in _CS_RE.finditer(src):
        if m.group(2) is not None and m.group(2) not in "()[]":
            _blank(chars, m.start(), m.end())
    for a, b in protected:
        _blank(chars, a + 1, b)
    for m in _NAME_CMD_RE.finditer(src):
        _blank(chars, m.end(), args_end(src, m.end(), _ARG_COUNT.get(m.group(1), 1)))
    return "".join(chars)


def bare_view(prose: str) -> str:
    """The prose view with the letters of control words blanked (\\times4 is a 4 after a command)."""
    return re.sub(r"\\[A-Za-z@]+", lambda m: "\\" + FILL * (len(m.group(0)) - 1), prose)


def env_pairs(src: str) -> list[tuple[str, int, int, int, int]]:
    """(name, begin start, begin end, end start, end end) of every matched environment."""
    stack: list[tuple[str, int, int]] = []
    out = []
    for m in ENV_RE.finditer(src):
        name = m.group(2).strip()
        if m.group(1) == "begin":
            stack.append((name, m.start(), m.end()))
        elif stack and stack[-1][0] == name:
            _, a, b = stack.pop()
            out.append((name, a, b, m.start(), m.end()))
    return out


def math_mask(prose: str, envs: list) -> bytearray:
    """1 where the source is math ($..$, $$..$$, \\(..\\), \\[..\\], math environments)."""
    mask = bytearray(len(prose) + 1)
    close, start = "", 0
    for m in _MATH_TOKEN_RE.finditer(prose):
        if not close and m.group(0) in _MATH_CLOSE:
            close, start = _MATH_CLOSE[m.group(0)], m.start()
        elif close and m.group(0) == close:
            mask[start:m.end()] = b"\x01" * (m.end() - start)
            close = ""
    for name, a, _, _, b in envs:
        if name in MATH_ENVS:
            mask[a:b] = b"\x01" * (b - a)
    return mask


def depths(prose: str) -> list[int]:
    """Brace depth before each position (and at the end)."""
    out, d = [0], 0
    for c in prose:
        d = d + 1 if c == "{" else max(0, d - 1) if c == "}" else d
        out.append(d)
    return out


def env_levels(n: int, envs: list) -> list[int]:
    """How many environments enclose each position."""
    diff = [0] * (n + 2)
    for _, a, _, _, b in envs:
        diff[a] += 1
        diff[b] -= 1
    out, level = [], 0
    for c in diff:
        level += c
        out.append(level)
    return out


def balanced(prose: str, src: str) -> bool:
    """Braces, environments and math of a piece of source (its prose view and source) open and close inside it."""
    d = 0
    for c in prose:
        d += 1 if c == "{" else -1 if c == "}" else 0
        if d < 0:
            return False
    stack = []
    for m in ENV_RE.finditer(src):
        if m.group(1) == "begin":
            stack.append(m.group(2).strip())
        elif not stack or stack.pop() != m.group(2).strip():
            return False
    return (d == 0 and not stack and prose.count("$") % 2 == 0 and prose.count("\\(") == prose.count("\\)")
            and prose.count("\\[") == prose.count("\\]"))


def trimmed(p: str, cuts: list[int]) -> list[tuple[int, int]]:
    """The spans between consecutive cut positions, white space trimmed, empty ones left out."""
    spans = []
    for a, b in zip(cuts, cuts[1:]):
        while a < b and p[a].isspace():
            a += 1
        while b > a and p[b - 1].isspace():
            b -= 1
        if a < b:
            spans.append((a, b))
    return spans


def merged(spans: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """Overlapping or touching spans joined."""
    out: list[list[int]] = []
    for a, b in sorted(spans):
        if out and a <= out[-1][1]:
            out[-1][1] = max(out[-1][1], b)
        else:
            out.append([a, b])
    return [(a, b) for a, b in out]


def sentence_spans(p: str, envs: list, math: bytearray, depth: list[int]) -> list[tuple[int, int]]:
    """Sentences of a prose view (see `claims.sentences`): breaks at sentence ends, blank lines, \\item, headings and
    the \\begin/\\end of non-math environments, only outside braces and math; an outermost float or table is one."""
    blocks = [(a, b) for name, a, _, _, b in envs if name in BLOCK_ENVS]
    blocks = [(a, b) for a, b in blocks if not any(x <= a and b <= y and (x, y) != (a, b) for x, y in blocks)]
    breaks = {x for name, *pos in envs if name not in BLOCK_ENVS | MATH_ENVS for x in pos}
    breaks |= {m.start() for m in ITEM_RE.finditer(p)} | {m.start() for m in BLANK_RE.finditer(p)}
    breaks |= {x for m in HEADING_RE.finditer(p) for x in (m.start(), args_end(p, m.end(), 1))}
    breaks |= {m.end() for m in END_RE.finditer(p)
               if not math[m.start()] and not ABBREV_RE.search(p[max(0, m.start() - 12): m.start() + 1])}
    ok = {b for b in breaks if depth[b] == 0 and not math[b] and not any(a < b < e for a, e in blocks)}
    return trimmed(p, sorted(ok | {0, len(p)} | {x for blk in blocks for x in blk}))


def paragraph_at(p: str, envs: list, math: bytearray, depth: list[int], a: int, b: int) -> tuple[int, int]:
    """The blank-line delimited paragraph around [a, b) of a prose view; blank lines inside braces, math or an
    environment do not delimit one, so a paragraph of balanced source is balanced."""
    env = env_levels(len(p), envs)
    pars = [m for m in BLANK_RE.finditer(p) if depth[m.start()] == 0 and not math[m.start()] and env[m.start()] == 0]
    return (max([m.end() for m in pars if m.end() <= a], default=0),
            min([m.start() for m in pars if m.start() >= b], default=len(p)))

