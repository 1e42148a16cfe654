"""Budgets are hard limits: a call that could pass one is not made (the scripted server, real openai SDK)."""

from __future__ import annotations

import io
import json
import threading

import pytest
from pydantic import BaseModel
from rich.console import Console

from agentlab.config import ConfigError, Settings
from agentlab.llm import LLM, Budget, BudgetExceeded, Ledger
from agentlab.llm.budget import Estimate, check_prices, estimate_tokens, prompt_tokens, suggest_limit
from agentlab.llm.ledger import LedgerEntry
from agentlab.progress import Progress
from tests.fakes.openai_server import Reply, count_tokens


class Finding(BaseModel):
    claim: str
    value: float


MSG = [{"role": "system", "content": "You report findings as JSON."},
       {"role": "user", "content": "report the finding about perplexity at 4x compression"}]


def make(srv, tmp_path, budget: Budget, **kw) -> LLM:
    s = Settings(base_url=srv.base_url, model="scripted-model", backoff_base=0.01, **kw)
    return LLM(s, Ledger(tmp_path / "ledger.jsonl"), budget, memo_dir=tmp_path / "memo")


def test_no_call_is_made_that_could_pass_the_token_limit(llm_server, tmp_path):
    llm_server.on("text", "one two three four five six seven eight nine ten")
    llm_server.on("Finding", {"claim": "ppl rises by a little", "value": 1.5})
    llm = make(llm_server, tmp_path, Budget(max_tokens=400), max_output_tokens=60)
    with pytest.raises(BudgetExceeded) as stop:
        for i in range(50):
            if i % 2:
                llm.structured(MSG, Finding, phase="plan")
            else:
                llm.text(MSG, phase="plan")
    sent = [r for r in llm_server.requests if r["status"] == 200]
    rows = llm.ledger.entries()
    assert 2 <= len(sent) == len(rows) < 50  # some calls went out, then one was refused before its request
    used = llm.ledger.totals()["tokens"]
    assert used == sum(llm_server.usage_totals()) <= 400
    p = stop.value.payload
    assert (p["which"], p["setting"], p["flag"], p["used"], p["limit"]) == ("tokens", "max_tokens", "--max-tokens",
                                                                           used, 400)
    assert used + p["estimate"] > 400 and p["estimate"] >= 60
    assert p["suggested"] >= max(800, used + p["estimate"]) and isinstance(p["suggested"], int)
    msg = str(stop.value)
    assert f"used {used} of 400" in msg and f"up to {p['estimate']}" in msg
    assert f"not made. Raise it with `agentlab resume {tmp_path.name} --max-tokens {p['suggested']}`" in msg


def test_the_estimate_is_at_least_what_a_call_used(llm_server, tmp_path):
    llm_server.on("Finding", {"claim": "c", "value": 2})
    llm = make(llm_server, tmp_path, Budget(), max_output_tokens=40)
    llm.structured(MSG, Finding, phase="plan")
    req = llm_server.requests[-1]
    schema = req["response_format"]["json_schema"]["schema"]
    assert prompt_tokens(req["messages"], schema) >= req["prompt_tokens"]
    for text in ('{"a": [1, 2, {"b": "c"}]}', "def f(x):\n    return x[0] + 1", "plain words in a sentence"):
        assert estimate_tokens(text) >= count_tokens(text) and estimate_tokens(text) >= len(text) / 4


def test_a_memoised_call_is_not_refused_when_the_budget_is_spent(llm_server, tmp_path):
    llm_server.on("Finding", {"claim": "c", "value": 3})
    first = make(llm_server, tmp_path, Budget())
    assert first.structured(MSG, Finding, phase="plan", memo_key="plan/v1/f").value == 3
    spent = make(llm_server, tmp_path, Budget(max_tokens=first.ledger.totals()["tokens"]))
    assert spent.structured(MSG, Finding, phase="plan", memo_key="plan/v1/f").value == 3  # already paid
    with pytest.raises(BudgetExceeded, match="tokens budget exhausted"):
        spent.structured(MSG, Finding, phase="plan", memo_key="plan/v1/g")
    assert len(llm_server.requests) == 1


def test_cost_is_checked_with_the_estimate_times_the_price(llm_server, tmp_path):
    llm_server.on("text", "a b c d e")
    prices = {"scripted-model": [1000.0, 2000.0]}  # USD per 1M tokens: a tenth of a cent per prompt token
    llm = make(llm_server, tmp_path, Budget(max_cost=0.1), max_output_tokens=20, prices=prices)
    est = llm.estimate(llm._request(MSG, "plan", None))
    assert est.cost == pytest.approx((est.prompt * 1000 + 20 * 2000) / 1e6)
    with pytest.raises(BudgetExceeded) as stop:
        for _ in range(20):
            llm.text(MSG, phase="plan")
    cost = llm.ledger.totals()["cost"]
    assert cost <= 0.1 and len(llm_server.requests) < 20
    p = stop.value.payload
    assert p["which"] == "cost" and p["used"] + p["estimate"] > 0.1 and p["suggested"] >= 0.2
    assert "--max-cost" in str(stop.value) and "USD" in str(stop.value)


