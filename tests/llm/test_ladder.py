"""The structured-output ladder and the three error classes, against real server behaviours (scripted
server, real openai SDK): json_schema -> json_object -> prompt, remembered per (endpoint, model)."""

from __future__ import annotations

import pytest
from pydantic import BaseModel

from agentlab.config import Settings
from agentlab.endpoint import embedded_profile
from agentlab.llm import LLM, Ledger, LLMError
from tests.fakes.openai_server import Reply, ScriptedLLM


class Finding(BaseModel):
    claim: str
    value: float


MSG = [{"role": "user", "content": "report the finding"}]
GOOD = {"claim": "ppl rises", "value": 1.5}


def make(srv: ScriptedLLM, **kw) -> LLM:
    kw.setdefault("model", "scripted-model")
    return LLM(Settings(base_url=kw.pop("base_url", srv.base_url), backoff_base=0.01, **kw), Ledger(None))


def formats(srv: ScriptedLLM) -> list[str | None]:
    return [(r["response_format"] or {}).get("type") for r in srv.requests]


def test_llama_cpp_500_on_json_schema_falls_back_to_json_object_and_is_remembered():
    with ScriptedLLM(structured="llama_cpp") as srv:
        srv.on("Finding", GOOD)
        llm = make(srv)
        assert llm.structured(MSG, Finding, phase="plan") == Finding(**GOOD)
        assert [r["status"] for r in srv.requests] == [500, 200]
        assert formats(srv) == ["json_schema", "json_object"]
        assert "validate against this JSON schema" in srv.requests[1]["messages"][-1]["content"]
        assert set(srv.requests[1]["response_format"]["schema"]["properties"]) == {"claim", "value"}  # llama.cpp's form
        rows = llm.ledger.entries()
        assert [r["ok"] for r in rows] == [False, True] and "capability missing (json_schema)" in rows[0]["error"]
        # the second call goes straight to the mode that worked: no second 500, no retry of the 500
        llm.structured(MSG, Finding, phase="plan")
        assert formats(srv) == ["json_schema", "json_object", "json_object"]
        assert list(llm.ladder.known().values()) == ["json_object"]


def test_400_naming_response_format_falls_back_and_is_remembered():
    with ScriptedLLM(structured="reject_400") as srv:
        srv.on("Finding", GOOD)
        llm = make(srv)
        llm.structured(MSG, Finding, phase="plan")
        llm.structured(MSG, Finding, phase="plan")
        assert [r["status"] for r in srv.requests] == [400, 200, 200]
        assert formats(srv) == ["json_schema", "json_object", "json_object"]


def test_endpoint_that_ignores_response_format_ends_in_prompt_mode():
    with ScriptedLLM(structured="ignore") as srv:
        srv.on("text", "The finding is that perplexity rises a bit.")  # what a model that never saw the schema says
        srv.on("Finding", GOOD)
        llm = make(srv)
        assert llm.structured(MSG, Finding, phase="plan") == Finding(**GOOD)
        assert formats(srv) == ["json_schema", None]  # prose -> re-asked with the schema, in prompt mode
        assert "could not be used" in srv.requests[1]["messages"][-1]["content"]
        llm.structured(MSG, Finding, phase="plan")
        assert formats(srv) == ["json_schema", None, None]  # the next call starts in prompt mode
        assert "validate against this JSON schema" in srv.requests[2]["messages"][-1]["content"]
        assert len(srv.requests) == 3


def test_the_ladder_is_per_endpoint_and_model():
    with ScriptedLLM(structured="llama_cpp", models=("scripted-model", "big-model")) as srv, \
            ScriptedLLM() as native:
        srv.on("Finding", GOOD)
        native.on("Finding", GOOD)
        llm = make(srv, models={"review": "big-model"})
        llm.structured(MSG, Finding, phase="plan")
        llm.structured(MSG, Finding, phase="review")  # another model on the same endpoint: probed afresh
        llm.structured(MSG, Finding, phase="plan")
        assert [(r["model"], (r["response_format"] or {}).get("type")) for r in srv.requests] == [
            ("scripted-model", "json_schema"), ("scripted-model", "json_object"),
            ("big-model", "json_schema"), ("big-model", "json_object"), ("scripted-model", "json_object")]
        other = make(native)  # another endpoint keeps using json_schema
        other.structured(MSG, Finding, phase="plan")
        assert formats(native) == ["json_schema"]


def test_structured_mode_prompt_skips_the_native_modes(llm_server):
    llm_server.on("Finding", GOOD)
    make(llm_server, structured_mode="prompt").structured(MSG, Finding, phase="plan")
    assert formats(llm_server) == [None]


def test_429_and_503_are_retried_without_falling_back(llm_server):
    llm_server.on("Finding", Reply(status=429), Reply(status=503), GOOD)
    llm = make(llm_server)
    assert llm.structured(MSG, Finding, phase="plan") == Finding(**GOOD)
    assert formats(llm_server) == ["json_schema"] * 3  # a plain 5xx is transient, not a missing capability
    rows = llm.ledger.entries()
    assert [r["ok"] for r in rows] == [False, False, True]
    assert rows[0]["error"].startswith("transient:") and "429" in rows[0]["error"]


def test_transient_errors_give_up_after_max_retries(llm_server):
    llm_server.on("text", Reply(status=503))
    with pytest.raises(LLMError, match=r"HTTP 503.*gave up after 2 retries"):
        make(llm_server, max_retries=2).text(MSG, phase="plan")
    assert len(llm_server.requests) == 3


def test_401_is_final_with_a_clear_message():
    with ScriptedLLM(api_key="sk-right") as srv:
        srv.on("Finding", GOOD)
        llm = make(srv, api_key="sk-wrong")
        with pytest.raises(LLMError, match=r"rejected the API key \(HTTP 401\): set OPENAI_API_KEY"):
            llm.structured(MSG, Finding, phase="plan")
        assert [r["status"] for r in srv.requests] == [401]  # neither retried nor taken for a capability
        assert llm.ledger.entries()[0]["error"].startswith("final:")
        assert make(srv, api_key="sk-right").structured(MSG, Finding, phase="plan").value == 1.5


def test_context_too_long_is_final(llm_server):
    llm_server.on("text", Reply(status=400, error="This model's maximum context length is 8192 tokens."))
    with pytest.raises(LLMError, match="too long for model 'scripted-model'"):
        make(llm_server).text(MSG, phase="plan")
    assert len(llm_server.requests) == 1


def test_embedded_prefix_selects_the_embedded_backend(llm_server):
    eff = embedded_profile(Settings(), llm_server.base_url, "k", "scripted-model")
    assert eff.base_url == f"embedded+{llm_server.base_url}"
    llm_server.on("Finding", GOOD)
    llm = LLM(eff)
    assert llm.backend.name == "embedded" and llm.backend.endpoint == llm_server.base_url
    assert llm.structured(MSG, Finding, phase="plan") == Finding(**GOOD)
    assert formats(llm_server) == ["json_schema"]
    ok, detail = llm.check_endpoint()
    assert ok and detail.startswith("embedded demonstration model")


def test_unknown_backend_prefix_lists_the_backends(llm_server):
    with pytest.raises(LLMError, match=r"unknown LLM backend 'nope'.*openai, embedded"):
        make(llm_server, base_url=f"nope+{llm_server.base_url}")
