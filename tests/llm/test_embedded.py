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
def tokenizer():
    from transformers import AutoTokenizer

    from agentlab.llm.embedded_server import cache_dir

    gguf = locate_gguf()
    cached = cache_dir(gguf)
    if cached is not None and (cached / "tokenizer.json").is_file():
        return AutoTokenizer.from_pretrained(str(cached))
    return AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)


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
    assert 1 <= len(plan.steps) <= 3
    assert set(json.loads(resp.choices[0].message.content)) == set(schema["properties"])


@pytest.mark.model
@pytest.mark.slow
def test_sdk_parse_and_budget_exhaustion(client):
    parsed = client.chat.completions.parse(
        model=MODEL_ID, messages=[{"role": "user", "content": "Plan a pruning study."}], response_format=Plan,
        max_tokens=120, temperature=0)
    assert isinstance(parsed.choices[0].message.parsed, Plan)
    # a budget far too small still yields schema-valid JSON, flagged as truncated
    tiny = client.chat.completions.create(
        model=MODEL_ID, messages=CAPITAL, max_tokens=3, temperature=0,
        response_format={"type": "json_schema", "json_schema": {"name": "p", "schema": Plan.model_json_schema()}})
    Plan.model_validate_json(tiny.choices[0].message.content)
    assert tiny.choices[0].finish_reason == "length"


@pytest.mark.model
@pytest.mark.slow
def test_json_object_mode(client):
    resp = client.chat.completions.create(
        model=MODEL_ID, messages=[{"role": "user", "content": "Describe Paris as a JSON object."}],
        max_tokens=60, temperature=0, response_format={"type": "json_object"})
    assert isinstance(json.loads(resp.choices[0].message.content), dict)


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


@pytest.mark.model
@pytest.mark.slow
def test_stream_is_one_chunk_with_usage(client):
    chunks = list(client.chat.completions.create(model=MODEL_ID, messages=CAPITAL, max_tokens=16, temperature=0,
                                                 stream=True, stream_options={"include_usage": True}))
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert "Paris" in text
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens >= 1


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


def test_doctor_check_when_installed():
    ok, found, fix = doctor_check()
    assert ok, fix
    assert Path(locate_gguf()).name in found and fix == ""


def test_notice_says_demonstration_not_researcher():
    text = notice_text()
    assert "SmolLM2-135M-Instruct" in text and "NOT a researcher" in text
