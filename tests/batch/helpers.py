"""Shared bits for the batch end-to-end tests: workflow files, sandbox choice, scripted replies, slow
experiments. Workflows run the smallest staged experiment (one draft, one seed, one item; with `scripted`,
a plan without ablations): these tests are about the batch, not the experiment."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from agentlab.runs import RunDir, list_runs
from agentlab.sandbox import SandboxUnavailable, get_backend
from tests.fakes.openai_server import ScriptedLLM
from tests.fakes.scripts import METHOD, PLAN, fenced, full_run

ROOT = Path(__file__).resolve().parents[2]


def sandbox_name() -> str:
    """bwrap where it works; otherwise (knowingly, for scripted test code only) unsafe-local."""
    try:
        get_backend("bwrap")
        return "bwrap"
    except (SandboxUnavailable, ImportError):
        return "unsafe-local"


def workflow(d: Path, name: str, idea: str, checkpoints: str = "none", extra: str = "") -> Path:
    d.mkdir(parents=True, exist_ok=True)
    p = d / f"{name}.yaml"
    p.write_text(f'name: {name}\nidea: "{idea}"\ncheckpoints: {checkpoints}\non_checkpoint: park\n'
                 f"sandbox: {{backend: {sandbox_name()}, memory_mb: 1024, timeout_s: 120, max_attempts: 1}}\n"
                 f"literature: {{max_papers: 2}}\n{LEAN_SETTINGS}{extra}")
    return p


LEAN_SETTINGS = "settings: {drafts: 1, seeds: 1, harness_items: 1}\n"
LEAN_PLAN = {**PLAN, "ablations": []}


def scripted(srv: ScriptedLLM, **overrides) -> ScriptedLLM:
    """`full_run` with a plan that names no ablations (the ablations stage is skipped)."""
    return full_run(srv, **{"Plan": LEAN_PLAN, **overrides})


def slow_experiment(seconds: float) -> str:
    """A method.py reply that sleeps when the harness imports it in the sandbox: gives a test time to kill an
    orchestrator mid-node (every node that runs the method sleeps)."""
    return fenced({"method.py": f"import time\ntime.sleep({seconds})\n" + METHOD})


def runs_by_workflow(runs_dir: Path) -> dict[str, list[RunDir]]:
    out: dict[str, list[RunDir]] = {}
    for r in list_runs(runs_dir):
        out.setdefault(r.meta().get("workflow", "?"), []).append(r)
    return out


def start_orchestrator(args: list[str], log: Path) -> subprocess.Popen:
    """`agentlab batch ...` in its own process (session), as a second machine would run it."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.Popen([sys.executable, "-m", "agentlab.cli", "batch", *args], stdout=log.open("w"),
                            stderr=subprocess.STDOUT, env=env, start_new_session=True, cwd=os.getcwd())


def kill(proc: subprocess.Popen) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.wait(timeout=30)


def wait_until(pred, timeout: float, what: str, proc: subprocess.Popen | None = None, log: Path | None = None):
    end = time.time() + timeout
    while time.time() < end:
        v = pred()
        if v:
            return v
        if proc is not None and proc.poll() is not None:
            raise AssertionError(f"orchestrator exited ({proc.returncode}) before {what}:\n"
                                 f"{log.read_text() if log else ''}")
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}:\n{log.read_text() if log else ''}")


def in_experiment(runs_dir: Path, names: list[str]) -> bool:
    """Every named workflow's run is inside a (sleeping) node of its experiment that runs method.py."""
    by = runs_by_workflow(runs_dir)
    for n in names:
        runs = by.get(n)
        if not runs:
            return False
        m = runs[-1].meta()
        if m.get("status") != "running" or m.get("phase") != "experiment":
            return False
        if not list((runs[-1].repo_dir / "experiments").glob("p*/*/method.py")):
            return False
    return True


def meta(run: RunDir) -> dict:
    return json.loads(run.meta_path.read_text())
