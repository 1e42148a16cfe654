"""One client for any OpenAI-compatible endpoint (OpenAI, vLLM, Ollama, the embedded SmolLM2).

- `text()` and `structured()` (pydantic) calls; structured uses JSON-schema `response_format` when the
  endpoint takes it and otherwise falls back to asking for JSON in the prompt, then extracts, repairs,
  validates, and re-asks with the validation error (bounded by `max_repairs`).
- Retries with exponential backoff on 429 / 5xx / timeouts / dropped connections (bounded by `max_retries`).
- Every call (successful or not) lands in the ledger; budgets are checked before every call.
- `memo_key`: the validated result is stored in the run directory, so a phase re-run after a crash or
  resume does not pay for (or change) a call that already succeeded.
"""

from __future__ import annotations

import json
import time
from importlib import resources
from pathlib import Path
from typing import Callable, TypeVar

import openai
from pydantic import BaseModel

from agentlab.config import Settings
from agentlab.llm.budget import Budget
from agentlab.llm.jsonfix import parse_model, schema_for_prompt
from agentlab.llm.ledger import Ledger, LedgerEntry
from agentlab.prompts import render_text

T = TypeVar("T", bound=BaseModel)


class LLMError(RuntimeError):
    """The endpoint failed in a way retrying will not fix; the message says what to do."""


class _StructuredUnsupported(Exception):
    pass


def _default_prices() -> dict[str, list[float]]:
    data = json.loads(resources.files("agentlab.llm").joinpath("prices.json").read_text())
    data.pop("_comment", None)
    return data


