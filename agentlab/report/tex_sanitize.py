"""Escaping plain text as LaTeX, and sanitising model-written LaTeX with an allowlist.

`sanitize` tokenises a section the way TeX does (control words of letters, control symbols, `%`
comments, `^^` notation) and keeps only the control sequences and environments listed in
`agentlab.report.tex_allow`; `\\includegraphics` may name only the figures the host generated. What
is removed is reported. The result is scanned again until it is stable, so a removal can never join
two pieces into a new command (`\\in\\6put` -> `\\input`).
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from agentlab.report import tex_allow as allow

_SPECIAL = {"&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_", "{": r"\{", "}": r"\}",
            "~": r"\textasciitilde{}", "^": r"\textasciicircum{}", "\\": r"\textbackslash{}",
            "<": r"\textless{}", ">": r"\textgreater{}"}
#: characters LLMs like that pdflatex (utf8 inputenc) does not know, as LaTeX
_UNICODE = {"≈": r"$\approx$", "×": r"$\times$", "≤": r"$\leq$", "≥": r"$\geq$", "±": r"$\pm$",
            "→": r"$\rightarrow$", "←": r"$\leftarrow$", "μ": r"$\mu$", "∼": r"$\sim$", "−": "-",
            "≠": r"$\neq$", "∞": r"$\infty$", "\u2009": " ", "\u202f": " ", "\u00a0": "~"}
_BARE_PERCENT = re.compile(r"(?<=\d)%")
_HEADING = re.compile(r"^\s*\\section\*?\{[^}]*\}\s*")
#: control characters: ^^K is a superscript character and ^^L an active one in LaTeX; none is text
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")
#: TeX's ^^ notation (^^69 is "i", ^^5c a backslash): the run of carets and what it encodes
_HATS = re.compile(r"\^\^+(?:[0-9a-f]{2}|[\x00-\x7f])?")
_WORD = re.compile(r"[A-Za-z@]+")  # @ counts as a letter: \@@input is removed whole
_GROUP = re.compile(r"\s*\{([^{}\\]*)\}")  # a literal {argument}
_GRAPHICS = re.compile(r"\*?\s*(?:\[(" + allow.GRAPHICS_OPTION + r")\])?\s*\{([^{}\\]*)\}")
_GRAPHICS_ANY = re.compile(r"\*?\s*(?:\[[^\]{}]*\])?\s*\{[^{}]*\}")
_DEFINED = re.compile(r"\s*(?:\{\s*\\(?:[A-Za-z@]+|.)\s*\}|\\(?:[A-Za-z@]+|.))", re.DOTALL)
_STREAM = re.compile(r"\s*-?\d+")
_MAX_PASSES = 8


def tex_escape(value) -> str:
    """Plain text -> LaTeX (every special character escaped)."""
    return "".join(_SPECIAL.get(ch, ch) for ch in str(value))


def unicode_to_tex(text: str) -> str:
    return "".join(_UNICODE.get(ch, ch) for ch in text)


def sanitize(latex: str, figures: Iterable[str] = ()) -> tuple[str, list[str]]:
    """Keep only allowlisted LaTeX (see `tex_allow`): anything that could read or write a file,
    define a macro, change catcodes or build a command name is removed and listed in the problems.
    Also maps unicode symbols pdflatex lacks and escapes a bare % after a digit (a comment by accident).
    `figures`: the figure files the host generated (e.g. "figures/fig-1.pdf"), the only ones
    `\\includegraphics` may name."""
    problems: list[str] = []

    def report(msg: str) -> None:
        if msg not in problems:
            problems.append(msg)

    text = _HEADING.sub("", latex.strip())
    text = _BARE_PERCENT.sub(r"\\%", unicode_to_tex(text.replace("\r\n", "\n").replace("\r", "\n")))
    if _CONTROL.search(text):
        report("removed control characters")
        text = _CONTROL.sub("", text)
    allowed = frozenset(figures)
    for _ in range(_MAX_PASSES):
        new = _scan(_strip_hats(text, report), allowed, report)
        if new == text:
            return text.strip(), problems
        text = new
    report("the LaTeX could not be sanitised; it is shown as plain text")
    return tex_escape(text).strip(), problems


def _strip_hats(text: str, report) -> str:
    if "^^" not in text:
        return text
    report("removed ^^ character notation")
    return _HATS.sub("", text)


def _scan(s: str, figures: frozenset[str], report) -> str:
    """One pass: comments dropped, every control sequence kept only if allowed."""
    out: list[str] = []
    i, n = 0, len(s)
    while i < n:
        ch = s[i]
        if ch == "%":  # a comment runs to and with the end of the line, as in TeX
            j = s.find("\n", i)
            i = n if j < 0 else j + 1
            continue
        if ch != "\\":
            j = i + 1
            while j < n and s[j] not in "%\\":
                j += 1
            out.append(s[i:j])
            i = j
            continue
        if i + 1 >= n:
            report("removed a trailing backslash")
            i += 1
            continue
        m = _WORD.match(s, i + 1)
        if not m:  # a control symbol
            sym = s[i + 1]
            if sym in allow.SYMBOLS:
                out.append(s[i:i + 2])
            else:
                report(f"removed unknown command \\{sym}" if sym.isprintable() else "removed an unknown control symbol")
            i += 2
            continue
        name, end = m.group(0), m.end()
        kept, i = _word(s, i, name, end, figures, report)
        out.append(kept)
    return "".join(out)


def _word(s: str, start: int, name: str, end: int, figures: frozenset[str], report) -> tuple[str, int]:
    """(what to emit, where to continue) for the control word `\\name` at s[start:end]."""
    if name in ("begin", "end"):
        return _environment(s, start, name, end, report)
    if name == "includegraphics":
        return _includegraphics(s, start, end, figures, report)
    link = _link(s, name, end, report)
    if link is not None:
        return link
    if name in allow.COMMANDS:
        return s[start:end], end
    return _removed(s, name, end, report)


def _environment(s: str, start: int, name: str, end: int, report) -> tuple[str, int]:
    """`\\begin`/`\\end`: kept only with a literal allowlisted environment name."""
    g = _GROUP.match(s, end)
    if g and g.group(1) in allow.ENVIRONMENTS:
        return s[start:g.end()], g.end()
    if g and name == "begin":  # a forbidden environment goes with its body (filecontents, thebibliography, ...)
        close = s.find(f"\\end{{{g.group(1)}}}", g.end())
        report(f"removed environment \\{name}{{{g.group(1).strip()}}}" + (" with its body" if close >= 0 else ""))
        return "", (close + len(f"\\end{{{g.group(1)}}}")) if close >= 0 else g.end()
    if g:
        report(f"removed environment \\{name}{{{g.group(1).strip()}}}")
        return "", g.end()
    report(f"removed forbidden command \\{name} (without a plain environment name)")
    return "", end


def _includegraphics(s: str, start: int, end: int, figures: frozenset[str], report) -> tuple[str, int]:
    """`\\includegraphics`: kept only when it names one of the host's figures."""
    g = _GRAPHICS.match(s, end)
    if g and g.group(2) in figures:
        return s[start:g.end()], g.end()
    loose = _GRAPHICS_ANY.match(s, end)
    shown = (g.group(2).strip() if g else "") or (loose.group(0).strip()[-60:] if loose else "")
    have = ", ".join(sorted(figures)) or "none"
    report(f"removed \\includegraphics{{{shown}}} (a section may show only the report's figures: {have})")
    return "", (loose.end() if loose else end)


def _link(s: str, name: str, end: int, report) -> tuple[str, int] | None:
    """`\\url{...}` as plain text, `\\href{target}` dropped (its text stays); None if neither applies."""
    if name == "url":
        g = _GROUP.match(s, end)
        if g:
            report("\\url shown as plain text (links are not allowed in a section)")
            return r"\texttt{" + tex_escape(g.group(1).strip()) + "}", g.end()
    if name == "href":
        g = _GROUP.match(s, end)
        if g:  # the link target goes; its text (the next group) stays and is checked as usual
            report("\\href shown as its text only (links are not allowed in a section)")
            return "", g.end()
    return None


def _removed(s: str, name: str, end: int, report) -> tuple[str, int]:
    """A control word not allowed: dropped with what it defines or the stream it names, and reported."""
    target = ""
    if name in allow.DEFINERS:
        d = _DEFINED.match(s, end)
        if d:
            target, end = d.group(0).strip(), d.end()
    elif name in allow.STREAMS:
        d = _STREAM.match(s, end)
        if d:
            target, end = d.group(0).strip(), d.end()
    kind = "forbidden" if name in allow.FORBIDDEN or "@" in name else "unknown"
    report(f"removed {kind} command \\{name}{target}")
    return "", end
