"""OpenAI-compatible HTTP server for the embedded SmolLM2-135M-Instruct model (CPU, standard library).

Run: ``python -m agentlab.llm.embedded_server --port 8011 --threads 1``.
The model is the int4 ONNX build of the GGUF (agentlab.llm.embedded_convert, converted once and
cached) run by onnxruntime-genai. Serves ``GET /v1/models`` and ``POST /v1/chat/completions`` (JSON,
or token-by-token SSE when ``stream`` is true). ``response_format`` json_schema / json_object is
constrained by onnxruntime-genai's guidance (llguidance). Generation is serialised by a lock.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import shutil
import signal
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from agentlab.llm.embedded import DEFAULT_MAX_NEW_TOKENS, MODEL_ID, locate_gguf
from agentlab.llm.embedded_convert import cache_root, ensure_onnx

REPETITION_PENALTY = 1.1  # the model loops badly without it
COMPACT = {"whitespace_flexible": False}  # llguidance: no free whitespace (a 135M model fills it with tabs)


class RequestError(Exception):
    """A client error, answered as HTTP 400 with an OpenAI-style error body."""

    def __init__(self, message: str, param: str | None = None, code: str | None = None) -> None:
        super().__init__(message)
        self.param, self.code = param, code


def guidance_schema(mode: str, schema: dict | None, max_new: int = DEFAULT_MAX_NEW_TOKENS) -> dict:
    """The JSON schema handed to guidance: the caller's, tightened so a 135M model's JSON stays usable.

    Every tightening only removes values the original schema allows, so the output still validates
    against it: objects with `properties` are closed (OpenAI strict), strings are non-empty, free of control
    characters but tab and newlines and, without
    their own `maxLength`, bounded by a share of the token budget, arrays hold 1..8 items unless the
    schema says otherwise (an array of enum values at most one item per value), no free whitespace."""
    if mode == "json_object" or not schema:
        out: dict = {"type": "object"}
    else:
        out = json.loads(json.dumps(schema))
        share = max(8, min(64, max_new // (_count_strings(out) + 1)))  # tokens per string, as before
        out = _tighten(out, STRING_CHARS_PER_TOKEN * share)
    out.setdefault("x-guidance", COMPACT)
    return out


STRING_CHARS_PER_TOKEN = 4
#: no control characters (C0, DEL, C1) but tab and newline: once a 135M model writes an escaped one (`\u001b`) into a
#: string, greedy decoding falls into letter soup for the rest of it (seen in every report section)
NO_CONTROL = "^[^\\u0000-\\u0008\\u000b-\\u001f\\u007f-\\u009f]*$"
ARRAY_MAX_ITEMS = 8
_LITERAL_KEYS = ("enum", "const", "default", "examples")


def _count_strings(node: Any) -> int:
    if isinstance(node, dict):
        own = 1 if node.get("type") == "string" else 0
        return own + sum(_count_strings(v) for k, v in node.items() if k not in _LITERAL_KEYS)
    if isinstance(node, list):
        return sum(_count_strings(v) for v in node)
    return 0


def _tighten(node: Any, max_chars: int) -> Any:
    if isinstance(node, list):
        return [_tighten(v, max_chars) for v in node]
    if not isinstance(node, dict):
        return node
    if "properties" in node and "additionalProperties" not in node and "patternProperties" not in node:
        node["additionalProperties"] = False
    free = not any(k in node for k in ("enum", "const", "pattern", "format"))
    if node.get("type") == "string" and free:
        node.setdefault("minLength", 1)
        node.setdefault("maxLength", max(max_chars, node["minLength"]))
        node.setdefault("pattern", NO_CONTROL)
    if node.get("type") == "array" and node.get("maxItems") != 0:
        node.setdefault("minItems", 1)
        node.setdefault("maxItems", max(ARRAY_MAX_ITEMS, node["minItems"]))
        items = node.get("items")
        if isinstance(items, dict) and isinstance(items.get("enum"), list) and items["enum"]:
            # a list of enum values longer than the number of values must repeat one
            node["maxItems"] = max(node["minItems"], min(node["maxItems"], len(items["enum"])))
    for key, value in node.items():
        if key not in _LITERAL_KEYS:
            node[key] = _tighten(value, max_chars)
    return node


class Engine:
    """The loaded ONNX model + tokenizer, and one chat completion at a time."""

    def __init__(self, gguf: Path, threads: int | None, max_new_cap: int) -> None:
        import onnxruntime_genai as og

        self.og = og
        t0 = time.monotonic()
        self.folder, self.converted = ensure_onnx(gguf, log=lambda m: print(f"agentlab embedded server: {m}",
                                                                            file=sys.stderr, flush=True))
        self.convert_seconds = time.monotonic() - t0
        config = og.Config(str(self.folder))
        if threads:
            config.overlay(json.dumps({"model": {"decoder": {"session_options": {
                "intra_op_num_threads": threads, "inter_op_num_threads": 1}}}}))
        self.threads = threads
        self.model = og.Model(config)
        self.tokenizer = og.Tokenizer(self.model)
        genai = json.loads((self.folder / "genai_config.json").read_text())
        self.ctx = int(genai["model"].get("context_length", 8192))
        eos = genai["model"].get("eos_token_id", 2)
        self.eos_ids = set(eos if isinstance(eos, list) else [eos])
        self.max_new_cap = max_new_cap
        self.lock = threading.Lock()
        self.load_seconds = time.monotonic() - t0

    def prompt_ids(self, messages: list[dict]) -> list[int]:
        """Chat-template the messages exactly as the model was trained on."""
        prompt = self.tokenizer.apply_chat_template(json.dumps(messages), add_generation_prompt=True)
        return [int(t) for t in self.tokenizer.encode(prompt)]

    def parse(self, body: dict) -> dict:
        """Validate a request body into the generation settings (RequestError on a bad one)."""
        messages = _messages(body.get("messages"))
        if body.get("n", 1) not in (None, 1):
            raise RequestError("only n=1 is supported", "n")
        if body.get("tools"):
            raise RequestError("tools are not supported by the embedded model", "tools")
        max_new = body.get("max_completion_tokens") or body.get("max_tokens") or DEFAULT_MAX_NEW_TOKENS
        try:
            max_new = max(1, min(int(max_new), self.max_new_cap))
            temperature = float(body.get("temperature") if body.get("temperature") is not None else 1.0)
            top_p = float(body.get("top_p") if body.get("top_p") is not None else 1.0)
        except (TypeError, ValueError) as exc:
            raise RequestError(f"invalid sampling parameter: {exc}") from None
        stop = body.get("stop") or []
        stop = [s for s in ([stop] if isinstance(stop, str) else list(stop)) if s]
        fmt = body.get("response_format") or {"type": "text"}
        mode = fmt.get("type", "text") if isinstance(fmt, dict) else None
        if mode not in ("text", "json_object", "json_schema"):
            raise RequestError(f"unsupported response_format type: {mode!r}", "response_format")
        schema = (fmt.get("json_schema") or {}).get("schema") if mode == "json_schema" else None
        if schema is not None and not isinstance(schema, dict):
            raise RequestError("response_format.json_schema.schema must be an object", "response_format")
        return {"messages": messages, "max_new": max_new, "temperature": temperature, "top_p": top_p,
                "stop": stop, "mode": mode, "schema": schema, "seed": body.get("seed")}

    def generator(self, req: dict, ids: list[int]) -> Any:
        og = self.og
        if len(ids) + req["max_new"] > self.ctx:
            raise RequestError(f"prompt has {len(ids)} tokens; with max_tokens={req['max_new']} it exceeds the "
                               f"model's context of {self.ctx}", "messages", "context_length_exceeded")
        params = og.GeneratorParams(self.model)
        # text: onnxruntime-genai's penalty (over prompt + output); JSON: ours over the output only (see stream)
        penalty = REPETITION_PENALTY if req["mode"] == "text" else 1.0
        search: dict[str, Any] = {"max_length": len(ids) + req["max_new"], "repetition_penalty": penalty}
        if req["temperature"] <= 0:
            search["do_sample"] = False
        else:
            search.update(do_sample=True, temperature=req["temperature"], top_p=req["top_p"], top_k=0)
            if req["seed"] is not None:
                search["random_seed"] = int(req["seed"])
        params.set_search_options(**search)
        if req["mode"] != "text":
            try:
                params.set_guidance("json_schema", json.dumps(guidance_schema(req["mode"], req["schema"], req["max_new"])))
                gen = og.Generator(self.model, params)
            except RuntimeError as exc:  # llguidance refused the schema
                raise RequestError(f"response_format json_schema not supported: {exc}", "response_format") from None
        else:
            gen = og.Generator(self.model, params)
        gen.append_tokens(ids)
        return gen

    def stream(self, req: dict, state: dict) -> Iterator[str]:
        """Yield the completion's text pieces; `state` gets prompt/completion token counts and finish_reason.

        The caller holds `self.lock`. A stop string is excluded from the output, like OpenAI: text that
        might be the start of one is held back until it cannot be."""
        ids = self.prompt_ids(req["messages"])
        gen = self.generator(req, ids)
        state.update(prompt_tokens=len(ids), completion_tokens=0, finish_reason="length")
        stop, hold = req["stop"], max((len(s) for s in req["stop"]), default=1) - 1
        decoder = self.tokenizer.create_stream()
        text, sent, last, seen = "", 0, None, set()
        while not gen.is_done():
            if req["mode"] != "text" and seen:
                gen.set_logits(_penalised(gen.get_logits(), seen))
            gen.generate_next_token()
            last = int(gen.get_next_tokens()[0])
            state["completion_tokens"] += 1
            seen.add(last)
            if last in self.eos_ids:
                break
            text += decoder.decode(last)
            hits = [text.find(s) for s in stop if s in text]
            if hits:
                yield text[sent:min(hits)]
                state["finish_reason"] = "stop"
                return
            if len(text) - hold > sent:
                yield text[sent:len(text) - hold]
                sent = len(text) - hold
        yield text[sent:]
        done = last in self.eos_ids or state["completion_tokens"] < req["max_new"]
        if req["mode"] != "text" and not done:
            done = _is_json(text)  # the grammar may end exactly on the last allowed token
        state["finish_reason"] = "stop" if done else "length"

    def complete(self, body: dict) -> dict:
        req = self.parse(body)
        state: dict = {}
        with self.lock:
            content = "".join(self.stream(req, state))
        return _completion(content, state)


def _penalised(logits: Any, seen: set[int]) -> Any:
    """The repetition penalty over the output's own tokens only. In JSON mode the prompt usually lists
    the schema's enum names; a penalty over the prompt would flatten them all and let the model repeat
    one (e.g. the same baseline twice), so guided requests penalise what they already wrote instead."""
    import numpy as np

    row = logits.reshape(-1, logits.shape[-1])[-1]
    idx = np.fromiter(seen, dtype=np.int64)
    idx = idx[idx < row.shape[0]]
    vals = row[idx]
    row[idx] = np.where(vals > 0, vals / REPETITION_PENALTY, vals * REPETITION_PENALTY)
    return logits


def _is_json(text: str) -> bool:
    try:
        json.loads(text)
        return True
    except ValueError:
        return False


def _usage(state: dict) -> dict:
    return {"prompt_tokens": state["prompt_tokens"], "completion_tokens": state["completion_tokens"],
            "total_tokens": state["prompt_tokens"] + state["completion_tokens"]}


def _head() -> dict:
    return {"id": f"chatcmpl-{uuid.uuid4().hex}", "created": int(time.time()), "model": MODEL_ID,
            "system_fingerprint": "agentlab-embedded"}


def _completion(content: str, state: dict) -> dict:
    return {**_head(), "object": "chat.completion",
            "choices": [{"index": 0, "message": {"role": "assistant", "content": content},
                         "finish_reason": state["finish_reason"], "logprobs": None}],
            "usage": _usage(state)}


def _messages(raw: Any) -> list[dict]:
    """Validate messages and flatten content parts to plain text."""
    if not isinstance(raw, list) or not raw:
        raise RequestError("messages must be a non-empty list", "messages")
    out = []
    for m in raw:
        if not isinstance(m, dict) or "role" not in m:
            raise RequestError("each message needs a role", "messages")
        content = m.get("content") or ""
        if isinstance(content, list):
            content = "".join(p.get("text", "") for p in content if isinstance(p, dict))
        out.append({"role": "user" if m["role"] == "tool" else str(m["role"]), "content": str(content)})
    return out


class Handler(BaseHTTPRequestHandler):
    """HTTP front end: routes, JSON bodies, OpenAI-style errors, SSE streaming."""

    engine: Engine
    protocol_version = "HTTP/1.1"

    def log_message(self, fmt: str, *args: Any) -> None:  # quieter than the default
        if os.environ.get("AGENTLAB_EMBEDDED_LOG"):
            super().log_message(fmt, *args)

    def _send(self, status: int, payload: dict) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _error(self, status: int, message: str, etype: str, param: str | None = None,
               code: str | None = None) -> None:
        self._send(status, {"error": {"message": message, "type": etype, "param": param, "code": code}})

    def do_GET(self) -> None:  # noqa: N802
        if self.path.rstrip("/") in ("/v1/models", "/models"):
            self._send(200, {"object": "list", "data": [{"id": MODEL_ID, "object": "model", "created": 0,
                                                         "owned_by": "agentlab-embedded"}]})
        elif self.path.rstrip("/") in ("/health", "/v1/health"):
            self._send(200, {"status": "ok", "model": MODEL_ID})
        else:
            self._error(404, f"no route {self.path}", "invalid_request_error")

    def do_POST(self) -> None:  # noqa: N802
        raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))  # always drain (keep-alive)
        if self.path.rstrip("/") not in ("/v1/chat/completions", "/chat/completions"):
            self._error(404, f"no route {self.path}", "invalid_request_error")
            return
        try:
            body = json.loads(raw or b"{}")
            if not isinstance(body, dict):
                raise RequestError("request body must be a JSON object")
            if body.get("stream"):
                self._stream(body)
            else:
                self._send(200, self.engine.complete(body))
        except json.JSONDecodeError as exc:
            self._error(400, f"invalid JSON body: {exc}", "invalid_request_error")
        except RequestError as exc:
            self._error(400, str(exc), "invalid_request_error", exc.param, exc.code)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True
        except Exception as exc:  # the server must answer, not hang the client
            self._error(500, f"{type(exc).__name__}: {exc}", "server_error")

    def _stream(self, body: dict) -> None:
        """Server-sent events, one chunk per decoded piece; errors before the first byte stay JSON errors."""
        engine = self.engine
        req = engine.parse(body)
        head, state = _head(), {}
        with engine.lock:
            pieces = engine.stream(req, state)
            first = next(pieces)  # RequestError (e.g. context overflow) surfaces here, before the 200
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream")
            self.send_header("Cache-Control", "no-cache")
            self.send_header("Connection", "close")
            self.end_headers()
            self.close_connection = True
            role = {"role": "assistant"}
            for piece in itertools.chain([first], pieces):
                if piece or role:
                    self._event({**head, "object": "chat.completion.chunk", "choices": [
                        {"index": 0, "delta": {**role, "content": piece}, "finish_reason": None}]})
                    role = {}
        self._event({**head, "object": "chat.completion.chunk", "choices": [
            {"index": 0, "delta": {}, "finish_reason": state["finish_reason"]}]})
        if (body.get("stream_options") or {}).get("include_usage"):
            self._event({**head, "object": "chat.completion.chunk", "choices": [], "usage": _usage(state)})
        self.wfile.write(b"data: [DONE]\n\n")
        self.wfile.flush()

    def _event(self, chunk: dict) -> None:
        self.wfile.write(f"data: {json.dumps(chunk)}\n\n".encode())
        self.wfile.flush()


def _watch_parent(parent_pid: int) -> None:
    """Exit when the process that started us is gone (no orphaned servers)."""
    while True:
        time.sleep(2)
        try:
            os.kill(parent_pid, 0)
        except ProcessLookupError:
            os._exit(0)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description="AgentLab embedded OpenAI-compatible server (SmolLM2-135M).")
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=8011)
    ap.add_argument("--threads", type=int, default=None, help="onnxruntime intra-op CPU threads")
    ap.add_argument("--max-new-tokens-cap", type=int, default=1024)
    ap.add_argument("--parent-pid", type=int, default=None, help="exit when this process dies")
    args = ap.parse_args(argv)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))  # run the finally blocks (temporary model folder)
    gguf = locate_gguf()
    # bind first (a busy port fails in a second, not after the model load); listen only once loaded,
    # so readiness probes are refused rather than queued during the load
    server = ThreadingHTTPServer((args.host, args.port), Handler, bind_and_activate=False)
    server.daemon_threads = True
    try:
        server.server_bind()
    except OSError:
        server.server_close()
        raise
    if args.parent_pid:
        threading.Thread(target=_watch_parent, args=(args.parent_pid,), daemon=True).start()
    engine = Engine(gguf, args.threads, args.max_new_tokens_cap)
    Handler.engine = engine
    server.server_activate()
    print(f"agentlab embedded server: {MODEL_ID} int4 ONNX from {engine.folder} "
          f"({'converted' if engine.converted else 'cached'}), ready in {engine.load_seconds:.1f}s, "
          f"threads={args.threads or 'onnxruntime default'}, http://{args.host}:{server.server_port}/v1",
          file=sys.stderr, flush=True)
    try:
        server.serve_forever()
    finally:
        server.server_close()
        if cache_root() is None:  # AGENTLAB_EMBEDDED_CACHE=off: the model folder was temporary
            shutil.rmtree(engine.folder.parent, ignore_errors=True)


if __name__ == "__main__":
    main()
