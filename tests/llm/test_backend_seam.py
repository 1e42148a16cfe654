"""A native (non-OpenAI) backend added through the registry, with no AgentLab edit.

The backend below is what a third-party package would ship behind one entry point in the group
`agentlab.llm_backends`; here it is registered in-process instead of installed. It speaks a different
wire format (a minimal "messages" API: top-level `system`, `content` blocks, `input_tokens` /
`output_tokens`, `stop_reason`, `x-api-key`, HTTP 529 "overloaded") to a fake server on 127.0.0.1, and
a real `LLM.structured(...)` call runs through it: memo, ledger, budget, repair and retries still apply,
above the seam.
"""

from __future__ import annotations

import json
import threading
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from typing import Any

import pytest
from pydantic import BaseModel

from agentlab.config import Settings
from agentlab.llm import (
    LLM,
    LLM_BACKENDS,
    Budget,
    BudgetExceeded,
    ChatBackend,
    ChatReply,
    ChatRequest,
    FinalError,
    Ledger,
    LLMError,
    TransientError,
    Usage,
)
from tests.fakes.loopback import LoopbackServer, send
from tests.fakes.openai_server import count_tokens

MODEL = "native-1"


class Finding(BaseModel):
    claim: str
    value: float


# ---- the fake "messages" server ---------------------------------------------------------------------
@dataclass
class FakeMessagesAPI(LoopbackServer):
    """POST /v1/messages answers from `replies` (str, or (status, error type)); the last one repeats."""

    key: str = "nk-test"
    replies: list[Any] = field(default_factory=list)
    requests: list[dict] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._lock = threading.Lock()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *a: Any) -> None:
                pass

            def _json(self, status: int, body: dict) -> None:
                send(self, status, json.dumps(body).encode(), "application/json")

            def _err(self, status: int, etype: str, message: str) -> None:
                self._json(status, {"type": "error", "error": {"type": etype, "message": message}})

            def do_GET(self) -> None:  # noqa: N802
                self._json(200, {"data": [{"id": MODEL, "type": "model"}]})

            def do_POST(self) -> None:  # noqa: N802
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))) or b"{}")
                if self.headers.get("x-api-key") != owner.key:
                    owner.requests.append({"status": 401, **body})
                    return self._err(401, "authentication_error", "invalid x-api-key")
                with owner._lock:
                    item = owner.replies.pop(0) if len(owner.replies) > 1 else owner.replies[0]
                if isinstance(item, tuple):
                    owner.requests.append({"status": item[0], **body})
                    return self._err(item[0], item[1], f"scripted {item[1]}")
                text = item if isinstance(item, str) else json.dumps(item)
                used = count_tokens(body.get("system", "")) + sum(count_tokens(m["content"]) for m in body["messages"])
                usage = {"input_tokens": used, "output_tokens": count_tokens(text)}
                owner.requests.append({"status": 200, "usage": usage, **body})
                self._json(200, {"type": "message", "role": "assistant", "model": body["model"],
                                 "content": [{"type": "text", "text": text}], "stop_reason": "end_turn",
                                 "usage": usage})

        return Handler


