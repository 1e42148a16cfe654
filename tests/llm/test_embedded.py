"""The embedded SmolLM2 endpoint, exercised through the real openai SDK against the real server."""

from __future__ import annotations

import json
import os
import socket
from concurrent.futures import ThreadPoolExecutor
from enum import Enum
from pathlib import Path

import openai
import pytest
from pydantic import BaseModel, Field

from agentlab.llm.embedded import (
    GGUF_ENV,
    MODEL_ID,
    EmbeddedModelMissing,
    EmbeddedServer,
    EmbeddedServerError,
    doctor_check,
    locate_gguf,
    notice_text,
)

CAPITAL = [{"role": "user", "content": "What is the capital of France?"}]


class Kind(str, Enum):
    quantization = "quantization"
    pruning = "pruning"


class Step(BaseModel):
    name: str
    minutes: int


class Plan(BaseModel):
    title: str
    kind: Kind
    risky: bool
    budget: float
    steps: list[Step] = Field(max_length=3)
    note: str | None = None


@pytest.fixture(scope="module")
def server():
    with EmbeddedServer(threads=1) as srv:
        yield srv


@pytest.fixture(scope="module")
def client(server):
    return openai.OpenAI(base_url=server.base_url, api_key=server.api_key, max_retries=0, timeout=300)


@pytest.fixture(scope="module")
def tokenizer(server):
    """The HF tokenizer saved beside the ONNX model: an independent count of the prompt's tokens."""
    from transformers import AutoTokenizer

    from agentlab.llm.embedded_convert import cache_key, cache_root

    return AutoTokenizer.from_pretrained(str(cache_root() / cache_key(locate_gguf())))


@pytest.mark.model
@pytest.mark.slow
def test_models_lists_the_embedded_model(server, client):
    assert server.base_url.endswith("/v1")
    assert [m.id for m in client.models.list().data] == [MODEL_ID]


@pytest.mark.model
@pytest.mark.slow
def test_chat_completion_text_and_usage(client, tokenizer):
    resp = client.chat.completions.create(model=MODEL_ID, messages=CAPITAL, max_tokens=24, temperature=0)
    text = resp.choices[0].message.content
    assert text and text.strip()
    assert "Paris" in text  # greedy decoding of this model answers this one correctly
    expected = tokenizer.apply_chat_template(CAPITAL, add_generation_prompt=True, tokenize=True,
                                             return_dict=True)["input_ids"]
    assert resp.usage.prompt_tokens == len(expected)
    assert 1 <= resp.usage.completion_tokens <= 24
    assert resp.usage.total_tokens == resp.usage.prompt_tokens + resp.usage.completion_tokens
    assert resp.choices[0].finish_reason == "stop"


@pytest.mark.model
@pytest.mark.slow
def test_max_tokens_stop_and_seed(client):
    essay = [{"role": "user", "content": "Write a long essay about the history of computing."}]
    short = client.chat.completions.create(model=MODEL_ID, messages=essay, max_tokens=4, temperature=0)
    assert short.usage.completion_tokens == 4
    assert short.choices[0].finish_reason == "length"

    stopped = client.chat.completions.create(model=MODEL_ID, messages=CAPITAL, max_tokens=24, temperature=0,
                                             stop=["Paris"])
    assert "Paris" not in stopped.choices[0].message.content
    assert stopped.choices[0].finish_reason == "stop"

    def sampled() -> str:
        r = client.chat.completions.create(model=MODEL_ID, messages=essay, max_tokens=12, temperature=1.0, seed=7)
        return r.choices[0].message.content

    assert sampled() == sampled()


@pytest.mark.model
@pytest.mark.slow
def test_json_schema_is_constrained(client):
    schema = Plan.model_json_schema()
    resp = client.chat.completions.create(
        model=MODEL_ID, messages=[{"role": "user", "content": "Plan a small quantization study."}],
        max_tokens=90, temperature=0,
        response_format={"type": "json_schema", "json_schema": {"name": "plan", "schema": schema, "strict": True}})
    plan = Plan.model_validate_json(resp.choices[0].message.content)
    assert len(plan.steps) <= 3
    keys = set(json.loads(resp.choices[0].message.content))
    assert set(schema["required"]) <= keys <= set(schema["properties"])  # strict: no extra keys
    assert resp.choices[0].finish_reason == "stop"


