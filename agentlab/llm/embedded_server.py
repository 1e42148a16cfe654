"""OpenAI-compatible HTTP server for the embedded SmolLM2-135M-Instruct model (CPU, standard library).

Run: ``python -m agentlab.llm.embedded_server --port 8011 --threads 2``.
Serves ``GET /v1/models`` and ``POST /v1/chat/completions`` (non-streaming JSON, or the whole
answer as one SSE chunk when ``stream`` is true). ``response_format`` json_schema / json_object is
honoured by constrained decoding (agentlab.llm.embedded_json). Generation is serialised by a lock.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import sys
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import torch  # noqa: E402

from agentlab.llm.embedded import DEFAULT_MAX_NEW_TOKENS, MODEL_ID, locate_gguf  # noqa: E402
from agentlab.llm.embedded_json import JsonGenerator, Vocab  # noqa: E402

REPETITION_PENALTY = 1.1
CACHE_ENV = "AGENTLAB_EMBEDDED_CACHE"  # a directory, or "off"


class RequestError(Exception):
    """A client error, answered as HTTP 400 with an OpenAI-style error body."""

    def __init__(self, message: str, param: str | None = None, code: str | None = None) -> None:
        super().__init__(message)
        self.param, self.code = param, code


class Decoder:
    """Incremental decoding over a KV cache with token masks, sampling and a token budget."""

    def __init__(self, engine: "Engine", prompt_ids: list[int], max_new: int, temperature: float,
                 top_p: float, seed: int | None) -> None:
        self.engine, self.vocab = engine, engine.vocab
        self.max_new, self.temperature, self.top_p = max_new, temperature, top_p
        self.generator = torch.Generator().manual_seed(seed if seed is not None else int(time.time_ns() % 2**31))
        self.cache: Any = None
        self.logits: torch.Tensor | None = None
        self.new_ids: list[int] = []
        self._feed(prompt_ids)
        self.new_ids = []

    @property
    def exhausted(self) -> bool:
        return len(self.new_ids) >= self.max_new

    def _feed(self, ids: list[int]) -> None:
        if not ids:
            return
        with torch.inference_mode():
            out = self.engine.model(input_ids=torch.tensor([ids]), past_key_values=self.cache, use_cache=True)
        self.cache = out.past_key_values
        self.logits = out.logits[0, -1].float()
        self.new_ids += ids

    def peek(self, mask: torch.Tensor | None) -> int:
        """Pick the next token (greedy or sampled) among the allowed ones, without feeding it."""
        assert self.logits is not None
        logits = self.logits.clone()
        if self.new_ids and REPETITION_PENALTY != 1.0:
            seen = torch.tensor(sorted(set(self.new_ids)))
            vals = logits[seen]
            logits[seen] = torch.where(vals > 0, vals / REPETITION_PENALTY, vals * REPETITION_PENALTY)
        if mask is not None:
            logits[: mask.shape[0]][~mask] = float("-inf")
            logits[mask.shape[0]:] = float("-inf")
        if self.temperature <= 0:
            return int(torch.argmax(logits))
        probs = torch.softmax(logits / self.temperature, dim=-1)
        if self.top_p < 1.0:
            sorted_p, idx = torch.sort(probs, descending=True)
            drop = torch.cumsum(sorted_p, dim=-1) - sorted_p > self.top_p
            sorted_p[drop] = 0.0
            probs = torch.zeros_like(probs).scatter(0, idx, sorted_p)
        return int(torch.multinomial(probs, 1, generator=self.generator))

    def accept(self, tid: int) -> None:
        self._feed([tid])

    def step(self, mask: torch.Tensor | None) -> int:
        tid = self.peek(mask)
        self.accept(tid)
        return tid

    def force(self, text: str) -> None:
        """Append fixed text (the JSON skeleton) to the context."""
        self._feed(self.engine.tokenizer.encode(text, add_special_tokens=False))

    def choose(self, options: list[str]) -> str:
        """Let the model pick one literal among options, token by token along their common prefixes."""
        if self.exhausted:
            self.force(options[-1] if options[-1] in ("]", "}") else options[0])
            return options[-1] if options[-1] in ("]", "}") else options[0]
        seqs = [self.engine.tokenizer.encode(o, add_special_tokens=False) for o in options]
        alive = [i for i, s in enumerate(seqs) if s]
        pos = 0
        while len(alive) > 1:
            nexts = sorted({seqs[i][pos] for i in alive if len(seqs[i]) > pos})
            if not nexts:
                break
            mask = torch.zeros(self.vocab.size, dtype=torch.bool)
            mask[nexts] = True
            tid = self.step(mask)
            alive = [i for i in alive if len(seqs[i]) > pos and seqs[i][pos] == tid]
            pos += 1
        pick = alive[0]
        self._feed(seqs[pick][pos:])
        return options[pick]


class Engine:
    """The loaded model + tokenizer, and one chat completion at a time."""

    def __init__(self, gguf: Path, threads: int | None, max_new_cap: int) -> None:
        from transformers import AutoModelForCausalLM, AutoTokenizer

        if threads:
            torch.set_num_threads(threads)
        t0 = time.monotonic()
        cache = cache_dir(gguf)
        if cache is not None and (cache / "config.json").is_file():
            self.tokenizer = AutoTokenizer.from_pretrained(str(cache))
            self.model = AutoModelForCausalLM.from_pretrained(str(cache), dtype=torch.float32)
            self.source = f"cache {cache}"
        else:
            self.tokenizer = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
            self.model = AutoModelForCausalLM.from_pretrained(str(gguf.parent), gguf_file=gguf.name,
                                                              dtype=torch.float32)
            self.source = f"gguf {gguf}"
            if cache is not None:
                _save_cache(self.model, self.tokenizer, cache)
        self.model.eval()
        self.vocab = Vocab(self.tokenizer, self.model.config.vocab_size)
        self.max_new_cap = max_new_cap
        self.ctx = int(getattr(self.model.config, "max_position_embeddings", 2048))
        eos = self.model.generation_config.eos_token_id
        self.eos_ids = set(eos if isinstance(eos, list) else [eos]) | {self.tokenizer.eos_token_id}
        self.lock = threading.Lock()
        self.load_seconds = time.monotonic() - t0

    def prompt_ids(self, messages: list[dict]) -> list[int]:
        """Chat-template the messages exactly as the model was trained on."""
        ids = self.tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=True,
                                                 return_dict=True)["input_ids"]
        return list(ids)

    def complete(self, body: dict) -> dict:
        messages = _messages(body.get("messages"))
        if body.get("n", 1) not in (None, 1):
            raise RequestError("only n=1 is supported", "n")
        if body.get("tools"):
            raise RequestError("tools are not supported by the embedded model", "tools")
        max_new = body.get("max_completion_tokens") or body.get("max_tokens") or DEFAULT_MAX_NEW_TOKENS
        max_new = max(1, min(int(max_new), self.max_new_cap))
        temperature = float(body.get("temperature") if body.get("temperature") is not None else 1.0)
        top_p = float(body.get("top_p") if body.get("top_p") is not None else 1.0)
        stop = body.get("stop") or []
        stop = [stop] if isinstance(stop, str) else list(stop)
        fmt = body.get("response_format") or {"type": "text"}
        mode = fmt.get("type", "text") if isinstance(fmt, dict) else None
        if mode not in ("text", "json_object", "json_schema"):
            raise RequestError(f"unsupported response_format type: {mode!r}", "response_format")
        schema = (fmt.get("json_schema") or {}).get("schema") if mode == "json_schema" else None
        with self.lock:
            ids = self.prompt_ids(messages)
            if len(ids) + max_new > self.ctx:
                raise RequestError(f"prompt has {len(ids)} tokens; with max_tokens={max_new} it exceeds the "
                                   f"model's context of {self.ctx}", "messages", "context_length_exceeded")
            dec = Decoder(self, ids, max_new, temperature, top_p, body.get("seed"))
            if mode == "text":
                content, finish = self._free(dec, stop)
            else:
                value = JsonGenerator(dec, schema or {}).generate(schema)
                content = json.dumps(value, ensure_ascii=False)
                finish = "length" if dec.exhausted else "stop"
        usage = {"prompt_tokens": len(ids), "completion_tokens": len(dec.new_ids),
                 "total_tokens": len(ids) + len(dec.new_ids)}
        return {"id": f"chatcmpl-{uuid.uuid4().hex}", "object": "chat.completion", "created": int(time.time()),
                "model": MODEL_ID, "system_fingerprint": "agentlab-embedded",
                "choices": [{"index": 0, "message": {"role": "assistant", "content": content},
                             "finish_reason": finish, "logprobs": None}],
                "usage": usage}

    def _free(self, dec: Decoder, stop: list[str]) -> tuple[str, str]:
        """Unconstrained generation until EOS, a stop string or the token budget."""
        special = torch.tensor([not b for b in self.vocab.bytes], dtype=torch.bool)
        allowed = ~special
        allowed[sorted(i for i in self.eos_ids if i is not None and i < self.vocab.size)] = True
        while not dec.exhausted:
            tid = dec.step(allowed)
            if tid in self.eos_ids:
                text = self.tokenizer.decode(dec.new_ids[:-1], skip_special_tokens=True)
                return text, "stop"
            if stop:
                text = self.tokenizer.decode(dec.new_ids, skip_special_tokens=True)
                hits = [text.find(s) for s in stop if s and s in text]
                if hits:
                    return text[: min(hits)], "stop"
        return self.tokenizer.decode(dec.new_ids, skip_special_tokens=True), "length"


def cache_dir(gguf: Path) -> Path | None:
    """Where the dequantized float32 copy is kept (None when AGENTLAB_EMBEDDED_CACHE=off)."""
    import transformers

    root = os.environ.get(CACHE_ENV, "")
    if root.lower() in ("off", "0", "no", "false"):
        return None
    base = Path(root) if root else Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "agentlab"
    st = gguf.stat()
    return base / "embedded" / f"{gguf.stem}-{st.st_size}-{st.st_mtime_ns}-tf{transformers.__version__}"


def _save_cache(model: Any, tokenizer: Any, target: Path) -> None:
    """Save atomically (temp dir + rename); a failure only costs the speed-up."""
    import shutil
    import tempfile

    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=".tmp-", dir=target.parent))
        # save_pretrained refuses GGUF-loaded models; the dequantized weights are plain float32 tensors.
        from safetensors.torch import save_model

        config = copy.deepcopy(model.config)
        if hasattr(config, "quantization_config"):
            del config.quantization_config
        config.architectures = [type(model).__name__]
        config.save_pretrained(tmp)
        model.generation_config.save_pretrained(tmp)
        save_model(model, str(tmp / "model.safetensors"), metadata={"format": "pt"})
        tokenizer.save_pretrained(tmp)
        os.replace(tmp, target)
    except Exception as exc:  # noqa: BLE001 - optional speed-up only
        print(f"agentlab embedded server: cache not written ({exc})", file=sys.stderr, flush=True)
        shutil.rmtree(tmp, ignore_errors=True) if "tmp" in locals() else None


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
    """HTTP front end: routes, JSON bodies, OpenAI-style errors."""

    engine: Engine
    protocol_version = "HTTP/1.1"

    def log_message(self, fmt: str, *args: Any) -> None:  # quieter than the default
        if os.environ.get("AGENTLAB_EMBEDDED_LOG"):
            super().log_message(fmt, *args)

    def _send(self, status: int, payload: dict | str, content_type: str = "application/json") -> None:
        data = (payload if isinstance(payload, str) else json.dumps(payload)).encode()
        self.send_response(status)
        self.send_header("Content-Type", content_type)
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
            result = self.engine.complete(body)
        except json.JSONDecodeError as exc:
            self._error(400, f"invalid JSON body: {exc}", "invalid_request_error")
        except RequestError as exc:
            self._error(400, str(exc), "invalid_request_error", exc.param, exc.code)
        except Exception as exc:  # the server must answer, not hang the client
            self._error(500, f"{type(exc).__name__}: {exc}", "server_error")
        else:
            if body.get("stream"):
                self._send(200, _as_sse(result, body), "text/event-stream")
            else:
                self._send(200, result)


def _as_sse(result: dict, body: dict) -> str:
    """The whole answer as one content chunk, a finish chunk and (if asked) a usage chunk."""
    base = {k: result[k] for k in ("id", "created", "model", "system_fingerprint")}
    choice = result["choices"][0]
    chunks = [
        {**base, "object": "chat.completion.chunk", "choices": [
            {"index": 0, "delta": {"role": "assistant", "content": choice["message"]["content"]},
             "finish_reason": None}]},
        {**base, "object": "chat.completion.chunk", "choices": [
            {"index": 0, "delta": {}, "finish_reason": choice["finish_reason"]}]},
    ]
    if (body.get("stream_options") or {}).get("include_usage"):
        chunks.append({**base, "object": "chat.completion.chunk", "choices": [], "usage": result["usage"]})
    return "".join(f"data: {json.dumps(c)}\n\n" for c in chunks) + "data: [DONE]\n\n"


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
    ap.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    ap.add_argument("--max-new-tokens-cap", type=int, default=1024)
    ap.add_argument("--parent-pid", type=int, default=None, help="exit when this process dies")
    args = ap.parse_args(argv)
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
    engine = Engine(gguf, args.threads, args.max_new_tokens_cap)
    Handler.engine = engine
    server.server_activate()
    if args.parent_pid:
        threading.Thread(target=_watch_parent, args=(args.parent_pid,), daemon=True).start()
    print(f"agentlab embedded server: {MODEL_ID} loaded from {engine.source} in "
          f"{engine.load_seconds:.1f}s, "
          f"threads={torch.get_num_threads()}, http://{args.host}:{server.server_port}/v1", file=sys.stderr,
          flush=True)
    try:
        server.serve_forever()
    finally:
        server.server_close()


if __name__ == "__main__":
    main()
