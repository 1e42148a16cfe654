"""`LLM`: everything above the transport seam, in one place, for any `ChatBackend`.

- `text()` and `structured()` (pydantic) calls. Structured calls walk a ladder of modes, strongest
  first: json_schema (the backend constrains the reply) -> json_object (the schema goes in the prompt,
  the backend guarantees JSON) -> prompt (the JSON request is only in the prompt). A mode the endpoint
  refuses (`CapabilityMissing`), or evidently ignores (a reply with no JSON object at all), is dropped
  and remembered per (endpoint, model) for the life of this object, i.e. for the run.
- The reply is extracted, repaired, validated, and re-asked with the validation error (bounded by
  `max_repairs`; the re-ask text is `prompts/repair_json.md.j2`).
- Retry policy: `TransientError` is retried with exponential backoff (bounded by `max_retries`, honouring
  a server's Retry-After up to a minute); `FinalError` becomes `LLMError` at once.
- Every call (successful or not) lands in the ledger. Budgets are hard limits: before every request the
  most it can use (prompt estimate + max_tokens, times the price; recent latency) is checked against them
  and held while it is in flight (`agentlab.llm.budget`); a call that could pass one is not made.
- `memo_key`: the validated result is stored in the run directory, so a phase re-run after a crash or
  resume does not pay for (or change) a call that already succeeded.

Backends (`agentlab.llm.backend`) only move one request and one reply over their wire format.
"""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path
from typing import Callable, TypeVar

from pydantic import BaseModel

from agentlab.config import ConfigError, Settings
from agentlab.errors import Resumable
from agentlab.llm.backend import (
    STRUCTURED_MODES,
    CapabilityMissing,
    ChatBackend,
    ChatReply,
    ChatRequest,
    FinalError,
    TransientError,
    open_backend,
)
from agentlab.llm.budget import Budget, Estimate, check_prices, price_table, prompt_tokens
from agentlab.llm.jsonfix import parse_model, schema_for_prompt
from agentlab.llm.ledger import Ledger, LedgerEntry
from agentlab.prompts import render_text
from agentlab.registry import UnknownName

T = TypeVar("T", bound=BaseModel)

MAX_RETRY_WAIT_S = 60.0  # the longest a server's Retry-After is honoured


class LLMError(Resumable, RuntimeError):
    """The endpoint failed in a way retrying will not fix; the message says what to do."""


class PricesMissing(LLMError, ConfigError):
    """`--max-cost` with a model that has no price: refused before the run makes any LLM call."""


def announce_prices(settings: Settings, console) -> None:
    """At the start of a run (or a resume): warn about models without a price; refuse --max-cost for them."""
    from rich.markup import escape

    try:
        warnings = check_prices(settings)
    except ConfigError as exc:
        raise PricesMissing(str(exc)) from None
    for w in warnings:
        console.print(f"[yellow]warning:[/] {escape(w)}", highlight=False)


class ModeLadder:
    """The structured mode to use per (endpoint, model), learned from the endpoint's answers."""

    def __init__(self, preference: str = "auto") -> None:
        self.preference = preference  # Settings.structured_mode: auto | json_schema | prompt
        self._rungs: dict[tuple[str, str], list[str]] = {}
        self._lock = threading.Lock()

    def _key(self, backend: ChatBackend, model: str) -> tuple[str, str]:
        return (f"{backend.name}:{backend.endpoint}", model)

    def current(self, backend: ChatBackend, model: str) -> str:
        key = self._key(backend, model)
        with self._lock:
            if key not in self._rungs:
                caps = backend.capabilities(model) if self.preference != "prompt" else set()
                self._rungs[key] = [m for m in STRUCTURED_MODES if m in caps or m == "prompt"]
            return self._rungs[key][0]

    def drop(self, backend: ChatBackend, model: str, mode: str) -> bool:
        """Stop using `mode` (and anything stronger); False when nothing weaker is left."""
        key = self._key(backend, model)
        with self._lock:
            rungs = self._rungs.get(key, list(STRUCTURED_MODES))
            if mode == "prompt" or mode not in rungs:
                return mode != "prompt"
            self._rungs[key] = rungs[rungs.index(mode) + 1:] or ["prompt"]
            return True

    def settle(self, backend: ChatBackend, model: str, mode: str) -> None:
        with self._lock:
            self._rungs[self._key(backend, model)] = [mode] if mode == "prompt" else [mode, "prompt"]

    def known(self) -> dict[str, str]:
        """{"backend:endpoint model": mode in use} for everything seen so far."""
        with self._lock:
            return {f"{k[0]} {k[1]}": v[0] for k, v in self._rungs.items()}


