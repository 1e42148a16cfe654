"""The `openai` backend: any OpenAI-compatible chat-completions endpoint (OpenAI, vLLM, Ollama, llama.cpp).

Talks through the real `openai` SDK (its own retries off: the retry policy lives above the seam, in
`LLM`). This is the only module that knows openai's exception types; it maps them to the seam's three
error classes. A structured mode the server refuses becomes `CapabilityMissing`, whatever status it
came with: OpenAI and vLLM answer 400 naming `response_format`, llama-cpp-python answers HTTP 500
"Input should be 'text' or 'json_object'" to `json_schema`.
"""

from __future__ import annotations

from typing import Any

import openai

from agentlab.llm.backend import (
    STRUCTURED_MODES,
    BackendConfig,
    BackendError,
    CapabilityMissing,
    ChatReply,
    ChatRequest,
    FinalError,
    TransientError,
    Usage,
)

#: phrases in an error answer to a structured request that mean "this server cannot do that format"
CAPABILITY_MARKERS = ("response_format", "json_schema", "json_object", "input should be 'text'",
                      "structured output", "guided_json", "grammar")
CONTEXT_MARKERS = ("context_length_exceeded", "maximum context length", "context window", "too many tokens",
                   "exceeds the model's context")
TRANSIENT_STATUSES = (408, 409, 425, 429)


class OpenAIBackend:
    """Chat completions over the OpenAI wire format."""

    name = "openai"
    modes: frozenset[str] = frozenset(STRUCTURED_MODES)

    def __init__(self, config: BackendConfig) -> None:
        self.config = config
        self.endpoint = config.base_url
        self.client = openai.OpenAI(base_url=config.base_url, api_key=config.api_key or "not-needed",
                                    max_retries=0, timeout=config.timeout)

    # ---- the protocol ---------------------------------------------------------------------------
    def capabilities(self, model: str) -> set[str]:
        """All three: whether the server honours them is learned from its answers (the ladder)."""
        return set(self.modes)

    def chat(self, request: ChatRequest) -> ChatReply:
        kwargs: dict[str, Any] = {"model": request.model, "messages": request.messages,
                                  "temperature": request.temperature, "max_tokens": request.max_tokens}
        rf = self.response_format(request)
        if rf is not None:
            kwargs["response_format"] = rf
        if request.timeout is not None:
            kwargs["timeout"] = request.timeout
        try:
            resp = self.client.chat.completions.create(**kwargs)
        except openai.APIError as exc:
            raise self.classify(exc, request) from exc
        if not resp.choices:
            raise TransientError(f"the endpoint {self.endpoint} answered with no choices for model {request.model!r}")
        choice = resp.choices[0]
        usage = resp.usage
        return ChatReply(
            text=choice.message.content or "",
            usage=Usage(prompt_tokens=(usage.prompt_tokens or 0) if usage else 0,
                        completion_tokens=(usage.completion_tokens or 0) if usage else 0),
            finish_reason=choice.finish_reason or "stop",
            model=resp.model or request.model,
        )

    def check(self, model: str) -> tuple[bool, str]:
        try:
            ids = [m.id for m in self.client.models.list().data]
        except openai.APIConnectionError as exc:
            return False, f"cannot reach {self.endpoint} ({exc.__class__.__name__})"
        except openai.APIStatusError as exc:
            return False, f"{self.endpoint} answered HTTP {exc.status_code} to /models"
        if ids and model not in ids:
            return False, f"{self.endpoint} does not serve model {model!r} (it has: {', '.join(ids[:8])})"
        return True, f"{self.endpoint} serves {model}"

    # ---- wire format ----------------------------------------------------------------------------
    @staticmethod
    def response_format(request: ChatRequest) -> dict[str, Any] | None:
        if request.format == "json_schema":
            return {"type": "json_schema", "json_schema": {"name": request.schema_name or "reply",
                                                           "schema": request.schema or {}, "strict": False}}
        if request.format == "json_object":  # llama-cpp-python constrains to `schema` here; others ignore it
            return {"type": "json_object", **({"schema": request.schema} if request.schema else {})}
        return None

    # ---- errors ---------------------------------------------------------------------------------
    def classify(self, exc: openai.APIError, request: ChatRequest) -> BackendError:
        """Map an openai exception to TransientError / CapabilityMissing / FinalError."""
        url, model = self.endpoint, request.model
        if isinstance(exc, openai.APITimeoutError):
            return TransientError(f"the LLM endpoint {url} timed out (model {model!r})")
        if isinstance(exc, openai.APIConnectionError):
            return TransientError(f"cannot reach the LLM endpoint {url} ({type(exc).__name__}). "
                                  "Is the server running? Check OPENAI_BASE_URL or run `agentlab doctor`.")
        if not isinstance(exc, openai.APIStatusError):
            return FinalError(f"the endpoint {url} gave an unusable answer for model {model!r}: {exc}")
        status, text = exc.status_code, str(exc)
        low = text.lower()
        if (request.format in ("json_schema", "json_object") and status not in (401, 403, 404, 429)
                and any(m in low for m in CAPABILITY_MARKERS)):
            return CapabilityMissing(f"the endpoint {url} does not accept structured mode {request.format} "
                                     f"for model {model!r} (HTTP {status}): {text[:300]}",
                                     capability=request.format, status=status)
        if status in (401, 403):
            return FinalError(f"the endpoint {url} rejected the API key (HTTP {status}): set OPENAI_API_KEY.",
                              status=status)
        if status == 404:
            return FinalError(f"the endpoint {url} does not know model {model!r} (HTTP 404). "
                              "Pick a served model with --model (see `agentlab doctor`).", status=status)
        if any(m in low for m in CONTEXT_MARKERS):
            return FinalError(f"the prompt is too long for model {model!r} at {url} (HTTP {status}): "
                              f"{text[:300]}", status=status)
        if status == 429:
            return TransientError(f"the endpoint {url} is rate-limiting (HTTP 429)", status=status,
                                  retry_after=_retry_after(exc))
        if status >= 500 or status in TRANSIENT_STATUSES:
            return TransientError(f"the endpoint {url} failed for model {model!r} (HTTP {status}): {text[:300]}",
                                  status=status, retry_after=_retry_after(exc))
        return FinalError(f"the endpoint {url} refused the request for model {model!r} (HTTP {status}): "
                          f"{text[:300]}", status=status)


def _retry_after(exc: openai.APIStatusError) -> float | None:
    """Seconds from a `Retry-After` header (numeric form only)."""
    try:
        value = exc.response.headers.get("retry-after")
        return float(value) if value else None
    except (AttributeError, ValueError):
        return None
