"""Shared fixtures: the scripted OpenAI-compatible server and the fake arXiv API, both on 127.0.0.1."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from tests.fakes.arxiv_server import FakeArxiv  # noqa: E402
from tests.fakes.openai_server import ScriptedLLM  # noqa: E402

os.environ.setdefault("LANGGRAPH_STRICT_MSGPACK", "true")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


@pytest.fixture(autouse=True)
def _one_thread():
    try:
        import torch
    except ImportError:
        yield
        return
    torch.set_num_threads(1)
    yield


@pytest.fixture
def llm_server():
    with ScriptedLLM() as srv:
        yield srv


@pytest.fixture
def arxiv_server():
    with FakeArxiv() as fa:
        yield fa


@pytest.fixture
def agent_env(tmp_path, monkeypatch, llm_server, arxiv_server):
    """Environment for a CLI run against the fakes; returns the env dict (also applied to this process)."""
    for var in ("OPENAI_API_KEY", "OPENAI_BASE_URL", "AGENTLAB_CONFIG"):
        monkeypatch.delenv(var, raising=False)
    env = {
        "OPENAI_BASE_URL": llm_server.base_url,
        "OPENAI_API_KEY": "sk-test-not-secret",
        "AGENTLAB_MODEL": "scripted-model",
        "AGENTLAB_ARXIV_URL": arxiv_server.url,
        "AGENTLAB_ARXIV_DELAY": "0",
        "AGENTLAB_RUNS_DIR": str(tmp_path / "runs"),
        "AGENTLAB_BACKOFF_BASE": "0.01",
        "AGENTLAB_CACHE_DIR": str(tmp_path / "cache"),
    }
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    monkeypatch.chdir(tmp_path)
    return env
