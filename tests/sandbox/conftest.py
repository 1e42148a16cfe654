"""Fixtures for the sandbox suite: one `backend` fixture parametrized over every isolated backend."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest

from agentlab.sandbox import Job, JobResult, Limits
from agentlab.sandbox.base import SANDBOX_BACKENDS

#: every registered backend that isolates its jobs (built-ins and installed plugins, so a third-party sandbox
#: gets the whole escape suite), except "ray": it delegates to a worker-side backend, and the suites that
#: want it add it with its cluster fixture
ISOLATED = [name for name, cls in SANDBOX_BACKENDS.items() if cls.isolated and name != "ray"]


def make_backend(request, name: str):
    """An instance of backend `name`, or a skip with the backend's own reason and fix. "ray" runs its jobs on
    the session's real Ray head (tests/conftest.py), isolated there by bwrap."""
    if name == "ray":
        addr = request.getfixturevalue("ray_cluster")
        mp = request.getfixturevalue("monkeypatch")
        mp.setenv("AGENTLAB_RAY_ADDRESS", addr)
        mp.setenv("AGENTLAB_RAY_SANDBOX", "bwrap")
    cls = SANDBOX_BACKENDS.get(name)
    ok, why = cls.check()
    if not ok:
        pytest.skip(f"{name} unavailable here: {why}")
    return cls()


@pytest.fixture(params=ISOLATED)
def backend(request):
    """An instance of each isolated backend; skipped (with the backend's own reason and fix) where unusable."""
    return make_backend(request, request.param)


class JobRunner:
    """Writes a script into a fresh work dir, runs it as an experiment attempt would, reads results.json."""

    def __init__(self, backend, root: Path):
        self.backend, self.root, self.n = backend, root, 0

    def __call__(self, script: str, *, limits: Limits | None = None, args: list[str] | None = None,
                 job_id: str | None = None) -> tuple[JobResult, dict | None, Path]:  # fmt: skip
        self.n += 1
        workdir = self.root / f"work{self.n}"
        workdir.mkdir()
        (workdir / "main.py").write_text(textwrap.dedent(script))
        job = Job(
            id=job_id or f"test-{self.backend.name}-{workdir.parent.name}-{self.n}",
            workdir=str(workdir),
            command=["python", "main.py", *(args or [])],
            limits=limits or Limits(wall_seconds=60, memory_mb=512, max_processes=64),
            labels={"run": "pytest", "node": "escape", "attempt": str(self.n)},
        )
        result = self.backend.run(job)
        res = workdir / "results.json"
        return result, (json.loads(res.read_text()) if res.exists() else None), workdir


@pytest.fixture
def run_job(backend, tmp_path) -> JobRunner:
    return JobRunner(backend, tmp_path)
