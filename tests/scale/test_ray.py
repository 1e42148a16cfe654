"""The Ray sandbox backend against a real `ray start --head` cluster on 127.0.0.1."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from agentlab.sandbox import Job, Limits, SandboxUnavailable, get_backend
from tests.batch.helpers import sandbox_name as worker_isolation

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def ray_env(ray_cluster, monkeypatch):
    monkeypatch.setenv("AGENTLAB_RAY_ADDRESS", ray_cluster)
    monkeypatch.setenv("AGENTLAB_RAY_SANDBOX", worker_isolation())
    return ray_cluster


def _job(tmp: Path, name: str, code: str, **limits) -> Job:
    wd = tmp / name
    wd.mkdir(parents=True)
    (wd / "main.py").write_text(textwrap.dedent(code))
    (wd / "data").mkdir()
    (wd / "data" / "input.txt").write_text("21\n")
    lim = {"wall_seconds": 60, "memory_mb": 256, **limits}
    return Job(id=f"t{os.getpid()}-{name}-{time.time_ns()}", workdir=str(wd), command=["python", "main.py"],
               limits=Limits(**lim))


WORK = """
import json, os, time
t0 = time.time()
n = int(open("data/input.txt").read())
time.sleep(float(os.environ.get("SLEEP", "0")))
json.dump({"metrics": {"answer": n * 2}, "details": {"pid": os.getpid(), "t0": t0}}, open("results.json", "w"))
os.makedirs("out", exist_ok=True)
open("out/log.txt", "w").write("made on the worker\\n")
print("answer", n * 2)
"""


def test_registered_and_checked(ray_env):
    sb = get_backend("ray")
    assert sb.name == "ray"
    ok, why = type(sb).check()
    assert ok, why


def test_unreachable_address_is_explained(monkeypatch):
    pytest.importorskip("ray")
    monkeypatch.setenv("AGENTLAB_RAY_ADDRESS", "127.0.0.1:1")
    with pytest.raises(SandboxUnavailable, match="not reachable"):
        get_backend("ray")
    monkeypatch.delenv("AGENTLAB_RAY_ADDRESS")
    with pytest.raises(SandboxUnavailable, match="AGENTLAB_RAY_ADDRESS"):
        get_backend("ray")


def test_job_runs_on_a_worker_and_files_come_back(ray_env, tmp_path):
    job = _job(tmp_path, "one", WORK)
    res = get_backend("ray").run(job)
    assert res.ok, (res.reason, res.stderr_tail, res.detail)
    assert res.backend == "ray" and "ray node" in res.detail
    wd = Path(job.workdir)
    assert json.loads((wd / "results.json").read_text())["metrics"]["answer"] == 42
    assert (wd / "out" / "log.txt").read_text() == "made on the worker\n"
    assert "answer 42" in (wd / ".job" / "stdout.log").read_text()
    # the saved result is reused: running the same job id again does not start it again
    before = (wd / "results.json").read_text()
    again = get_backend("ray").run(job)
    assert again.to_dict() == res.to_dict() and (wd / "results.json").read_text() == before


def test_failures_and_limits_are_reported(ray_env, tmp_path):
    bad = _job(tmp_path, "bad", "import sys\nprint('boom', file=sys.stderr)\nsys.exit(3)\n")
    res = get_backend("ray").run(bad)
    assert not res.ok and res.exit_code == 3 and "boom" in res.stderr_tail
    slow = _job(tmp_path, "slow", "import time\ntime.sleep(30)\n", wall_seconds=1.5)
    res = get_backend("ray").run(slow)
    assert res.reason == "timeout"


def test_two_jobs_run_at_once_in_two_worker_processes(ray_env, tmp_path):
    jobs = [_job(tmp_path, f"par{i}", WORK) for i in range(2)]
    sb = get_backend("ray")
    with ThreadPoolExecutor(2) as pool:
        results = list(pool.map(sb.run, jobs))
    assert all(r.ok for r in results), [(r.reason, r.detail, r.stderr_tail) for r in results]
    worker_pids = {r.detail.split(" pid ")[1].split()[0] for r in results}
    assert len(worker_pids) == 2, [r.detail for r in results]


def test_reattach_after_the_orchestrator_dies(ray_env, tmp_path):
    """An orchestrator starts a 6 s job and is SIGKILLed; a new one collects the same job's result."""
    job = _job(tmp_path, "reattach", WORK)
    job = Job(id=job.id, workdir=job.workdir, command=job.command, limits=job.limits, env={"SLEEP": "6"})
    starter = textwrap.dedent(f"""
        import sys; sys.path.insert(0, {str(ROOT)!r})
        from agentlab.sandbox import Job, Limits, get_backend
        get_backend("ray").run(Job(id={job.id!r}, workdir={job.workdir!r}, command=["python", "main.py"],
                                   limits=Limits(wall_seconds=60, memory_mb=256), env={{"SLEEP": "6"}}))
    """)
    proc = subprocess.Popen([sys.executable, "-c", starter], env=os.environ.copy(), start_new_session=True)
    import ray

    from agentlab.sandbox.ray_backend import NAMESPACE, RaySandbox, actor_name

    RaySandbox()._connect()
    deadline = time.time() + 60
    while True:  # wait until the job's actor exists and has started
        try:
            actor = ray.get_actor(actor_name(job.id), namespace=NAMESPACE)
            if ray.get(actor.started.remote()):
                break
        except ValueError:
            pass
        assert time.time() < deadline, "the first orchestrator never started the job"
        assert proc.poll() is None, "the first orchestrator exited early"
        time.sleep(0.2)
    time.sleep(1.5)  # the job's process is running on the worker now
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    killed_at = time.time()
    res = get_backend("ray").run(job)
    assert res.ok, (res.reason, res.stderr_tail, res.detail)
    started = json.loads((Path(job.workdir) / "results.json").read_text())["details"]["t0"]
    assert started < killed_at, "the job was started again instead of reattached"
    with pytest.raises(ValueError):  # the actor is cleaned up once its result is collected
        ray.get_actor(actor_name(job.id), namespace=NAMESPACE)


