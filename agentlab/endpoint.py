"""Which LLM endpoint a run talks to: the configured one, or the embedded SmolLM2 when none is."""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import replace
from typing import Iterator

from rich.console import Console
from rich.panel import Panel

from agentlab.config import Settings
from agentlab.llm import LLMError


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
    from agentlab.llm.embedded import EmbeddedServer, notice_text

    if console is not None:
        console.print(Panel(notice_text(), title="embedded demonstration model", border_style="yellow"), soft_wrap=False)
    with EmbeddedServer(threads=None, max_new_tokens_cap=EMBEDDED_PROFILE["max_output_tokens"]) as srv:
        yield embedded_profile(settings, srv.base_url, srv.api_key, srv.model)


#: what a 135M-parameter model with an 8k context on a CPU can carry (the notice tells the user)
EMBEDDED_PROFILE = {"max_output_tokens": 384, "request_timeout": 900.0, "n_reviewers": 1, "max_revisions": 0,
                    "coc_depth": 1, "coc_branching": 1, "search_rounds": 1, "context_budget_tokens": 2500,
                    "plan_grounded_question": False, "api_doc_mode": "compact", "structured_mode": "json_schema"}


def embedded_profile(settings: Settings, base_url: str, api_key: str, model: str) -> Settings:
    """Settings for the embedded server; the `embedded+` URL prefix selects the `embedded` LLM backend."""
    known = {k: v for k, v in EMBEDDED_PROFILE.items() if hasattr(settings, k)}
    if "+" not in base_url.split("://", 1)[0]:
        base_url = f"embedded+{base_url}"
    return replace(settings, base_url=base_url, api_key=api_key, model=model, models={}, **known)
