"""Budgets through the real CLI: a hard token limit, resuming with a bigger one, and prices for --max-cost."""

from __future__ import annotations

import json

import pytest

from tests.fakes.scripts import PLAN, full_run
from tests.spine_helpers import cli, ledger_rows, only_run, status

IDEA = "Does keeping 4 sink tokens plus a recent window keep perplexity within 5% at 4x KV compression?"
# the smallest staged experiment, and replies short enough that the fake's replies fit max_output_tokens
LEAN = ('[agentlab]\ndrafts = 1\nseeds = 1\nharness_items = 1\nmax_output_tokens = 1500\n\n'
        '[agentlab.stage_budgets.implement]\nnodes = 1\n')
NO_PRICE = "no price for model 'scripted-model' (used by every phase)"


@pytest.fixture
def lean_env(agent_env, llm_server, tmp_path):
    cfg = tmp_path / "lean.toml"
    cfg.write_text(LEAN)
    full_run(llm_server, Plan={**PLAN, "ablations": []})
    return {**agent_env, "AGENTLAB_CONFIG": str(cfg)}


@pytest.mark.slow
def test_a_token_limit_is_never_crossed_and_resume_with_a_bigger_one_continues(lean_env, llm_server):
    limit = 9000
    out = cli(["run", IDEA, "--headless", "--on-checkpoint", "approve", "--max-papers", "2",
               "--max-tokens", str(limit)], lean_env)
    text = out.stdout + out.stderr
    assert out.returncode == 3, text
    assert NO_PRICE in text  # warned at the start: its calls count as $0
    run = only_run(lean_env)
    rows = ledger_rows(run)
    sent = [r for r in llm_server.requests if r["status"] == 200]
    assert len(sent) >= 3 and len(sent) == len([r for r in rows if r["ok"]])  # calls went out, each in the ledger
    used = sum(r["prompt_tokens"] + r["completion_tokens"] for r in rows)
    assert used == sum(llm_server.usage_totals()) <= limit  # no request took the run past the limit
    st = status(lean_env, run)
    waiting = st["waiting"]
    assert waiting["kind"] == "budget"
    ex = waiting["exceeded"]
    assert (ex["which"], ex["setting"], ex["flag"], ex["used"], ex["limit"]) == ("tokens", "max_tokens",
                                                                                "--max-tokens", used, limit)
    assert used + ex["estimate"] > limit and ex["suggested"] >= max(2 * limit, used + ex["estimate"])
    assert f"tokens budget exhausted: used {used} of {limit}, and the next call could use up to " \
           f"{ex['estimate']}" in " ".join(out.stdout.split())
    assert f"agentlab resume {run.name} --max-tokens {ex['suggested']}" in " ".join(out.stdout.split())

    before = len(llm_server.requests)
    out = cli(["resume", run.name, "--headless", "--on-checkpoint", "approve", "--max-tokens", "10000000"], lean_env)
    assert out.returncode == 0, out.stdout + out.stderr
    assert NO_PRICE in out.stdout + out.stderr  # warned again at the resume
    assert len(llm_server.requests) > before and status(lean_env, run)["status"] == "done"


def test_max_cost_needs_a_price_for_every_model_and_is_refused_before_any_call(lean_env, llm_server, tmp_path):
    out = cli(["run", IDEA, "--headless", "--max-papers", "2", "--max-cost", "1"], lean_env)
    assert out.returncode == 2, out.stdout + out.stderr
    err = " ".join(out.stderr.split())
    assert "--max-cost 1 cannot be enforced: no price for model 'scripted-model'" in err
    assert "--set prices='{\"scripted-model\": [IN, OUT]}'" in err and "agentlab.prices table" in err
    assert llm_server.requests == []

    priced = tmp_path / "priced.toml"  # a price from agentlab.toml: the limit can be enforced now
    priced.write_text(LEAN + '\n[agentlab.prices]\n"scripted-model" = [0.5, 1.0]\n')
    env = {**lean_env, "AGENTLAB_RUNS_DIR": str(tmp_path / "priced-runs"), "AGENTLAB_CONFIG": str(priced)}
    out = cli(["run", IDEA, "--headless", "--max-papers", "2", "--max-cost", "0.000001"], env)
    text = " ".join((out.stdout + out.stderr).split())
    assert out.returncode == 3, text  # a budget stop, not a refusal: the first call could cost more than that
    assert "cost budget exhausted: used 0 USD of 0.000001 USD" in text and "no price" not in text
    assert llm_server.requests == []
    run = only_run(env)
    assert status(env, run)["waiting"]["exceeded"]["which"] == "cost"

    # a model without a price, chosen at the resume, is refused the same way; nothing is sent
    out = cli(["resume", run.name, "--headless", "--model", "unpriced-model", "--max-cost", "5"], env)
    assert out.returncode == 2, out.stdout + out.stderr
    assert "no price for model 'unpriced-model'" in " ".join(out.stderr.split())
    assert llm_server.requests == []
    assert json.loads((run / "meta.json").read_text())["status"] != "running"