class LLM:
    def __init__(self, settings: Settings, ledger: Ledger | None = None, budget: Budget | None = None,
                 memo_dir: Path | None = None):
        if not settings.base_url:
            raise LLMError("no LLM endpoint configured: set OPENAI_BASE_URL (and OPENAI_API_KEY), or pass --base-url")
        self.settings = settings
        self.ledger = ledger or Ledger(None)
        self.budget = budget or Budget()
        self.memo_dir = Path(memo_dir) if memo_dir else None
        self.prices = {**_default_prices(), **settings.prices}
        self.listeners: list[Callable[[LedgerEntry], None]] = []
        self._json_schema_ok = settings.structured_mode != "prompt"
        self.client = openai.OpenAI(
            base_url=settings.base_url,
            api_key=settings.api_key or "not-needed",
            max_retries=0,
            timeout=settings.request_timeout,
        )

    # ---- public API -------------------------------------------------------------------------
    def text(self, messages: list[dict], phase: str, purpose: str = "", memo_key: str | None = None,
             max_tokens: int | None = None) -> str:
        cached = self._memo_get(memo_key)
        if cached is not None:
            return cached["text"]
        resp = self._call(messages, phase, purpose, None, max_tokens)
        out = resp.choices[0].message.content or ""
        self._memo_put(memo_key, {"text": out})
        return out

    def structured(self, messages: list[dict], schema: type[T], phase: str, purpose: str = "",
                   memo_key: str | None = None, max_tokens: int | None = None) -> T:
        cached = self._memo_get(memo_key)
        if cached is not None:
            return schema.model_validate(cached["data"])
        msgs = list(messages)
        schema_text = schema_for_prompt(schema)
        if not self._json_schema_ok:
            msgs = self._with_json_instruction(msgs, schema_text)
        last_error = ""
        for _ in range(self.settings.max_repairs + 1):
            rf = self._response_format(schema) if self._json_schema_ok else None
            try:
                resp = self._call(msgs, phase, purpose, rf, max_tokens)
            except _StructuredUnsupported:
                self._json_schema_ok = False
                msgs = self._with_json_instruction(msgs, schema_text)
                resp = self._call(msgs, phase, purpose, None, max_tokens)
            choice = resp.choices[0]
            content = choice.message.content or ""
            if choice.finish_reason == "length":
                last_error = "the reply was cut off at the token limit (truncated JSON); reply with a shorter object"
            else:
                try:
                    obj = parse_model(content, schema)
                    self._memo_put(memo_key, {"data": obj.model_dump(mode="json")})
                    return obj
                except ValueError as exc:
                    last_error = str(exc)
            msgs = msgs + [
                {"role": "assistant", "content": content[:4000]},
                {"role": "user", "content": render_text("repair_json", error=last_error, schema=schema_text)},
            ]
        raise LLMError(
            f"{phase}: the model's output did not match {schema.__name__} after "
            f"{self.settings.max_repairs + 1} tries (last problem: {last_error}). "
            "Resume to retry, or use a stronger model for this phase."
        )

    def check_endpoint(self) -> tuple[bool, str]:
        """Is the endpoint reachable and does it serve the configured model? (for `doctor`)."""
        try:
            ids = [m.id for m in self.client.models.list().data]
        except openai.APIConnectionError as exc:
            return False, f"cannot reach {self.settings.base_url} ({exc.__class__.__name__})"
        except openai.APIStatusError as exc:
            return False, f"{self.settings.base_url} answered HTTP {exc.status_code} to /models"
        if ids and self.settings.model not in ids:
            return False, f"{self.settings.base_url} does not serve model {self.settings.model!r} (it has: {', '.join(ids[:8])})"
        return True, f"{self.settings.base_url} serves {self.settings.model}"

    def cost_of(self, model: str, prompt_tokens: int, completion_tokens: int) -> float:
        p = self.prices.get(model)
        if not p:
            return 0.0
        return (prompt_tokens * p[0] + completion_tokens * p[1]) / 1_000_000

    # ---- internals --------------------------------------------------------------------------
    @staticmethod
    def _response_format(schema: type[BaseModel]) -> dict:
        return {"type": "json_schema",
                "json_schema": {"name": schema.__name__, "schema": schema.model_json_schema(), "strict": False}}

    @staticmethod
    def _with_json_instruction(msgs: list[dict], schema_text: str) -> list[dict]:
        return msgs + [{"role": "user", "content": render_text("json_instruction", schema=schema_text)}]

    def _call(self, messages: list[dict], phase: str, purpose: str, response_format: dict | None,
              max_tokens: int | None):
        s = self.settings
        model = s.model_for(phase)
        kwargs = {"model": model, "messages": messages, "temperature": s.temperature,
                  "max_tokens": max_tokens or s.max_output_tokens}
        if response_format is not None:
            kwargs["response_format"] = response_format
        delay = s.backoff_base
        for attempt in range(s.max_retries + 1):
            self.budget.check(self.ledger)
            t0 = time.monotonic()
            try:
                resp = self.client.chat.completions.create(**kwargs)
            except (openai.APIConnectionError, openai.RateLimitError, openai.InternalServerError) as exc:
                self._record(phase, model, purpose, t0, None, error=f"{type(exc).__name__}: {exc}")
                if attempt == s.max_retries:
                    raise self._final_error(exc, model) from exc
                time.sleep(delay)
                delay *= 2
                continue
            except openai.APIStatusError as exc:
                self._record(phase, model, purpose, t0, None, error=f"HTTP {exc.status_code}: {exc}")
                if response_format is not None and exc.status_code in (400, 422) and "response_format" in str(exc):
                    raise _StructuredUnsupported() from exc
                if exc.status_code >= 500 and attempt < s.max_retries:
                    time.sleep(delay)
                    delay *= 2
                    continue
                raise self._final_error(exc, model) from exc
            self._record(phase, model, purpose, t0, resp)
            return resp
        raise AssertionError("unreachable")  # pragma: no cover

    def _final_error(self, exc: Exception, model: str) -> LLMError:
        url = self.settings.base_url
        if isinstance(exc, openai.APIConnectionError):
            return LLMError(f"cannot reach the LLM endpoint {url} ({type(exc).__name__}). "
                            "Is the server running? Check OPENAI_BASE_URL or run `agentlab doctor`.")
        if isinstance(exc, openai.NotFoundError):
            return LLMError(f"the endpoint {url} does not know model {model!r} (HTTP 404). "
                            "Pick a served model with --model (see `agentlab doctor`).")
        if isinstance(exc, openai.AuthenticationError):
            return LLMError(f"the endpoint {url} rejected the API key (HTTP 401): set OPENAI_API_KEY.")
        if isinstance(exc, openai.RateLimitError):
            return LLMError(f"the endpoint {url} kept rate-limiting (HTTP 429) after {self.settings.max_retries} retries.")
        status = getattr(exc, "status_code", "?")
        return LLMError(f"the endpoint {url} failed for model {model!r} (HTTP {status}): {exc}")

    def _record(self, phase: str, model: str, purpose: str, t0: float, resp, error: str = "") -> None:
        pt = ct = 0
        if resp is not None and getattr(resp, "usage", None) is not None:
            pt = resp.usage.prompt_tokens or 0
            ct = resp.usage.completion_tokens or 0
        entry = LedgerEntry(phase=phase, model=model, prompt_tokens=pt, completion_tokens=ct,
                            cost=round(self.cost_of(model, pt, ct), 8), latency_s=round(time.monotonic() - t0, 4),
                            ok=resp is not None, purpose=purpose, error=error[:500])
        self.ledger.append(entry)
        for fn in self.listeners:
            fn(entry)

    def _memo_get(self, key: str | None) -> dict | None:
        if not key or self.memo_dir is None:
            return None
        p = self.memo_dir / f"{key.replace('/', '__')}.json"
        return json.loads(p.read_text()) if p.exists() else None

    def _memo_put(self, key: str | None, value: dict) -> None:
        if not key or self.memo_dir is None:
            return
        self.memo_dir.mkdir(parents=True, exist_ok=True)
        p = self.memo_dir / f"{key.replace('/', '__')}.json"
        tmp = p.with_suffix(".tmp")
        tmp.write_text(json.dumps(value))
        tmp.replace(p)
