"""A scripted OpenAI-compatible server on 127.0.0.1, spoken to by the real `openai` SDK.

Replies are looked up by *key*: the JSON-schema name for structured calls (from `response_format`
or, for endpoints in prompt mode, from the schema text in the prompt), else "text". A reply is a
string, a dict (sent as JSON text), a `Reply` (content + finish_reason / HTTP status / delay), or a
callable(request_body) returning one of those. Each key's queue pops until one reply is left, which
then repeats. Every request is recorded with the usage the server reported.

Switchable endpoint behaviours (real servers' answers to structured-output requests):
- `structured="native"` (default): honours `response_format` json_schema and json_object;
- `structured="llama_cpp"`: json_schema -> HTTP 500 with llama-cpp-python's pydantic error text
  ("Input should be 'text' or 'json_object'"); json_object works;
- `structured="reject_400"` (same as `json_schema_supported=False`): json_schema -> HTTP 400 naming
  `response_format` (OpenAI / vLLM style); json_object works;
- `structured="ignore"`: `response_format` is silently ignored (the reply is keyed as if it was absent),
  like a server that only does prompt-mode JSON.
`api_key`: when set, a request without `Authorization: Bearer <api_key>` gets OpenAI's HTTP 401.
"""

from __future__ import annotations

import json
import re
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from typing import Any

from tests.fakes.loopback import LoopbackServer, send


@dataclass
class Reply:
    content: str = ""
    finish_reason: str = "stop"
    status: int = 200
    error: str = ""
    delay: float = 0.0


def count_tokens(text: str) -> int:
    return len(re.findall(r"\w+|[^\w\s]", text))


_SCHEMA_MARK = "validate against this JSON schema:"

#: what llama-cpp-python's server answers (HTTP 500) to `response_format: {"type": "json_schema"}`
LLAMA_CPP_JSON_SCHEMA_ERROR = (
    "1 validation error for ChatCompletionRequestResponseFormat\ntype\n  Input should be 'text' or "
    "'json_object' [type=literal_error, input_value='json_schema', input_type=str]")


def request_schema(body: dict) -> dict | None:
    """The JSON schema a request asks for: from `response_format`, or from the prompt (prompt mode)."""
    rf = body.get("response_format") or {}
    if rf.get("type") == "json_schema":
        return rf["json_schema"]["schema"]
    for m in reversed(body.get("messages", [])):
        c = m.get("content") or ""
        if isinstance(c, str) and _SCHEMA_MARK in c:
            try:
                return json.loads(c.split(_SCHEMA_MARK, 1)[1])
            except json.JSONDecodeError:
                return None
    return None