class LLM:
    def __init__(self, settings: Settings, ledger: Ledger | None = None, budget: Budget | None = None,
                 memo_dir: Path | None = None, backend: ChatBackend | None = None):
        if backend is None and not settings.base_url:
            raise LLMError("no LLM endpoint configured: set OPENAI_BASE_URL (and OPENAI_API_KEY), or pass --base-url")
        self.settings = settings
        self.ledger = ledger or Ledger(None)
        self.budget = budget or Budget()
        self.memo_dir = Path(memo_dir) if memo_dir else None
        self.prices = price_table(settings)
        self.listeners: list[Callable[[LedgerEntry], None]] = []
        self.ladder = ModeLadder(settings.structured_mode)
        if backend is None:
            try:
                backend = open_backend(str(settings.base_url), settings.api_key, settings.request_timeout,
                                       getattr(settings, "llm_backend", None) or None)
            except UnknownName as exc:
                raise LLMError(f"{exc} (the backend is named by the prefix of {settings.base_url!r})") from None
        self.backend: ChatBackend = backend

    # ---- public API -------------------------------------------------------------------------
    def text(self, messages: list[dict], phase: str, purpose: str = "", memo_key: str | None = None,
             max_tokens: int | None = None) -> str:
        cached = self._memo_get(memo_key)
        if cached is not None:
            return cached["text"]
        reply = self._call(self._request(messages, phase, max_tokens), phase, purpose)
        self._memo_put(memo_key, {"text": reply.text})
        return reply.text

    def structured(self, messages: list[dict], schema: type[T], phase: str, purpose: str = "",
                   memo_key: str | None = None, max_tokens: int | None = None) -> T:
        cached = self._memo_get(memo_key)
        if cached is not None:
            return schema.model_validate(cached["data"])
        model = self.settings.model_for(phase)
        turns: list[dict] = []  # the repair conversation so far
        last_error = ""
        for attempt in range(self.settings.max_repairs + 1):
            reply, mode = self._structured_call(messages, turns, schema, phase, purpose, max_tokens)
            content = reply.text
            if reply.finish_reason == "length":
                last_error = render_text("json_truncated")
                salvaged = self._salvage(content, schema) if attempt == self.settings.max_repairs else None
                if salvaged is not None:  # the last try: a reply cut off inside a string that still validates
                    self._memo_put(memo_key, {"data": salvaged.model_dump(mode="json")})
                    return salvaged
            else:
                if mode != "prompt" and "{" not in content:  # the endpoint ignored response_format
                    self.ladder.settle(self.backend, model, "prompt")
                try:
                    obj = parse_model(content, schema)
                    self._memo_put(memo_key, {"data": obj.model_dump(mode="json")})
                    return obj
                except ValueError as exc:
                    last_error = str(exc)
            turns = turns + [
                {"role": "assistant", "content": content[:4000]},
                {"role": "user", "content": render_text("repair_json", error=last_error,
                                                        schema=schema_for_prompt(schema))},
            ]
        raise LLMError(
            f"{phase}: the model's output did not match {schema.__name__} after "
            f"{self.settings.max_repairs + 1} tries (last problem: {last_error}). "
            "Resume to retry, or use a stronger model for this phase."
        )

    @staticmethod
    def _salvage(content: str, schema: type[T]) -> T | None:
        """A reply cut off by max_tokens, closed by the JSON repairer, if it validates with every field the
        schema requires (a weak model that always runs long still gets its answer, shortened); else None."""
        try:
            return parse_model(content, schema)
        except ValueError:
            return None

    def check_endpoint(self) -> tuple[bool, str]:
        """Is the endpoint reachable and does it serve the configured model? (for `doctor`)."""
        return self.backend.check(self.settings.model)

    def cost_of(self, model: str, prompt_tokens: int, completion_tokens: int) -> float:
        p = self.prices.get(model)
        if not p:
            return 0.0
        return (prompt_tokens * p[0] + completion_tokens * p[1]) / 1_000_000

    def estimate(self, req: ChatRequest) -> Estimate:
        """The most `req` may use: its estimated prompt plus max_tokens, their price, its model's recent latency."""
        pt = prompt_tokens(req.messages, req.schema)
        return Estimate(prompt=pt, reply=req.max_tokens, cost=self.cost_of(req.model, pt, req.max_tokens),
                        minutes=self.ledger.latency(req.model) / 60.0 if self.budget.max_minutes else 0.0)

    # ---- structured ladder ------------------------------------------------------------------
    def _structured_call(self, messages: list[dict], turns: list[dict], schema: type[BaseModel], phase: str,
                         purpose: str, max_tokens: int | None) -> tuple[ChatReply, str]:
        model = self.settings.model_for(phase)
        while True:
            mode = self.ladder.current(self.backend, model)
            msgs = list(messages)
            if mode != "json_schema":  # the schema travels in the prompt
                msgs.append({"role": "user", "content": render_text("json_instruction",
                                                                    schema=schema_for_prompt(schema))})
            req = self._request(msgs + turns, phase, max_tokens, mode,
                                schema.model_json_schema() if mode != "prompt" else None, schema.__name__)
            try:
                return self._call(req, phase, purpose), mode
            except CapabilityMissing as exc:
                if not self.ladder.drop(self.backend, model, mode):
                    raise LLMError(f"{exc.message} (and no weaker structured mode is left)") from exc

    def _request(self, messages: list[dict], phase: str, max_tokens: int | None, fmt: str = "text",
                 schema: dict | None = None, schema_name: str = "") -> ChatRequest:
        s = self.settings
        return ChatRequest(messages=messages, model=s.model_for(phase), max_tokens=max_tokens or s.max_output_tokens,
                           temperature=s.temperature, format=fmt, schema=schema, schema_name=schema_name)

    # ---- retry policy, budget, ledger -------------------------------------------------------
    def _call(self, req: ChatRequest, phase: str, purpose: str) -> ChatReply:
        s = self.settings
        delay = s.backoff_base
        est = self.estimate(req)
        for attempt in range(s.max_retries + 1):
            held = self.budget.reserve(self.ledger, est)  # BudgetExceeded: refused, nothing sent
            t0 = time.monotonic()
            wait = None
            try:
                reply = self.backend.chat(req)
            except TransientError as exc:
                self._record(phase, req.model, purpose, t0, None, error=f"transient: {exc.message}")
                if attempt == s.max_retries:
                    raise LLMError(f"{exc.message}; gave up after {s.max_retries} retries") from exc
                wait = min(max(delay, exc.retry_after or 0.0), MAX_RETRY_WAIT_S)
            except CapabilityMissing as exc:
                self._record(phase, req.model, purpose, t0, None,
                             error=f"capability missing ({exc.capability}): {exc.message}")
                if req.format in ("text", "prompt"):  # nothing weaker to fall back to
                    raise LLMError(exc.message) from exc
                raise
            except FinalError as exc:
                self._record(phase, req.model, purpose, t0, None, error=f"final: {exc.message}")
                raise LLMError(exc.message) from exc
            except Exception as exc:  # a backend outside the three classes: report it, do not retry
                self._record(phase, req.model, purpose, t0, None, error=f"{type(exc).__name__}: {exc}")
                raise LLMError(f"the LLM backend {self.backend.name!r} failed ({type(exc).__name__}: {exc})") from exc
            else:
                self._record(phase, req.model, purpose, t0, reply)  # in the ledger before the hold is let go
                return reply
            finally:
                self.budget.release(held)
            time.sleep(wait)
            delay *= 2
        raise AssertionError("unreachable")  # pragma: no cover

    def _record(self, phase: str, model: str, purpose: str, t0: float, reply: ChatReply | None,
                error: str = "") -> None:
        pt = reply.usage.prompt_tokens if reply is not None else 0
        ct = reply.usage.completion_tokens if reply is not None else 0
        entry = LedgerEntry(phase=phase, model=model, prompt_tokens=pt, completion_tokens=ct,
                            cost=round(self.cost_of(model, pt, ct), 8), latency_s=round(time.monotonic() - t0, 4),
                            ok=reply is not None, purpose=purpose, error=error[:500])
        self.ledger.append(entry)
        for fn in self.listeners:
            fn(entry)

    # ---- memo -------------------------------------------------------------------------------
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
