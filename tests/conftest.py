"""Shared fixtures: the scripted OpenAI-compatible server and the fake arXiv API, both on 127.0.0.1."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from tests.fakes.arxiv_server import FakeArxiv  # noqa: E402
from tests.fakes.openai_server import ScriptedLLM  # noqa: E402
from tests.fakes.procs import _stop_group, _wait_port, free_port  # noqa: E402

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
        "AGENTLAB_EXPERIMENT_MODEL": "tiny-llama",  # the harness on a random tiny Llama: seconds per node
    }
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    monkeypatch.chdir(tmp_path)
    return env


@pytest.fixture(scope="session")
def ray_cluster():
    """A real Ray head on 127.0.0.1 with 2 CPUs (two workers can run at once); yields its address."""
    pytest.importorskip("ray", reason="ray not installed: pip install 'agentlab[ray]'")
    ray_bin = Path(sys.executable).parent / "ray"
    if not ray_bin.exists():
        pytest.skip(f"the `ray` command is not in {Path(sys.executable).parent}")
    port = free_port()
    tmp = tempfile.mkdtemp(prefix="rt", dir="/tmp")  # short: Ray's unix socket paths must stay < 108 chars
    env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0", "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    log = open(Path(tmp) / "ray-start.log", "w")
    proc = subprocess.Popen(
        [str(ray_bin), "start", "--head", "--block", "--node-ip-address", "127.0.0.1", "--port", str(port),
         "--num-cpus", "2", "--num-gpus", "0", "--memory", str(4 * 2**30), "--object-store-memory", str(200 * 2**20),
         "--include-dashboard=false", "--disable-usage-stats", "--temp-dir", tmp,
         "--min-worker-port", "0", "--max-worker-port", "0"],
        stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True)
    try:
        _wait_port(port, proc, "ray head")
        time.sleep(1.0)
        yield f"127.0.0.1:{port}"
    finally:
        try:
            import ray

            if ray.is_initialized():
                ray.shutdown()
        except Exception:
            pass
        _stop_group(proc, grace=10.0)
        log.close()
        shutil.rmtree(tmp, ignore_errors=True)