def test_batch_runs_its_experiment_nodes_on_ray(ray_env, agent_env, llm_server, tmp_path):
    """A whole `agentlab batch` run whose workflow says `sandbox: ray`: every experiment node (the harness, with
    the LLM's method.py as its plugin) runs on the cluster."""
    from typer.testing import CliRunner

    from agentlab.cli import app
    from tests.batch.helpers import LEAN_SETTINGS, meta, runs_by_workflow, scripted

    scripted(llm_server)
    wf = tmp_path / "wf"
    wf.mkdir()
    (wf / "on-ray.yaml").write_text(
        'idea: "Does sink plus window KV eviction keep error low at 4x?"\ncheckpoints: none\n'
        "sandbox: {backend: ray, memory_mb: 2048, timeout_s: 300, max_attempts: 1}\nliterature: {max_papers: 2}\n"
        + LEAN_SETTINGS)
    r = CliRunner().invoke(app, ["batch", str(wf)], catch_exceptions=False)
    run = runs_by_workflow(Path(agent_env["AGENTLAB_RUNS_DIR"]))["on-ray"][0]
    assert r.exit_code == 0 and meta(run)["status"] == "done", r.output
    p1 = run.repo_dir / "experiments" / "p1"
    assert sorted(d.name for d in p1.iterdir()) == ["baselines-1", "implement-1", "seeds-1", "sweep-1"]
    for node in p1.iterdir():
        saved = json.loads((node / ".job" / "result.json").read_text())
        assert saved["backend"] == "ray" and saved["detail"].startswith("ray node") and saved["exit_code"] == 0, node
    res = json.loads((p1 / "implement-1" / "results.json").read_text())  # written on the worker, brought back
    assert res["schema"] == "agentlab.harness/1" and (p1 / "implement-1" / "method.py").exists()
    prop = next(c for c in res["cells"] if c["method"] == "proposed")
    assert prop["status"] == "ok" and prop["values"]["ppl"]["mean"] > 0