def test_minutes_count_the_models_recent_latency(llm_server, tmp_path):
    llm_server.on("text", Reply(content="slow answer", delay=0.5))
    # 0.9 s left: the first call (no latency known yet) goes; the second would need another 0.5 s
    llm = make(llm_server, tmp_path, Budget(max_minutes=1.0, minutes_before=0.985))
    llm.text(MSG, phase="plan")
    with pytest.raises(BudgetExceeded) as stop:
        llm.text(MSG, phase="plan")
    assert len(llm_server.requests) == 1
    p = stop.value.payload
    assert p["which"] == "minutes" and p["estimate"] >= 0.008 and p["used"] + p["estimate"] > 1.0
    assert "--max-minutes 2" in str(stop.value)


def test_calls_in_flight_hold_their_estimate(llm_server, tmp_path):
    llm_server.on("text", Reply(content="x y z", delay=0.6))
    llm = make(llm_server, tmp_path, Budget(max_tokens=100), max_output_tokens=50)  # room for one call, not two
    errors: list[Exception] = []

    def call() -> None:
        try:
            llm.text(MSG, phase="plan")
        except BudgetExceeded as exc:
            errors.append(exc)

    threads = [threading.Thread(target=call) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert len(llm_server.requests) == 1 and len(errors) == 1
    assert llm.budget._held == [0, 0.0]  # released after the call


def test_suggested_limits_are_round_and_leave_room():
    assert suggest_limit("tokens", 13391, 3000, 0) == 21000
    assert suggest_limit("tokens", 0, 3000, 4696) == 7100
    assert suggest_limit("cost", 1.99, 2.0, 0.05) == 4.0
    assert suggest_limit("minutes", 59.9, 60, 0.5) == 120


def test_check_prices_warns_refuses_max_cost_and_knows_the_free_embedded_model():
    url = "http://127.0.0.1:9/v1"
    (w,) = check_prices(Settings(base_url=url, model="my-model"))
    assert "'my-model' (used by every phase)" in w and "--set prices='{\"my-model\": [IN, OUT]}'" in w and "agentlab.prices" in w
    (w,) = check_prices(Settings(base_url=url, model="gpt-4o-mini", models={"plan": "my-model"}))
    assert "'my-model' (used by plan)" in w and "gpt-4o-mini" not in w.split("no price for model")[1].split(":")[0]
    assert check_prices(Settings(base_url=url, model="gpt-4.1-mini")) == []
    with pytest.raises(ConfigError, match=r"--max-cost 2 cannot be enforced: no price for model 'my-model'"):
        check_prices(Settings(base_url=url, model="my-model", max_cost=2.0))
    assert check_prices(Settings(base_url=url, model="my-model", max_cost=2.0, prices={"my-model": [0, 0]})) == []
    assert check_prices(Settings(base_url=None, model="my-model", max_cost=2.0)) == []  # the embedded model
    assert check_prices(Settings(base_url="embedded+http://127.0.0.1:5/v1", model="smollm2", max_cost=2.0)) == []
    with pytest.raises(ConfigError, match=r"prices: 'my-model' must be \[input, output\]"):
        check_prices(Settings(base_url=url, model="my-model", prices={"my-model": 5}))


def test_progress_shows_used_over_limit_for_the_limits_set():
    out = io.StringIO()
    con = Console(file=out, width=160, force_terminal=False)
    prog = Progress(con, Ledger(None), live=False, budget=Budget(max_tokens=3000, max_cost=2.0))
    prog.on_llm(LedgerEntry(phase="plan", model="m", prompt_tokens=1000, completion_tokens=234, cost=0.0123,
                            latency_s=0.1, ok=True))
    assert prog.budget_line() == "budget: tokens 1,234 / 3,000 · cost $0.0123 / $2.0000"
    prog.on_phase("plan", "started")
    prog.on_phase("plan", "done")
    assert "budget: tokens 1,234 / 3,000" in out.getvalue()
    assert Progress(con, Ledger(None), live=False, budget=Budget()).budget_line() == ""
    live_out = io.StringIO()
    with Progress(Console(file=live_out, width=160), Ledger(None), live=True, budget=Budget(max_minutes=60)):
        pass
    assert "budget: minutes 0.0 / 60.0" in live_out.getvalue()


def test_ledger_reads_appends_incrementally_and_survives_a_torn_line(tmp_path):
    path = tmp_path / "ledger.jsonl"
    reader, writer = Ledger(path), Ledger(path)
    row = dict(phase="plan", model="m", prompt_tokens=3, completion_tokens=4, cost=0.0, latency_s=0.2, ok=True)
    writer.append(LedgerEntry(**row))
    assert reader.totals()["tokens"] == 7
    with path.open("a") as f:
        f.write(json.dumps({**row, "prompt_tokens": 100})[:30])  # a process killed mid-line
    assert reader.totals()["tokens"] == 7
    writer.append(LedgerEntry(**{**row, "latency_s": 0.7}))
    assert reader.totals()["tokens"] == 14 and reader.totals()["calls"] == 2
    assert reader.latency("m") == 0.7 and reader.latency("other") == 0.0
    assert Estimate(prompt=5, reply=7).tokens == 12
