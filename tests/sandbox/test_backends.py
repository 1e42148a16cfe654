"""Normal operation of the sandbox backends: results, resume without re-running, docker reattach, CLI."""

from __future__ import annotations

import json
import time
import uuid

import pytest
from typer.testing import CliRunner

from agentlab.sandbox import Job, Limits, get_backend
from agentlab.sandbox.base import _REGISTRY, load_result

pytestmark = pytest.mark.timeout(300)

COUNTER = """
import json
open("runs.txt", "a").write("ran\\n")
json.dump({"metrics": {"acc": 0.5}}, open("results.json", "w"))
"""


def test_normal_job_imports_stack_and_writes_results(run_job):
    script = """
    import json, os
    import torch, transformers
    from agentlab.modules import metrics
    x = torch.ones(3) * 2
    json.dump({"sum": float(x.sum()), "cwd": os.getcwd(), "uid": os.getuid(), "torch": torch.__version__},
              open("results.json", "w"))
    print("done")
    """
    result, out, workdir = run_job(script, limits=Limits(wall_seconds=180, memory_mb=2048))
    assert result.ok, result
    assert out["sum"] == 6.0 and out["uid"] != 0
    assert "done" in result.stdout_tail
    assert load_result(workdir) == result  # saved next to the job for resume


def test_finished_job_is_not_rerun(backend, tmp_path):
    wd = tmp_path / "w"
    wd.mkdir()
    (wd / "main.py").write_text(COUNTER)
    job = Job(id=f"resume-{uuid.uuid4().hex[:8]}", workdir=str(wd), command=["python", "main.py"],
              limits=Limits(wall_seconds=60, memory_mb=512))  # fmt: skip
    first = backend.run(job)
    second = type(backend)().run(job)  # a fresh backend object, as after an orchestrator restart
    assert first.ok and second == first
    assert (wd / "runs.txt").read_text() == "ran\n"  # the script ran exactly once


def test_get_backend_auto_picks_an_isolated_backend():
    ok = [n for n in ("bwrap", "docker") if _REGISTRY[n]().check()[0]]
    if not ok:
        pytest.skip("no isolated backend usable here")
    assert get_backend("auto").isolated


def test_unsafe_local_warns_every_run(tmp_path):
    sb = get_backend("unsafe-local")
    assert not sb.isolated
    for i in range(2):
        wd = tmp_path / f"u{i}"
        wd.mkdir()
        (wd / "main.py").write_text(COUNTER)
        with pytest.warns(RuntimeWarning, match="WITHOUT a sandbox"):
            assert sb.run(Job(id=f"u-{i}", workdir=str(wd), command=["python", "main.py"])).ok


@pytest.mark.parametrize("script,reason,code", [
    ("import json; json.dump({'a': 1}, open('results.json', 'w')); print('hello')", "finished", 0),
    ("import time; time.sleep(30)", "timeout", 1),
])  # fmt: skip
def test_cli_sandbox_run(tmp_path, monkeypatch, script, reason, code):
    from agentlab.sandbox.cli import sandbox_app

    monkeypatch.chdir(tmp_path)
    f = tmp_path / "exp.py"
    f.write_text(script)
    r = CliRunner().invoke(sandbox_app, ["run", str(f), "--backend", "bwrap" if _REGISTRY["bwrap"]().check()[0]
                                         else "unsafe-local", "--timeout", "3", "--memory", "512"])  # fmt: skip
    assert f"reason: {reason}" in r.output, r.output
    assert r.exit_code == code, r.output
    if reason == "finished":
        assert "hello" in r.output and '"a": 1' in r.output


def test_cli_sandbox_check_lists_backends():
    from agentlab.sandbox.cli import sandbox_app

    r = CliRunner().invoke(sandbox_app, ["check"])
    for name in ("bwrap", "docker", "unsafe-local"):
        assert name in r.output


@pytest.fixture
def docker_cls():
    """The docker backend class, or a skip that says why docker cannot run here."""
    cls = _REGISTRY["docker"]()
    ok, why = cls.check()
    if not ok:
        pytest.skip(f"docker unavailable here: {why}")
    return cls


@pytest.mark.slow
def test_docker_reattaches_instead_of_duplicating(tmp_path, docker_cls):
    cls = docker_cls
    from agentlab.sandbox.docker import LABEL

    wd = tmp_path / "w"
    wd.mkdir()
    (wd / "main.py").write_text("import time, json\nopen('runs.txt', 'a').write('ran\\n')\ntime.sleep(3)\n"
                                "json.dump({'ok': 1}, open('results.json', 'w'))\n")  # fmt: skip
    job = Job(id=f"reattach-{uuid.uuid4().hex[:8]}", workdir=str(wd), command=["python", "main.py"],
              limits=Limits(wall_seconds=120, memory_mb=512), labels={"run": "r", "node": "experiment", "attempt": "1"})
    since = int(time.time()) - 1
    first = cls()
    container = first.create(job)  # the orchestrator starts the job ...
    cid = container.id
    del first, container  # ... and dies before waiting for it
    result = cls().run(job)  # a resumed orchestrator runs the same job id
    assert result.ok, result
    assert "reattached" in result.detail and cid[:12] in result.detail
    assert json.loads((wd / "results.json").read_text()) == {"ok": 1}
    assert (wd / "runs.txt").read_text() == "ran\n"
    client = cls().client
    events = client.events(since=since, until=int(time.time()) + 1, decode=True,
                           filters={"label": f"{LABEL}.job-id={job.id}", "type": "container", "event": "create"})
    assert [e["id"] for e in events] == [cid]  # exactly one container with this job's labels ever existed
    assert client.containers.list(all=True, filters={"label": f"{LABEL}.job-id={job.id}"}) == []  # cleaned up


@pytest.mark.slow
def test_docker_container_enforces_its_deadline_without_a_watcher(tmp_path, docker_cls):
    cls = docker_cls
    wd = tmp_path / "w"
    wd.mkdir()
    (wd / "main.py").write_text("import time\ntime.sleep(600)\n")
    job = Job(id=f"orphan-{uuid.uuid4().hex[:8]}", workdir=str(wd), command=["python", "main.py"],
              limits=Limits(wall_seconds=1, memory_mb=256))  # fmt: skip
    container = cls().create(job)  # started, and nobody watches it
    container.wait(timeout=120)  # returns because the in-container supervisor stops the job by itself
    result = cls().run(job)  # a resumed run collects the outcome
    assert result.reason == "timeout" and "wall-clock limit" in result.detail, result
