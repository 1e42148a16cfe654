"""Third-party plugins: a real distribution, installed with pip into a private target directory (the shared
venv is never touched), adds a KV method, a sandbox backend and a retriever through entry points alone.

A fresh interpreter with that directory on PYTHONPATH must see them everywhere AgentLab lists names: the
registries, the API doc the experiment prompt includes, `kv.compress`, `get_backend`, the workflow schema,
`agentlab doctor`'s plugin row and `agentlab sandbox check`.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

PYPROJECT = """
[build-system]
requires = ["setuptools"]
build-backend = "setuptools.build_meta"

[project]
name = "agentlab-test-plugin"
version = "0.1.0"
description = "a tiny AgentLab plugin for the test suite"

[project.entry-points."agentlab.kv_methods"]
random_press = "agentlab_test_plugin.press:random_press"

[project.entry-points."agentlab.sandbox_backends"]
fake-box = "agentlab_test_plugin.box:FakeBox"

[project.entry-points."agentlab.retrievers"]
reverse = "agentlab_test_plugin.rank:ReverseRetriever"

[tool.setuptools]
packages = ["agentlab_test_plugin"]
"""

PRESS = '''
"""A KV press from outside AgentLab: one scoring function, kvpress style."""

from __future__ import annotations

import torch

from agentlab.modules.kv import ScoreContext
from agentlab.modules.methods import kv_method


@kv_method("random_press")
def random_press(ctx: ScoreContext, seed: int = 0, sink: int = 2) -> torch.Tensor:
    """Random eviction (a baseline): seeded random scores per layer and KV head, ``sink`` first tokens kept.

    Args:
        budget: tokens kept per layer/head (fraction of T or count).
        seed: random seed (offset by the layer index).
        sink: first tokens always kept.
    Returns:
        ``(KVState, KVStats)``.
    Example:
        >>> from agentlab.modules import kv
        >>> state, st = kv.compress(model, ids, "random_press", budget=0.5, seed=3)
    """
    g = torch.Generator().manual_seed(seed + ctx.layer)
    s = torch.rand(ctx.keys.shape[:3], generator=g).to(ctx.keys.device)
    return ctx.protect(s, first=min(sink, ctx.budget))
'''

BOX = '''
"""A sandbox backend from outside AgentLab (it refuses to run anything: enough to show the wiring)."""

from agentlab.sandbox.base import Job, JobResult, Sandbox


class FakeBox(Sandbox):
    name = "fake-box"
    isolated = False

    @classmethod
    def check(cls):
        return True, "the fake box is always here"

    def _start_and_wait(self, job: Job) -> JobResult:
        return JobResult(job.id, self.name, None, "error", 0.0, "", "", detail="the fake box runs nothing")
'''

RANK = '''
"""A retriever from outside AgentLab: the last passage first."""


class ReverseRetriever:
    def __init__(self, texts):
        self.n = len(texts)

    def rank(self, query):
        return [(i, float(i)) for i in reversed(range(self.n))]
'''

CHECK = r'''
import json, sys
import torch
torch.set_num_threads(1)
from agentlab.modules import kv, apidoc
from agentlab.modules.methods import KV_METHODS
from agentlab.modules.models import tiny_llama
from agentlab.sandbox.base import SANDBOX_BACKENDS, backend_names, get_backend, available_backends
from agentlab.batch.workflow import SandboxSpec
from agentlab.retrieval.retriever import make_retriever, retriever_names
from agentlab.doctor import check_plugins

out = {"methods": kv.method_names(), "is_plugin": KV_METHODS.is_plugin("random_press")}
doc = apidoc.render_api_doc(("kv",))
out["doc_has_method"] = "`kv.random_press(model, input_ids, budget=0.25, seed: int=0, sink: int=2)`" in doc
out["doc_says_plugin"] = "plugin from agentlab-test-plugin 0.1.0" in doc
out["documented"] = [f.name for f in apidoc.public_functions() if f.module == "kv" and f.name == "random_press"]
model = tiny_llama(layers=2, hidden=64, heads=4, kv_heads=2, intermediate=96, vocab=96)
ids = torch.randint(3, 96, (1, 40), generator=torch.Generator().manual_seed(0))
state, st = kv.compress(model, ids[:, :32], "random_press", budget=0.5, seed=1)
out["stats"] = [st.method, st.tokens, st.kept_tokens, st.compression_ratio]
out["sinks_kept"] = all(idx[0, h, :2].tolist() == [0, 1] for idx in state.kept for h in range(idx.shape[1]))
ref = kv.mask_reference_perplexity(model, ids[:, :32], ids[:, 32:], state)
out["matches_reference"] = abs(kv.score_continuation(model, state, ids[:, 32:]) / ref - 1) < 1e-4
out["callable_by_name"] = kv.random_press(model, ids[:, :32], budget=8)[1].kept_tokens
out["backends"] = backend_names()
out["backend_class"] = type(get_backend("fake-box")).__name__
out["available"] = [n for n, ok, _ in available_backends() if n == "fake-box" and ok]
out["workflow_ok"] = SandboxSpec(backend="fake-box").backend
out["retrievers"] = retriever_names()
out["retrieved"] = make_retriever("reverse", ["a", "b", "c"]).rank("q")[0][0]
out["doctor"] = check_plugins().detail
print(json.dumps(out))
'''


def _install(tmp_path: Path) -> Path:
    src = tmp_path / "agentlab-test-plugin"
    pkg = src / "agentlab_test_plugin"
    pkg.mkdir(parents=True)
    (src / "pyproject.toml").write_text(PYPROJECT)
    (pkg / "__init__.py").write_text('"""A tiny AgentLab plugin."""\n')
    for name, text in (("press", PRESS), ("box", BOX), ("rank", RANK)):
        (pkg / f"{name}.py").write_text(textwrap.dedent(text))
    site = tmp_path / "site"
    cmd = [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation", "--no-index",
           "--no-compile", "--disable-pip-version-check", "--target", str(site), str(src)]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    assert list(site.glob("agentlab_test_plugin-0.1.0.dist-info/entry_points.txt"))
    return site


@pytest.fixture(scope="module")
def plugin_env(tmp_path_factory) -> dict[str, str]:
    pytest.importorskip("setuptools")
    site = _install(tmp_path_factory.mktemp("plugin"))
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(site), *filter(None, [os.environ.get("PYTHONPATH")])]),
               OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    return env


@pytest.mark.slow  # about 30 s: pip builds the distribution, the check imports torch and transformers
def test_a_plugin_distribution_adds_a_kv_method_a_sandbox_and_a_retriever(plugin_env):
    pytest.importorskip("torch")
    pytest.importorskip("transformers")
    done = subprocess.run([sys.executable, "-c", CHECK], capture_output=True, text=True, env=plugin_env, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    got = json.loads(done.stdout.strip().splitlines()[-1])
    assert "random_press" in got["methods"] and {"snapkv", "h2o", "quantize"} <= set(got["methods"])
    assert got["is_plugin"] and got["doc_has_method"] and got["doc_says_plugin"] and got["documented"]
    assert got["stats"] == ["random_press", 32, 16, 2.0] and got["sinks_kept"] and got["matches_reference"]
    assert got["callable_by_name"] == 8
    assert got["backends"][-1] == "fake-box" and {"bwrap", "docker", "unsafe-local", "ray"} <= set(got["backends"])
    assert got["backend_class"] == "FakeBox" and got["available"] == ["fake-box"] and got["workflow_ok"] == "fake-box"
    assert got["retrievers"] == ["bm25", "embedding", "reverse"] and got["retrieved"] == 2
    assert "kv_methods: random_press (agentlab-test-plugin 0.1.0)" in got["doctor"]
    assert "sandbox_backends: fake-box (agentlab-test-plugin 0.1.0)" in got["doctor"]


def test_agentlab_sandbox_check_lists_the_plugin_backend(plugin_env):
    done = subprocess.run([sys.executable, "-m", "agentlab.cli", "sandbox", "check"], capture_output=True,
                          text=True, env=dict(plugin_env, COLUMNS="200"), timeout=300)
    assert "fake-box" in done.stdout and "the fake box is always here" in done.stdout, done.stdout + done.stderr


def test_without_the_plugin_nothing_changes():
    from agentlab.modules.methods import KV_METHODS
    from agentlab.sandbox.base import backend_names

    assert "random_press" not in KV_METHODS and "fake-box" not in backend_names()