@pytest.mark.model
@pytest.mark.slow
def test_sdk_parse_and_budget_exhaustion(client):
    parsed = client.chat.completions.parse(
        model=MODEL_ID, messages=[{"role": "user", "content": "Plan a pruning study."}], response_format=Plan,
        max_tokens=1024, temperature=0)  # 64 tokens per string at most: the JSON always closes
    assert isinstance(parsed.choices[0].message.parsed, Plan)
    # a budget far too small: the JSON is cut off and flagged as truncated (the LLM layer re-asks)
    tiny = client.chat.completions.create(
        model=MODEL_ID, messages=CAPITAL, max_tokens=3, temperature=0,
        response_format={"type": "json_schema", "json_schema": {"name": "p", "schema": Plan.model_json_schema()}})
    assert tiny.choices[0].finish_reason == "length" and tiny.usage.completion_tokens == 3
    assert tiny.choices[0].message.content.startswith("{")
    with pytest.raises(openai.LengthFinishReasonError):
        client.chat.completions.parse(model=MODEL_ID, messages=CAPITAL, response_format=Plan, max_tokens=3,
                                      temperature=0)


@pytest.mark.model
@pytest.mark.slow
def test_json_object_mode(client):
    resp = client.chat.completions.create(
        model=MODEL_ID, messages=[{"role": "user", "content": "Describe Paris as a JSON object."}],
        max_tokens=60, temperature=0, response_format={"type": "json_object"})
    assert isinstance(json.loads(resp.choices[0].message.content), dict)
    assert resp.choices[0].finish_reason == "stop"


@pytest.mark.model
@pytest.mark.slow
def test_schema_guidance_cannot_compile_is_a_response_format_400(client):
    """A schema guidance refuses is a 400 naming response_format (the LLM ladder then falls back)."""
    with pytest.raises(openai.BadRequestError) as err:
        client.chat.completions.create(
            model=MODEL_ID, messages=CAPITAL, max_tokens=8,
            response_format={"type": "json_schema", "json_schema": {"name": "x", "schema": {
                "type": "object", "properties": {"a": {"type": "strnig"}}}}})
    assert err.value.body["param"] == "response_format" and "response_format" in err.value.body["message"]


@pytest.mark.model
@pytest.mark.slow
def test_bad_requests_get_openai_errors(client):
    with pytest.raises(openai.BadRequestError) as err:
        client.chat.completions.create(model=MODEL_ID, messages=CAPITAL, n=2)
    assert err.value.body["param"] == "n"
    with pytest.raises(openai.BadRequestError):
        client.chat.completions.create(model=MODEL_ID, messages=CAPITAL, response_format={"type": "grammar"})
    with pytest.raises(openai.BadRequestError):
        client.chat.completions.create(model=MODEL_ID, messages=[])
    with pytest.raises(openai.BadRequestError) as err:
        client.chat.completions.create(model=MODEL_ID, messages=CAPITAL, tools=[{"type": "function", "function": {
            "name": "f", "parameters": {"type": "object"}}}])
    assert err.value.body["param"] == "tools" and err.value.body["type"] == "invalid_request_error"
    with pytest.raises(openai.NotFoundError):
        client.post("/nope", cast_to=object, body={})


@pytest.mark.model
@pytest.mark.slow
def test_stream_is_token_by_token_with_usage(client):
    plain = client.chat.completions.create(model=MODEL_ID, messages=CAPITAL, max_tokens=16, temperature=0)
    chunks = list(client.chat.completions.create(model=MODEL_ID, messages=CAPITAL, max_tokens=16, temperature=0,
                                                 stream=True, stream_options={"include_usage": True}))
    pieces = [c.choices[0].delta.content or "" for c in chunks if c.choices]
    assert "".join(pieces) == plain.choices[0].message.content and "Paris" in "".join(pieces)
    assert sum(1 for p in pieces if p) >= 3  # real streaming, not the whole answer in one chunk
    assert chunks[0].choices[0].delta.role == "assistant"
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "stop"
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens == plain.usage.completion_tokens
    # a stop string is held back and excluded while streaming too
    stopped = list(client.chat.completions.create(model=MODEL_ID, messages=CAPITAL, max_tokens=24, temperature=0,
                                                  stream=True, stop=["Paris"]))
    assert "Paris" not in "".join(c.choices[0].delta.content or "" for c in stopped if c.choices)
    # a stream that cannot start is a plain OpenAI error, not an event stream
    with pytest.raises(openai.BadRequestError):
        list(client.chat.completions.create(model=MODEL_ID, messages=[{"role": "user", "content": "word " * 9000}],
                                            max_tokens=8, stream=True))


