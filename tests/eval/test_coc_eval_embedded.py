"""`agentlab eval coc` smoke run against the embedded SmolLM2 server (a real, weak model).

Accuracy is not asserted (a 135M model mostly fails); the harness must run every method, count the
real calls and tokens per question, and write its JSON table."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from agentlab.cli import app

pytestmark = [pytest.mark.slow, pytest.mark.model]


def test_eval_coc_smoke_on_the_embedded_model(tmp_path):
    pytest.importorskip("torch")
    from agentlab.llm.embedded import EmbeddedServer, doctor_check

    ok, what, fix = doctor_check()
    if not ok:
        pytest.skip(f"embedded model unavailable: {what}; {fix}")
    out = tmp_path / "coc_eval.json"
    with EmbeddedServer(threads=2, max_new_tokens_cap=96) as srv:
        res = CliRunner().invoke(app, [
            "eval", "coc", "--base-url", srv.base_url, "--model", srv.model, "--api-key", srv.api_key,
            "--lengths", "8k", "--n", "1", "--kinds", "needle", "--methods", "coc,topk", "--depth", "1",
            "--branching", "1", "--context-budget", "1500", "--out", str(out)])
    assert res.exit_code == 0, res.output
    data = json.loads(out.read_text())
    text = json.dumps(data)
    assert "coc" in text and "topk" in text
    assert "calls_per_q" in text and "tokens_per_q" in text
