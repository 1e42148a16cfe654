"""`agentlab doctor`'s exit code: 1 when a run could not start (no usable endpoint, or the configured one does
not answer or serve the model), 0 when it can (a served endpoint, or none configured and the embedded model)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.timeout(300)


def doctor(tmp_path: Path, **env: str) -> subprocess.CompletedProcess:
    full = {k: v for k, v in os.environ.items() if k not in ("OPENAI_BASE_URL", "OPENAI_API_KEY", "AGENTLAB_MODEL",
                                                             "AGENTLAB_CONFIG", "AGENTLAB_EMBEDDED_GGUF")}
    # the sandbox row is required too: unsafe-local is usable everywhere, so only the endpoint decides here
    full.update({"AGENTLAB_SANDBOX": "unsafe-local", "PYTHONPATH": str(ROOT), "COLUMNS": "200", **env})
    return subprocess.run([sys.executable, "-m", "agentlab.cli", "doctor"], capture_output=True, text=True,
                          env=full, cwd=tmp_path, stdin=subprocess.DEVNULL, timeout=240)  # fmt: skip


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_a_configured_endpoint_that_does_not_answer_fails(tmp_path):
    url = f"http://127.0.0.1:{closed_port()}/v1"
    r = doctor(tmp_path, OPENAI_BASE_URL=url, OPENAI_API_KEY="none")
    assert r.returncode == 1, r.stdout + r.stderr
    assert "not ready: LLM endpoint" in r.stdout and url in r.stdout and "Traceback" not in r.stderr, r.stdout


def test_a_served_endpoint_passes_and_an_unserved_model_fails(tmp_path, llm_server):
    r = doctor(tmp_path, OPENAI_BASE_URL=llm_server.base_url, OPENAI_API_KEY="k", AGENTLAB_MODEL="scripted-model")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "ready: runs can start here" in r.stdout
    r = doctor(tmp_path, OPENAI_BASE_URL=llm_server.base_url, OPENAI_API_KEY="k", AGENTLAB_MODEL="not-served")
    assert r.returncode == 1 and "not ready: LLM endpoint" in r.stdout, r.stdout + r.stderr
    assert "--model" in r.stdout


def test_no_endpoint_and_no_embedded_model_fails_with_how_to_configure_one(tmp_path):
    r = doctor(tmp_path, AGENTLAB_EMBEDDED_GGUF=str(tmp_path / "no-such.gguf"))
    assert r.returncode == 1, r.stdout + r.stderr
    assert "OPENAI_BASE_URL" in r.stdout and "not ready: LLM endpoint" in r.stdout, r.stdout


def test_no_endpoint_is_fine_when_the_embedded_model_will_be_used(tmp_path):
    from agentlab.endpoint import embedded_available

    ok, why = embedded_available()
    if not ok:
        pytest.skip(f"the embedded model is not installed here: {why}")
    r = doctor(tmp_path)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "embedded" in r.stdout and "OPENAI_BASE_URL" in r.stdout, r.stdout