# ---- the third-party backend: only the protocol, nothing else from AgentLab's internals -------------
class MessagesBackend:
    """A native backend: the "messages" wire format over urllib. JSON only through the prompt."""

    name = "messages-test"

    def __init__(self, config: Any) -> None:
        self.endpoint, self.key, self.timeout = config.base_url, config.api_key, config.timeout

    def capabilities(self, model: str) -> set[str]:
        return {"prompt"}

    def chat(self, request: ChatRequest) -> ChatReply:
        system = "\n".join(m["content"] for m in request.messages if m["role"] == "system")
        body = {"model": request.model, "max_tokens": request.max_tokens, "temperature": request.temperature,
                "system": system, "messages": [m for m in request.messages if m["role"] != "system"]}
        req = urllib.request.Request(f"{self.endpoint}/messages", data=json.dumps(body).encode(), method="POST",
                                     headers={"x-api-key": self.key or "", "content-type": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=request.timeout or self.timeout) as resp:
                data = json.load(resp)
        except urllib.error.HTTPError as exc:
            msg = json.loads(exc.read() or b"{}").get("error", {}).get("message", "")
            if exc.code in (429, 529) or exc.code >= 500:
                raise TransientError(f"{self.endpoint} is overloaded (HTTP {exc.code})", status=exc.code) from exc
            raise FinalError(f"{self.endpoint} refused the request (HTTP {exc.code}): {msg}", status=exc.code) from exc
        except OSError as exc:
            raise TransientError(f"cannot reach {self.endpoint} ({exc})") from exc
        return ChatReply(text="".join(b["text"] for b in data["content"] if b["type"] == "text"),
                         usage=Usage(data["usage"]["input_tokens"], data["usage"]["output_tokens"]),
                         finish_reason="length" if data["stop_reason"] == "max_tokens" else "stop",
                         model=data["model"])

    def check(self, model: str) -> tuple[bool, str]:
        with urllib.request.urlopen(f"{self.endpoint}/models", timeout=5) as resp:
            ids = [m["id"] for m in json.load(resp)["data"]]
        return model in ids, f"{self.endpoint} (messages API) has {', '.join(ids)}"


@pytest.fixture
def registered(monkeypatch):
    """Register the backend for this test only (the registry's tables are restored afterwards)."""
    monkeypatch.setattr(LLM_BACKENDS, "_objs", dict(LLM_BACKENDS._objs))
    monkeypatch.setattr(LLM_BACKENDS, "_builtin", list(LLM_BACKENDS._builtin))
    LLM_BACKENDS.register("messages-test", MessagesBackend)
    return MessagesBackend


@pytest.fixture
def api():
    with FakeMessagesAPI() as srv:
        yield srv


def settings(api: FakeMessagesAPI, **kw: Any) -> Settings:
    kw.setdefault("api_key", api.key)
    return Settings(base_url=f"messages-test+{api.url}", model=MODEL, backoff_base=0.01,
                    prices={MODEL: [1.0, 2.0]}, **kw)


MSG = [{"role": "system", "content": "You report findings."}, {"role": "user", "content": "report it"}]


def test_registered_backend_is_chosen_by_its_url_prefix(registered, api):
    assert "messages-test" in LLM_BACKENDS.names()
    llm = LLM(settings(api))
    assert isinstance(llm.backend, ChatBackend) and llm.backend.name == "messages-test"
    assert llm.backend.endpoint == api.url
    assert llm.check_endpoint() == (True, f"{api.url} (messages API) has {MODEL}")


def test_structured_through_a_native_backend_keeps_memo_ledger_and_repair(registered, api, tmp_path):
    api.replies = [{"claim": "c", "value": "high"}, "Here it is: " + json.dumps({"claim": "c", "value": 2.5})]
    ledger = Ledger(tmp_path / "ledger.jsonl")
    llm = LLM(settings(api), ledger, memo_dir=tmp_path / "memo")
    out = llm.structured(MSG, Finding, phase="plan", purpose="finding", memo_key="plan/finding")
    assert out == Finding(claim="c", value=2.5)
    # the wire format is the backend's own: top-level system, no response_format (capabilities: prompt only)
    first, second = api.requests
    assert first["system"] == "You report findings." and "response_format" not in first
    assert "validate against this JSON schema" in first["messages"][-1]["content"]  # the ladder's prompt mode
    assert "could not be used" in second["messages"][-1]["content"]  # the repair re-prompt, above the seam
    assert "value" in second["messages"][-1]["content"]
    # the ledger holds the native usage fields, priced by LLM
    rows = ledger.entries()
    assert [(r["ok"], r["phase"], r["purpose"], r["model"]) for r in rows] == [(True, "plan", "finding", MODEL)] * 2
    assert [(r["prompt_tokens"], r["completion_tokens"]) for r in rows] == [
        (q["usage"]["input_tokens"], q["usage"]["output_tokens"]) for q in api.requests]
    t = ledger.totals()
    assert t["cost"] == pytest.approx((t["prompt_tokens"] * 1.0 + t["completion_tokens"] * 2.0) / 1e6)
    # memo: a rerun (a new process, same run dir) pays nothing
    again = LLM(settings(api), ledger, memo_dir=tmp_path / "memo")
    assert again.structured(MSG, Finding, phase="plan", memo_key="plan/finding") == out
    assert len(api.requests) == 2 and len(ledger.entries()) == 2


def test_native_transient_errors_are_retried_and_final_ones_are_not(registered, api):
    api.replies = [(529, "overloaded_error"), (503, "api_error"), {"claim": "c", "value": 1}]
    llm = LLM(settings(api))
    assert llm.structured(MSG, Finding, phase="plan").value == 1
    assert [r["status"] for r in api.requests] == [529, 503, 200]
    assert [r["ok"] for r in llm.ledger.entries()] == [False, False, True]
    with pytest.raises(LLMError, match=r"refused the request \(HTTP 401\): invalid x-api-key"):
        LLM(settings(api, api_key="wrong")).text(MSG, phase="plan")
    assert [r["status"] for r in api.requests][-1] == 401 and len(api.requests) == 4


def test_budget_applies_above_the_seam(registered, api):
    api.replies = ["one two three four five six"]
    llm = LLM(settings(api), Ledger(None), Budget(max_tokens=30))  # a call may use ~16 prompt + 10 reply
    assert llm.text(MSG, phase="plan", max_tokens=10) == "one two three four five six"
    with pytest.raises(BudgetExceeded):
        llm.text(MSG, phase="plan", max_tokens=10)
    assert len(api.requests) == 1