@pytest.mark.model
@pytest.mark.slow
def test_concurrent_requests_are_serialised(client):
    def ask(_: int) -> int:
        r = client.chat.completions.create(model=MODEL_ID, messages=CAPITAL, max_tokens=4, temperature=0)
        return r.usage.completion_tokens

    with ThreadPoolExecutor(max_workers=3) as pool:
        assert list(pool.map(ask, range(3))) == [4, 4, 4]


@pytest.mark.model
@pytest.mark.slow
def test_context_overflow_is_a_400(client):
    huge = [{"role": "user", "content": "word " * 9000}]
    with pytest.raises(openai.BadRequestError) as err:
        client.chat.completions.create(model=MODEL_ID, messages=huge, max_tokens=8)
    assert err.value.body["code"] == "context_length_exceeded"


@pytest.mark.model
@pytest.mark.slow
def test_llm_structured_through_the_embedded_backend(server):
    """The embedded backend behind the seam: json_schema first time (no fallback), real usage in the ledger,
    and a prompt beyond the context is a final error, not retried."""
    from agentlab.config import Settings
    from agentlab.endpoint import embedded_profile
    from agentlab.llm import LLM, Ledger, LLMError

    eff = embedded_profile(Settings(), server.base_url, server.api_key, server.model)
    llm = LLM(eff, Ledger(None))
    assert llm.backend.name == "embedded"
    out = llm.structured(CAPITAL, Step, phase="plan", max_tokens=48)
    assert isinstance(out, Step)
    rows = llm.ledger.entries()
    assert len(rows) == 1 and rows[0]["ok"] and rows[0]["model"] == MODEL_ID and rows[0]["prompt_tokens"] > 10
    assert list(llm.ladder.known().values()) == ["json_schema"]
    with pytest.raises(LLMError, match="too long.*embedded demonstration model has a small context"):
        llm.text([{"role": "user", "content": "word " * 9000}], phase="plan", max_tokens=8)
    assert len(llm.ledger.entries()) == 2


@pytest.mark.model
@pytest.mark.slow
def test_second_start_reuses_the_converted_model(server):
    """The module's server converted (or found) the ONNX model; a second server only loads it."""
    from agentlab.llm.embedded_convert import MARKER, cache_key, cache_root

    folder = cache_root() / cache_key(locate_gguf())
    marker = (folder / MARKER).stat().st_mtime_ns
    with EmbeddedServer(threads=1) as again:
        log = again.log_tail()
        assert f"from {folder} (cached)" in log and "to int4 ONNX in" not in log
        assert again.start_seconds < 60
    assert (folder / MARKER).stat().st_mtime_ns == marker


@pytest.mark.model
@pytest.mark.slow
def test_server_process_is_gone_after_exit(server):
    """Runs last among the model tests: it shuts the module's server down (stop() is idempotent)."""
    pid, port = server.pid, server.port
    assert pid is not None
    os.kill(pid, 0)  # alive
    server.__exit__(None, None, None)
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)
    with socket.socket() as s:
        assert s.connect_ex(("127.0.0.1", port)) != 0


def test_missing_gguf_is_a_clear_error(tmp_path, monkeypatch):
    missing = tmp_path / "nope.gguf"
    monkeypatch.setenv(GGUF_ENV, str(missing))
    with pytest.raises(EmbeddedModelMissing, match=GGUF_ENV):
        EmbeddedServer(threads=1).start()
    ok, found, fix = doctor_check()
    assert not ok and str(missing) in found and GGUF_ENV in fix


def test_not_a_gguf_is_refused_before_spawning(tmp_path, monkeypatch):
    junk = tmp_path / "junk.gguf"
    junk.write_bytes(b"version https://git-lfs.github.com/spec/v1\n")
    monkeypatch.setenv(GGUF_ENV, str(junk))
    with pytest.raises(EmbeddedModelMissing, match="not a GGUF file"):
        locate_gguf()
    assert doctor_check()[0] is False


