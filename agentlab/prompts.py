"""Prompt templates live in prompts/ as Jinja2 files; one file per role or step.

A chat template has a `<<system>>` section and a `<<user>>` section; `render_messages` turns it into
OpenAI messages. `render_text` renders a plain template (for snippets such as the JSON instruction).
"""

from __future__ import annotations

import re
from functools import lru_cache

import jinja2

from agentlab.paths import prompts_dir

_SECTION = re.compile(r"^<<(system|user)>>\s*$", re.MULTILINE)


@lru_cache(maxsize=4)
def _env(root: str) -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(root),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=False,
        trim_blocks=True,
        lstrip_blocks=True,
        autoescape=False,
    )


def _template(name: str) -> jinja2.Template:
    root = str(prompts_dir())
    for candidate in (f"{name}.md.j2", f"{name}.j2", name):
        try:
            return _env(root).get_template(candidate)
        except jinja2.TemplateNotFound:
            continue
    raise FileNotFoundError(f"no prompt template {name!r} in {root}")


def render_text(name: str, **vars) -> str:
    return _template(name).render(**vars).strip()


def render_messages(name: str, **vars) -> list[dict]:
    text = _template(name).render(**vars)
    parts = _SECTION.split(text)
    msgs = []
    for role, body in zip(parts[1::2], parts[2::2]):
        body = body.strip()
        if body:
            msgs.append({"role": role, "content": body})
    if not msgs:
        raise ValueError(f"prompt {name!r} has no <<system>>/<<user>> sections")
    return msgs
