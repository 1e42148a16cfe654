"""Which LLM endpoint a run talks to: the configured one, or the embedded SmolLM2 when none is."""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import replace
from typing import Iterator

from rich.console import Console

from agentlab.config import Settings
from agentlab.llm import LLMError
from agentlab.paths import prompts_dir


def embedded_available() -> tuple[bool, str]:
    try:
        from agentlab.llm.embedded import doctor_check
    except ImportError as exc:
        return False, f"embedded model support not importable ({exc})"
    ok, what, fix = doctor_check()
    return ok, what if ok else f"{what}; fix: {fix}"


@contextmanager
def resolve_endpoint(settings: Settings, console: Console | None = None) -> Iterator[Settings]:
    """Yield settings whose base_url/model point at a live endpoint, starting the embedded one if needed."""
    if settings.base_url:
        yield settings
        return
    ok, why = embedded_available()
    if not ok:
        raise LLMError(
            "no LLM endpoint configured and the embedded model is not available "
            f"({why}). Set OPENAI_BASE_URL (and OPENAI_API_KEY), e.g. "
            "OPENAI_BASE_URL=https://api.openai.com/v1, or http://localhost:11434/v1 for Ollama."
        )
    from agentlab.llm.embedded import EmbeddedServer

    notice = (prompts_dir() / "embedded_notice.txt")
    if console is not None and notice.exists():
        console.print(f"[bold yellow]{notice.read_text().strip()}[/]")
    with EmbeddedServer(threads=None) as srv:
        yield replace(settings, base_url=srv.base_url, api_key=srv.api_key, model=srv.model, models={})
