"""LaTeX rendering (Jinja2 with LaTeX-safe delimiters), sanitising LLM LaTeX, and compiling."""

from __future__ import annotations

import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

import jinja2

from agentlab.paths import templates_dir

_SPECIAL = {"&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_", "{": r"\{", "}": r"\}",
            "~": r"\textasciitilde{}", "^": r"\textasciicircum{}", "\\": r"\textbackslash{}",
            "<": r"\textless{}", ">": r"\textgreater{}"}
_FORBIDDEN = re.compile(
    r"\\(?:input|include|includeonly|InputIfFileExists|openin|openout|read|write|immediate|special"
    r"|write18|catcode|documentclass|usepackage|bibliography"
    r"|bibliographystyle|def|let|newcommand|renewcommand)\b|\\(?:begin|end)\{document\}"
)
#: characters LLMs like that pdflatex (utf8 inputenc) does not know, as LaTeX
_UNICODE = {"≈": r"$\approx$", "×": r"$\times$", "≤": r"$\leq$", "≥": r"$\geq$", "±": r"$\pm$",
            "→": r"$\rightarrow$", "←": r"$\leftarrow$", "μ": r"$\mu$", "∼": r"$\sim$", "−": "-",
            "≠": r"$\neq$", "∞": r"$\infty$", "\u2009": " ", "\u202f": " ", "\u00a0": "~"}
_BARE_PERCENT = re.compile(r"(?<=\d)%")
_HEADING = re.compile(r"^\s*\\section\*?\{[^}]*\}\s*")
_FILE_LINE = re.compile(r"^\./?([^:\n]+\.tex):(\d+): (.*)$", re.MULTILINE)


def tex_escape(value) -> str:
    """Plain text -> LaTeX (every special character escaped)."""
    return "".join(_SPECIAL.get(ch, ch) for ch in str(value))


def unicode_to_tex(text: str) -> str:
    return "".join(_UNICODE.get(ch, ch) for ch in text)


def sanitize(latex: str) -> tuple[str, list[str]]:
    """Remove what an LLM's LaTeX may not do (read/write files, redefine macros, change preamble);
    map unicode symbols pdflatex lacks, and escape a bare % after a digit (a comment by accident)."""
    problems = []
    latex = _BARE_PERCENT.sub(r"\\%", unicode_to_tex(_HEADING.sub("", latex.strip())))
    for m in _FORBIDDEN.finditer(latex):
        problems.append(f"removed forbidden command {m.group(0)}")
    latex = _FORBIDDEN.sub("", latex)
    return latex.strip(), problems


def env() -> jinja2.Environment:
    e = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(templates_dir())),
        block_start_string=r"\BLOCK{", block_end_string="}",
        variable_start_string=r"\VAR{", variable_end_string="}",
        comment_start_string=r"\#{", comment_end_string="}",
        line_statement_prefix="%#", line_comment_prefix="%%",
        trim_blocks=True, lstrip_blocks=True, autoescape=False,
        undefined=jinja2.StrictUndefined, keep_trailing_newline=True,
    )
    e.filters["e"] = tex_escape
    return e


def render(name: str, **vars) -> str:
    return env().get_template(name).render(**vars)


def template_names() -> list[str]:
    root = templates_dir()
    return sorted(p.name for p in root.iterdir() if (p / "main.tex.j2").exists()) if root.exists() else []


@dataclass
class CompileResult:
    ok: bool
    log_excerpt: str
    error_line: int | None
    pdf: Path | None


def compile_pdf(src_dir: Path, timeout: float, main: str = "main.tex") -> CompileResult:
    """latexmk (pdflatex + bibtex) in a temporary copy of `src_dir`; the PDF lands in src_dir."""
    if not shutil.which("latexmk"):
        return CompileResult(False, "latexmk is not installed (apt-get install latexmk texlive-latex-recommended)",
                             None, None)
    with tempfile.TemporaryDirectory(prefix="agentlab-tex-") as tmp:
        build = Path(tmp) / "src"
        shutil.copytree(src_dir, build, ignore=shutil.ignore_patterns(main.replace(".tex", ".pdf"), "reviews",
                                                                       "*.json", ".git", "pages"))
        cmd = ["latexmk", "-pdf", "-bibtex", "-interaction=nonstopmode", "-halt-on-error", "-file-line-error",
               "-no-shell-escape", main]
        try:
            proc = subprocess.run(cmd, cwd=build, capture_output=True, text=True, timeout=timeout,
                                  errors="replace", stdin=subprocess.DEVNULL)
            rc = proc.returncode
        except subprocess.TimeoutExpired:
            return CompileResult(False, f"latexmk took longer than {timeout:.0f} s (a loop in the LaTeX?)", None, None)
        log_path = build / main.replace(".tex", ".log")
        log = log_path.read_text(errors="replace") if log_path.exists() else proc.stdout + proc.stderr
        pdf = build / main.replace(".tex", ".pdf")
        if rc == 0 and pdf.exists():
            out = src_dir / pdf.name
            shutil.copy(pdf, out)
            return CompileResult(True, "", None, out)
        excerpt, line = log_error(log)
        if not excerpt:
            blg = build / main.replace(".tex", ".blg")
            excerpt = (blg.read_text(errors="replace")[-1500:] if blg.exists() else "") or (proc.stdout + proc.stderr)[-1500:]
        return CompileResult(False, excerpt, line, None)


def log_error(log: str) -> tuple[str, int | None]:
    """The first error of a pdflatex log (with its context lines) and its line in main.tex."""
    m = _FILE_LINE.search(log)
    if m:
        start = m.start()
        line = int(m.group(2)) if m.group(1).endswith("main.tex") else None
    else:
        idx = log.find("\n! ")
        if idx < 0:
            return "", None
        start = idx + 1
        lm = re.search(r"^l\.(\d+)", log[start:], re.MULTILINE)
        line = int(lm.group(1)) if lm else None
    return log[start:start + 1200].strip(), line