@dataclass
class ScriptedLLM(LoopbackServer):
    models: tuple[str, ...] = ("scripted-model",)
    json_schema_supported: bool = True
    structured: str = "native"  # native | llama_cpp | reject_400 | ignore (see the module docstring)
    api_key: str = ""  # "" accepts any key
    script: dict[str, list[Any]] = field(default_factory=dict)
    requests: list[dict] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._lock = threading.Lock()

    # -- scripting ---------------------------------------------------------------------------
    def on(self, key: str, *replies: Any) -> "ScriptedLLM":
        self.script.setdefault(key, []).extend(replies)
        return self

    def replace(self, key: str, *replies: Any) -> "ScriptedLLM":
        self.script[key] = list(replies)
        return self

    def keys_seen(self) -> list[str]:
        return [r["key"] for r in self.requests]

    def usage_totals(self) -> tuple[int, int]:
        ok = [r for r in self.requests if r["status"] == 200]
        return sum(r["prompt_tokens"] for r in ok), sum(r["completion_tokens"] for r in ok)

    # -- lifecycle ---------------------------------------------------------------------------
    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *a):  # quiet
                pass

            def _send(self, status: int, body: dict) -> None:
                send(self, status, json.dumps(body).encode(), "application/json")

            def do_GET(self):
                if self.path.rstrip("/").endswith("/models"):
                    self._send(200, {"object": "list", "data": [
                        {"id": m, "object": "model", "created": 0, "owned_by": "tests"} for m in owner.models]})
                else:
                    self._send(404, {"error": {"message": "not found", "type": "invalid_request_error"}})

            def do_POST(self):
                n = int(self.headers.get("Content-Length", 0))
                body = json.loads(self.rfile.read(n) or b"{}")
                if not self.path.rstrip("/").endswith("/chat/completions"):
                    self._send(404, {"error": {"message": "not found"}})
                    return
                if owner.api_key and self.headers.get("Authorization", "") != f"Bearer {owner.api_key}":
                    owner.requests.append({"key": "auth", "model": body.get("model", ""), "status": 401,
                                           "messages": body.get("messages", []), "prompt_tokens": 0,
                                           "completion_tokens": 0, "response_format": body.get("response_format")})
                    self._send(401, {"error": {"message": "Incorrect API key provided.",
                                               "type": "invalid_request_error", "code": "invalid_api_key"}})
                    return
                status, payload = owner._complete(body)
                self._send(status, payload)

        return Handler

    # -- the completion logic ----------------------------------------------------------------
    def key_of(self, body: dict) -> str:
        rf = {} if self.structured == "ignore" else (body.get("response_format") or {})
        if rf.get("type") == "json_schema":
            return rf["json_schema"]["name"]
        if not any(_SCHEMA_MARK in str(m.get("content") or "") for m in body.get("messages", [])):
            return "text"
        schema = request_schema(body)
        return schema.get("title", "json") if schema else "json"

    def _next(self, key: str, body: dict) -> Any:
        with self._lock:
            queue = self.script.get(key)
            if not queue:
                return Reply(status=500, error=f"scripted server has no reply for key {key!r}")
            item = queue.pop(0) if len(queue) > 1 else queue[0]
        return item(body) if callable(item) else item

    def _complete(self, body: dict) -> tuple[int, dict]:
        model = body.get("model", "")
        key = self.key_of(body)
        rec: dict[str, Any] = {"key": key, "model": model, "messages": body.get("messages", []),
                               "response_format": body.get("response_format"), "status": 200,
                               "prompt_tokens": 0, "completion_tokens": 0}
        self.requests.append(rec)
        if model not in self.models:
            rec["status"] = 404
            return 404, {"error": {"message": f"The model `{model}` does not exist", "type": "invalid_request_error",
                                   "code": "model_not_found"}}
        wants_schema = (body.get("response_format") or {}).get("type") == "json_schema"
        if wants_schema and (not self.json_schema_supported or self.structured == "reject_400"):
            rec["status"] = 400
            return 400, {"error": {"message": "response_format json_schema is not supported",
                                   "type": "invalid_request_error", "param": "response_format"}}
        if wants_schema and self.structured == "llama_cpp":
            rec["status"] = 500
            return 500, {"error": {"message": LLAMA_CPP_JSON_SCHEMA_ERROR, "type": "internal_server_error",
                                   "param": None, "code": None}}
        item = self._next(key, body)
        reply = item if isinstance(item, Reply) else Reply(content=item if isinstance(item, str) else json.dumps(item))
        if reply.delay:
            time.sleep(reply.delay)
        if reply.status != 200:
            rec["status"] = reply.status
            return reply.status, {"error": {"message": reply.error or f"scripted HTTP {reply.status}",
                                            "type": "server_error"}}
        pt = sum(count_tokens(m.get("content") or "") for m in body.get("messages", []))
        ct = count_tokens(reply.content)
        rec.update(prompt_tokens=pt, completion_tokens=ct, reply=reply.content)
        return 200, {
            "id": f"chatcmpl-{len(self.requests)}", "object": "chat.completion", "created": int(time.time()),
            "model": model,
            "choices": [{"index": 0, "finish_reason": reply.finish_reason,
                         "message": {"role": "assistant", "content": reply.content}}],
            "usage": {"prompt_tokens": pt, "completion_tokens": ct, "total_tokens": pt + ct},
        }
