"""LaTeX rendering (Jinja2 with LaTeX-safe delimiters); escaping, sanitising and compiling live in
`tex_sanitize` and `tex_compile` and are re-exported here."""

from __future__ import annotations

import jinja2

from agentlab.paths import templates_dir
from agentlab.report.tex_compile import CompileResult, compile_pdf, log_error
from agentlab.report.tex_sanitize import sanitize, tex_escape, unicode_to_tex

__all__ = ["CompileResult", "compile_pdf", "env", "log_error", "render", "sanitize", "template_names",
           "tex_escape", "unicode_to_tex"]


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
