"""`agentlab eval coc` through Typer's CliRunner against a scripted clarifier served over real HTTP
(replies computed from each prompt). This is the CI run of the harness."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from agentlab.eval.cli import eval_app
from agentlab.eval.qa import f1, load_qa
from agentlab.eval.synthetic import KINDS, make_item, make_set
from tests.literature.fixture_paths import QA, QASPER_DEV, need
from tests.retrieval.scripted_coc import install


@pytest.fixture
def cli_env(tmp_path, monkeypatch, llm_server):
    for var in ("OPENAI_API_KEY", "OPENAI_BASE_URL", "AGENTLAB_CONFIG", "AGENTLAB_MODEL"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.chdir(tmp_path)
    install(llm_server)
    return llm_server, tmp_path


def _run(srv, out: Path, *extra: str):
    args = ["coc", "--base-url", srv.base_url, "--model", "scripted-model", "--api-key", "sk-test", "--out", str(out),
            *extra]
    return CliRunner().invoke(eval_app, args, catch_exceptions=False)


def test_eval_coc_synthetic_and_qasper(cli_env):
    srv, tmp = cli_env
    out = tmp / "res" / "coc.json"
    res = _run(srv, out, "--lengths", "8k,32k", "--n", "1", "--qa-file", str(need(QASPER_DEV)),
               "--context-budget", "3000")
    assert res.exit_code == 0, res.output
    assert "method" in res.output and "coc_no_pointback" in res.output and "truncated" in res.output
    data = json.loads(out.read_text())
    summary = {(s["dataset"], s["method"]): s for s in data["summary"]}
    coc = summary[("synthetic", "coc")]
    assert coc["n"] == 6 and coc["accuracy"] == 1.0 and coc["recall"] == 1.0 and coc["precision"] == 1.0
    assert coc["calls_per_q"] > summary[("synthetic", "topk")]["calls_per_q"] == 1.0
    assert summary[("synthetic", "truncated")]["accuracy"] < 1.0  # needles beyond the first 3k tokens are missed
    assert summary[("synthetic", "coc")]["max_prompt_tokens"] <= 3000 + 1000
    assert ("qa:qasper-dev-v0.1", "coc") in summary and summary[("qa:qasper-dev-v0.1", "coc")]["n"] >= 1
    rows = data["rows"]
    assert {r["method"] for r in rows} == {"coc", "coc_no_clarify", "coc_no_pointback", "topk", "truncated"}
    assert all(r["calls"] >= 1 and r["tokens"] > 0 for r in rows)
    assert data["config"]["depth"] == 2 and data["by_kind_length"]


def test_eval_rejects_bad_options(cli_env):
    srv, tmp = cli_env
    res = CliRunner().invoke(eval_app, ["coc", "--base-url", srv.base_url, "--model", "scripted-model",
                                        "--methods", "coc,magic"])
    assert res.exit_code != 0 and "magic" in res.output


def test_synthetic_set_is_seeded_and_gold_chunks_hold_the_facts():
    a = make_set([8000], 1, seed=7)
    b = make_set([8000], 1, seed=7)
    assert [i.to_dict() for i in a] == [i.to_dict() for i in b]
    assert {i.kind for i in a} == set(KINDS)
    for item in a:
        assert 8000 <= item.length and item.gold_chunks
        assert len(item.gold_chunks) == (2 if item.kind == "twohop" else 1)
    item = make_item("multikey", 8000, 1)
    animal = item.question.split()[-1].rstrip("?")
    assert item.text.count(f"{animal} is ") == 5  # the key plus four near-duplicate distractors


def test_real_qa_loaders():
    leval = load_qa(need(QA / "leval_scientific_qa.jsonl"), 2)
    assert len(leval) >= 10 and all(i.text and i.question and i.answer for i in leval)
    qasper = load_qa(need(QASPER_DEV), 4)
    assert qasper and qasper[0].id.startswith("qasper-1912.01214")
    assert f1("the cat sat", "a cat sat down") > 0.5 and f1("", "x") == 0.0


@pytest.mark.slow
def test_eval_coc_128k_and_leval(cli_env):
    srv, tmp = cli_env
    out = tmp / "coc128.json"
    res = _run(srv, out, "--lengths", "128k", "--n", "1", "--qa-file", str(need(QA / "leval_scientific_qa.jsonl")),
               "--methods", "coc,topk,truncated")
    assert res.exit_code == 0, res.output
    data = json.loads(out.read_text())
    coc = next(s for s in data["summary"] if s["dataset"] == "synthetic" and s["method"] == "coc")
    assert coc["accuracy"] == 1.0 and coc["max_prompt_tokens"] <= 6000 + 1000
