"""Issue 7: with no endpoint configured, a whole run on the embedded SmolLM2 model.

The weak model must not break the pipeline: the run ends either finished with a compiled report or
at a clear, resumable stop at a checkpoint; the ledger records the real calls the embedded server
answered (model name, real token counts)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.spine_helpers import cli, ledger_rows, only_run, status

pytestmark = [pytest.mark.slow, pytest.mark.model]
PDFS = Path(__file__).parent / "fixtures" / "pdfs"


@pytest.mark.timeout(1800)
def test_whole_run_on_the_embedded_model(agent_env, arxiv_server):
    pytest.importorskip("onnxruntime_genai")
    from agentlab.llm.embedded import doctor_check

    ok, what, fix = doctor_check()
    if not ok:
        pytest.skip(f"embedded model unavailable: {what}; {fix}")
    # one paper with real full text (a 4-page arXiv PDF), the others fall back to their abstracts
    arxiv_server.pdfs["2202.12139v1"] = PDFS / "2304.02623v1.pdf"
    env = {k: v for k, v in agent_env.items() if k not in ("OPENAI_BASE_URL", "OPENAI_API_KEY", "AGENTLAB_MODEL")}
    env["OPENAI_BASE_URL"] = ""
    env["OPENAI_API_KEY"] = ""
    env["AGENTLAB_EMBEDDED_THREADS"] = "1"  # tests pin one thread (the server's default is one per core)
    out = cli(["run", "Does sink+window KV eviction keep perplexity within 5% at 4x compression on a small Llama?",
               "--headless", "--on-checkpoint", "approve", "--max-papers", "1", "--max-attempts", "1",
               "--max-minutes", "25"], env, timeout=2400)
    text = out.stdout + out.stderr
    assert "embedded demonstration model" in text and "NOT a researcher" in text
    run = only_run(agent_env)
    st = status(agent_env, run)
    if st["status"] == "done":
        assert out.returncode == 0, text
        pdf = run / "repo" / st["report"]
        assert pdf.read_bytes()[:4] == b"%PDF"
    else:  # a clear stop at a checkpoint, resumable
        assert out.returncode == 3, text
        assert st["status"] == "stopped" and st["waiting"]["message"], st
        assert f"agentlab resume {run.name[:15]}" in text
    # the spec path: even this model yields measured baselines (structured output with enums of registered names)
    import json

    from agentlab.config import settings_from_run
    from agentlab.runner import pending_interrupt
    from agentlab.runs import RunDir

    rd = RunDir(run)
    _, values = pending_interrupt(rd, settings_from_run(rd.settings_path))
    base = values["experiment"]["stages"]["baselines"]
    assert base["status"] == "ok", base
    cells = json.loads((rd.repo_dir / base["results_path"]).read_text())["cells"]
    assert len(cells) >= 2 and all(c["status"] == "ok" for c in cells)
    impl = values["experiment"]["stages"].get("implement") or {}
    assert impl.get("status") == "ok" and values["experiment"]["proposal"]["method"], impl  # a measured proposal
    rows = [r for r in ledger_rows(run) if r["ok"]]
    assert rows and all(r["model"] == "smollm2-135m-instruct" for r in rows)
    assert sum(r["prompt_tokens"] for r in rows) > 500 and all(r["completion_tokens"] > 0 for r in rows)
    assert "literature_review" in {r["phase"] for r in rows}
