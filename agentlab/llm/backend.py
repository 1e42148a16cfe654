"""The LLM transport seam: what one chat backend (a wire format + a transport) must provide.

Everything above the seam lives once, in `agentlab.llm.client.LLM`: memoisation, the ledger, budgets,
retry policy, JSON repair re-prompts and the structured-output ladder (json_schema -> json_object ->
prompt). A backend only turns one `ChatRequest` into one `ChatReply`, or raises one of three errors:

- `TransientError`: retrying later may work (timeouts, dropped connections, 429, 5xx, overload);
- `CapabilityMissing`: the endpoint cannot do what this request asked (e.g. `response_format`
  json_schema); the caller falls back to a weaker structured mode and remembers that;
- `FinalError`: retrying will not help (bad key, unknown model, prompt too long); the message says
  what to do.

Backends are found by name in the registry `LLM_BACKENDS` (entry-point group `agentlab.llm_backends`).
A registry entry is a factory: `factory(BackendConfig) -> ChatBackend` (a class with that constructor
is one). The name comes from a `name+` prefix of the base URL (`messages+https://api.example.com`),
else `openai`; the built-ins are `openai` (any OpenAI-compatible endpoint) and `embedded` (the local
SmolLM2 server). A third-party package adds one with a single entry point, e.g.

    [project.entry-points."agentlab.llm_backends"]
    anthropic = "my_pkg.backend:AnthropicBackend"
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from agentlab.registry import Registry

#: structured-output modes, strongest first: the order of the fallback ladder
STRUCTURED_MODES: tuple[str, ...] = ("json_schema", "json_object", "prompt")
#: every value of `ChatRequest.format`
FORMATS: tuple[str, ...] = ("text",) + STRUCTURED_MODES
DEFAULT_BACKEND = "openai"

_PREFIX = re.compile(r"^([A-Za-z][A-Za-z0-9_.-]*)\+([A-Za-z][A-Za-z0-9.-]*://.*)$")


@dataclass(frozen=True)
class BackendConfig:
    """What a backend factory is built from (the endpoint URL has its `name+` prefix removed)."""

    base_url: str
    api_key: str | None = None
    timeout: float = 120.0
    name: str = DEFAULT_BACKEND


@dataclass(frozen=True)
class ChatRequest:
    """One chat call.

    `format` is "text" (free text), "json_schema" (the backend must constrain the reply to `schema`),
    "json_object" (any JSON object; the schema is described in the messages, and `schema` is sent too:
    llama-cpp-python constrains the reply to it, other servers ignore it) or "prompt" (no
    native support asked: the JSON request is in the messages; the backend sends plain text).
    """

    messages: list[dict[str, Any]]
    model: str
    max_tokens: int
    temperature: float = 0.2
    format: str = "text"
    schema: dict[str, Any] | None = None
    schema_name: str = ""
    timeout: float | None = None  # None: the backend's default


@dataclass(frozen=True)
class Usage:
    prompt_tokens: int = 0
    completion_tokens: int = 0


@dataclass(frozen=True)
class ChatReply:
    """The reply text; `finish_reason` is "stop", "length" (cut off at max_tokens) or the backend's word."""

    text: str
    usage: Usage = field(default_factory=Usage)
    finish_reason: str = "stop"
    model: str = ""


@runtime_checkable
class ChatBackend(Protocol):
    """One wire format. `endpoint` names where it talks to (for messages and per-endpoint memory)."""

    name: str
    endpoint: str

    def capabilities(self, model: str) -> set[str]:
        """The structured modes (subset of STRUCTURED_MODES) worth trying for `model`."""
        ...

    def chat(self, request: ChatRequest) -> ChatReply:
        """One call, no retries; raises TransientError, CapabilityMissing or FinalError."""
        ...

    def check(self, model: str) -> tuple[bool, str]:
        """(ok, one line for `agentlab doctor`): is the endpoint reachable, does it serve `model`?"""
        ...


BackendFactory = Callable[[BackendConfig], ChatBackend]


class BackendError(Exception):
    """Base of the three classes a backend raises; `status` is the HTTP status when there was one."""

    def __init__(self, message: str, *, status: int | None = None) -> None:
        super().__init__(message)
        self.message, self.status = message, status


class TransientError(BackendError):
    """Retry with backoff: timeouts, dropped connections, rate limits, server errors."""

    def __init__(self, message: str, *, status: int | None = None, retry_after: float | None = None) -> None:
        super().__init__(message, status=status)
        self.retry_after = retry_after


class CapabilityMissing(BackendError):
    """The endpoint cannot honour `capability` (a structured mode); fall back to a weaker one."""

    def __init__(self, message: str, *, capability: str, status: int | None = None) -> None:
        super().__init__(message, status=status)
        self.capability = capability


class FinalError(BackendError):
    """Retrying will not help (auth, unknown model, context too long, bad request)."""


LLM_BACKENDS: Registry[BackendFactory] = Registry("llm_backends", "LLM backend")
LLM_BACKENDS.register("openai", lazy="agentlab.llm.openai_backend:OpenAIBackend")
LLM_BACKENDS.register("embedded", lazy="agentlab.llm.embedded_backend:EmbeddedBackend")


def split_backend(base_url: str) -> tuple[str | None, str]:
    """`"messages+https://h/v1"` -> `("messages", "https://h/v1")`; a plain URL -> `(None, url)`."""
    m = _PREFIX.match(base_url.strip())
    return (m.group(1), m.group(2)) if m else (None, base_url.strip())


def open_backend(base_url: str, api_key: str | None, timeout: float, name: str | None = None) -> ChatBackend:
    """The backend for `base_url`: `name` if given, else the URL's `name+` prefix, else `openai`.

    Raises UnknownName (listing the backends that exist) for a name no registry entry answers to.
    """
    prefix, url = split_backend(base_url)
    chosen = name or prefix or DEFAULT_BACKEND
    factory = LLM_BACKENDS.get(chosen)
    return factory(BackendConfig(base_url=url, api_key=api_key, timeout=timeout, name=chosen))