@pytest.mark.slow
def test_server_crash_reports_its_output():
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen(1)
        srv = EmbeddedServer(port=busy.getsockname()[1], threads=1, start_timeout=120)
        with pytest.raises(EmbeddedServerError, match="exited with code") as err:
            srv.start()
    assert "Address already in use" in str(err.value)
    assert srv.proc is None


@pytest.mark.model
@pytest.mark.slow
def test_killed_conversion_leaves_no_cache(tmp_path):
    """kill -9 in the middle of a conversion: only a .tmp-* folder is left, never a cache that looks complete."""
    import signal
    import subprocess
    import sys
    import time

    from agentlab.llm.embedded_convert import CACHE_ENV, cache_key

    env = dict(os.environ, **{CACHE_ENV: str(tmp_path)})
    proc = subprocess.Popen([sys.executable, "-c", "from agentlab.llm.embedded import locate_gguf; "
                             "from agentlab.llm.embedded_convert import ensure_onnx; ensure_onnx(locate_gguf())"],
                            env=env, start_new_session=True)
    deadline = time.monotonic() + 60
    while not list(tmp_path.glob(".tmp-*")) and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.2)
    time.sleep(3)  # well inside the conversion (about a minute)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=10)
    assert [p.name for p in tmp_path.iterdir() if not p.name.startswith(".tmp-")] == []
    assert not (tmp_path / cache_key(locate_gguf())).exists()


@pytest.mark.slow
def test_failed_conversion_is_a_clear_error(tmp_path, monkeypatch):
    from agentlab.llm.embedded_convert import CACHE_ENV, ConversionError, ensure_onnx

    bad = tmp_path / "bad.gguf"
    bad.write_bytes(b"GGUF" + b"\0" * 64)
    monkeypatch.setenv(CACHE_ENV, str(tmp_path / "cache"))
    with pytest.raises(ConversionError, match="bad.gguf to int4 ONNX failed.*output ends with"):
        ensure_onnx(bad)
    assert list((tmp_path / "cache").iterdir()) == []  # the temporary folder is gone too


def test_doctor_check_when_installed():
    ok, found, fix = doctor_check()
    assert ok, fix
    assert Path(locate_gguf()).name in found and fix == ""


def test_notice_says_demonstration_not_researcher():
    text = notice_text()
    assert "SmolLM2-135M-Instruct" in text and "NOT a researcher" in text


def test_guidance_schema_only_tightens():
    """What the server hands to guidance: closed objects, non-empty bounded strings, 1..8 items, compact."""
    import re

    from agentlab.llm.embedded_server import NO_CONTROL, guidance_schema

    original = Plan.model_json_schema()
    g = guidance_schema("json_schema", original, max_new=90)
    assert original == Plan.model_json_schema()  # the caller's schema is not modified
    assert g["x-guidance"] == {"whitespace_flexible": False} and g["additionalProperties"] is False
    assert g["$defs"]["Step"]["additionalProperties"] is False
    title = g["properties"]["title"]
    assert title["minLength"] == 1 and title["maxLength"] == 4 * 18  # 90 tokens / (4 strings + 1)
    assert title["pattern"] == NO_CONTROL and re.fullmatch(NO_CONTROL[1:-1], "a\tb\n\\cite") and not re.fullmatch(
        NO_CONTROL[1:-1], "a\x1bzhurr") and not re.fullmatch(NO_CONTROL[1:-1], "\x7fff")  # escapes derail the model
    assert g["properties"]["steps"]["maxItems"] == 3 and g["properties"]["steps"]["minItems"] == 1
    assert "minLength" not in g["$defs"]["Kind"]  # enums are left alone
    own = {"type": "object", "properties": {"a": {"type": "array", "items": {"type": "string", "minLength": 0,
                                                                         "maxLength": 500}}},
           "additionalProperties": True, "x-guidance": {"whitespace_flexible": True}}
    g = guidance_schema("json_schema", own)
    assert g["additionalProperties"] is True and g["x-guidance"] == {"whitespace_flexible": True}
    assert g["properties"]["a"]["items"] == {"type": "string", "minLength": 0, "maxLength": 500, "pattern": NO_CONTROL}
    assert guidance_schema("json_object", None)["type"] == "object"
    enum_list = {"type": "array", "items": {"enum": ["a", "b"], "type": "string"}, "minItems": 1, "maxItems": 6}
    assert guidance_schema("json_schema", enum_list)["maxItems"] == 2  # more would repeat a value
