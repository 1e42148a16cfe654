"""The LLM layer against the scripted server, through the real openai SDK."""

from __future__ import annotations

import pytest
from pydantic import BaseModel, Field

from agentlab.config import Settings
from agentlab.llm import LLM, Budget, BudgetExceeded, Ledger, LLMError
from tests.fakes.openai_server import Reply, ScriptedLLM


class Finding(BaseModel):
    claim: str
    value: float
    tags: list[str] = Field(default_factory=list)


def make(srv: ScriptedLLM, tmp_path=None, **kw) -> LLM:
    s = Settings(base_url=srv.base_url, model="scripted-model", backoff_base=0.01, **kw)
    return LLM(s, Ledger(tmp_path / "ledger.jsonl" if tmp_path else None), memo_dir=tmp_path / "memo" if tmp_path else None)


MSG = [{"role": "user", "content": "report the finding"}]


def test_structured_uses_json_schema_when_supported(llm_server):
    llm_server.on("Finding", {"claim": "ppl rises", "value": 1.5})
    out = make(llm_server).structured(MSG, Finding, phase="plan")
    assert out == Finding(claim="ppl rises", value=1.5)
    req = llm_server.requests[0]
    assert req["response_format"]["type"] == "json_schema"
    assert req["response_format"]["json_schema"]["schema"]["title"] == "Finding"


def test_falls_back_to_prompt_json_when_endpoint_rejects_json_schema():
    with ScriptedLLM(json_schema_supported=False) as srv:
        srv.on("Finding", 'Sure! ```json\n{"claim": "c", "value": 2}\n```')
        llm = make(srv)
        assert llm.structured(MSG, Finding, phase="plan").value == 2
        assert [r["status"] for r in srv.requests] == [400, 200]
        assert "validate against this JSON schema" in srv.requests[1]["messages"][-1]["content"]
        # the endpoint's answer is remembered: the next call goes straight to prompt mode
        llm.structured(MSG, Finding, phase="plan")
        assert [r["status"] for r in srv.requests] == [400, 200, 200]


def test_invalid_json_and_schema_violations_are_repaired_by_reasking(llm_server):
    llm_server.on("Finding", "I think the answer is good", {"claim": "c", "value": "not a number"},
                  {"claim": "c", "value": 3.0})
    out = make(llm_server).structured(MSG, Finding, phase="plan")
    assert out.value == 3.0
    assert len(llm_server.requests) == 3
    last_prompt = llm_server.requests[2]["messages"][-1]["content"]
    assert "value" in last_prompt and "could not be used" in last_prompt


def test_broken_json_is_repaired_without_reasking(llm_server):
    llm_server.on("Finding", '{"claim": "c", "value": 4, "tags": ["a", "b"')  # unterminated
    assert make(llm_server).structured(MSG, Finding, phase="plan").tags == ["a", "b"]
    assert len(llm_server.requests) == 1


def test_truncated_output_is_reasked_and_bounded(llm_server):
    llm_server.on("Finding", Reply(content='{"claim": "a very long', finish_reason="length"))
    llm = make(llm_server, max_repairs=2)
    with pytest.raises(LLMError, match="did not match Finding after 3 tries.*cut off"):
        llm.structured(MSG, Finding, phase="plan")
    assert len(llm_server.requests) == 3


def test_a_cut_off_reply_that_still_validates_is_used_only_on_the_last_try(llm_server):
    llm_server.on("Finding", Reply(content='{"value": 2, "claim": "ppl rises at eight', finish_reason="length"))
    llm = make(llm_server, max_repairs=2)
    got = llm.structured(MSG, Finding, phase="plan")
    assert got.value == 2 and got.claim.startswith("ppl rises") and len(llm_server.requests) == 3


def test_retries_with_backoff_on_429_and_5xx(llm_server, tmp_path):
    llm_server.on("text", Reply(status=429), Reply(status=503), "hello")
    llm = make(llm_server, tmp_path)
    assert llm.text(MSG, phase="interpret") == "hello"
    rows = llm.ledger.entries()
    assert [r["ok"] for r in rows] == [False, False, True]
    assert "429" in rows[0]["error"] or "RateLimit" in rows[0]["error"]


def test_unknown_model_names_url_and_model(llm_server):
    s = Settings(base_url=llm_server.base_url, model="gpt-9-imaginary", backoff_base=0.01)
    with pytest.raises(LLMError) as ei:
        LLM(s).text(MSG, phase="plan")
    assert "gpt-9-imaginary" in str(ei.value) and llm_server.base_url in str(ei.value)
    ok, detail = LLM(s).check_endpoint()
    assert not ok and "scripted-model" in detail


def test_unreachable_endpoint_is_a_clear_error():
    s = Settings(base_url="http://127.0.0.1:9/v1", model="m", backoff_base=0.01, max_retries=1)
    with pytest.raises(LLMError, match=r"cannot reach the LLM endpoint http://127.0.0.1:9/v1"):
        LLM(s).text(MSG, phase="plan")


def test_no_endpoint_configured_says_which_variable():
    with pytest.raises(LLMError, match="OPENAI_BASE_URL"):
        LLM(Settings(base_url=None))


def test_ledger_matches_server_usage_and_prices(llm_server, tmp_path):
    llm_server.models = ("gpt-4o-mini",)
    llm_server.on("text", "one two three")
    s = Settings(base_url=llm_server.base_url, model="gpt-4o-mini", backoff_base=0.01)
    llm = LLM(s, Ledger(tmp_path / "l.jsonl"))
    llm.text(MSG, phase="plan")
    llm.text(MSG, phase="review")
    t = llm.ledger.totals()
    pt, ct = llm_server.usage_totals()
    assert (t["prompt_tokens"], t["completion_tokens"]) == (pt, ct)
    assert t["cost"] == pytest.approx((pt * 0.15 + ct * 0.6) / 1e6, rel=1e-3)
    assert set(llm.ledger.by_phase()) == {"plan", "review"}


def test_token_budget_stops_before_the_next_call(llm_server, tmp_path):
    llm_server.on("text", "a b c d e f g h")
    s = Settings(base_url=llm_server.base_url, model="scripted-model", backoff_base=0.01)
    llm = LLM(s, Ledger(tmp_path / "l.jsonl"), Budget(max_tokens=25))  # a call may use ~9 prompt + 10 reply
    llm.text(MSG, phase="plan", max_tokens=10)
    with pytest.raises(BudgetExceeded, match="tokens budget exhausted.*--max-tokens"):
        llm.text(MSG, phase="plan", max_tokens=10)
    assert len(llm_server.requests) == 1


def test_memo_key_makes_a_rerun_free(llm_server, tmp_path):
    llm_server.on("Finding", {"claim": "c", "value": 1})
    a = make(llm_server, tmp_path).structured(MSG, Finding, phase="plan", memo_key="plan/v1/x")
    b = make(llm_server, tmp_path).structured(MSG, Finding, phase="plan", memo_key="plan/v1/x")
    assert a == b and len(llm_server.requests) == 1
