"""A built wheel is a working tool: prompts/ and templates/ ship inside it and are found from any cwd."""

from __future__ import annotations

import glob
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.timeout(600)

PROBE = """
import agentlab, agentlab.paths as p
from agentlab.prompts import render_messages, render_text
from agentlab.report.latex import template_names
assert p.prompts_dir().is_relative_to(p.PACKAGE_DIR), p.prompts_dir()
assert p.templates_dir().is_relative_to(p.PACKAGE_DIR), p.templates_dir()
print(agentlab.__file__)
print(len(render_text("json_instruction", schema="{}")))
print(",".join(template_names()))
"""


def test_a_wheel_carries_prompts_and_templates(tmp_path):
    wheels = tmp_path / "wheels"
    b = subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "-w",
                        str(wheels), str(ROOT)], capture_output=True, text=True, cwd=tmp_path)  # fmt: skip
    assert b.returncode == 0, b.stderr[-2000:]
    (whl,) = glob.glob(str(wheels / "agentlab-*.whl"))
    site = tmp_path / "site"
    i = subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(site), whl],
                       capture_output=True, text=True)  # fmt: skip
    assert i.returncode == 0, i.stderr[-2000:]
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = {**os.environ, "PYTHONPATH": str(site)}
    env.pop("AGENTLAB_PROMPTS_DIR", None)
    env.pop("AGENTLAB_TEMPLATES_DIR", None)
    r = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, cwd=elsewhere, env=env)
    assert r.returncode == 0, r.stderr[-3000:]
    where, n, templates = r.stdout.strip().splitlines()
    assert where.startswith(str(site)), where  # the installed copy, not the checkout
    assert int(n) > 0 and "conference" in templates.split(","), r.stdout
