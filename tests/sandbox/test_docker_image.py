"""The docker backend with an offline image built from a venv under /tmp (a checkout in /tmp): the image must
not depend on a path the sandbox hides, and docker's own failures read as a cause and a fix, never a traceback.

Builds a small image (a stdlib-only venv, about 15 s) with sandbox/build-offline-image.sh; skipped, with the
reason, where docker cannot run (CI starts it with sandbox/ci-setup-docker.sh)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import uuid
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.timeout(300)

JOB = 'import json, sys\nprint("prefix", sys.prefix)\njson.dump({"ok": 1}, open("results.json", "w"))\n'


def _docker_or_skip() -> None:
    if not shutil.which("docker"):
        pytest.skip("docker unavailable here: no docker CLI (CI: sudo bash sandbox/ci-setup-docker.sh)")
    try:
        import docker

        docker.from_env(timeout=10).ping()
    except Exception as exc:  # noqa: BLE001 - any failure: no daemon here
        pytest.skip(f"docker unavailable here: no daemon answers ({type(exc).__name__}); "
                    "CI: sudo bash sandbox/ci-setup-docker.sh")


def _docker(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["docker", *args], capture_output=True, text=True, timeout=120)


@pytest.fixture(scope="module")
def tmp_venv_image():
    """An image built by build-offline-image.sh from a venv under /tmp; removed afterwards."""
    _docker_or_skip()
    base = sys.base_prefix
    if base.startswith(("/tmp/", "/job/")):
        pytest.skip(f"this python ({base}) itself lives under /tmp: the image cannot be built from it")
    work = Path(tempfile.mkdtemp(prefix="agentlab-tmpvenv-", dir="/tmp"))
    tag = f"agentlab-sandbox:pytest-tmpvenv-{uuid.uuid4().hex[:8]}"
    made: list[str] = []
    try:
        venv = work / "checkout" / ".venv"
        subprocess.run([os.path.join(base, "bin", "python3"), "-m", "venv", "--without-pip", str(venv)], check=True,
                       timeout=120)  # fmt: skip
        b = subprocess.run(["bash", str(ROOT / "sandbox" / "build-offline-image.sh"), tag], capture_output=True,
                           text=True, timeout=240, env={**os.environ, "PYTHON": str(venv / "bin" / "python")})
        assert b.returncode == 0, b.stdout[-2000:] + b.stderr[-2000:]
        made.append(tag)
        assert "in /opt/agentlab-venv" in b.stdout, b.stdout  # checked with a private /tmp, as the sandbox runs it
        yield tag, made
    finally:
        for t in made:
            _docker("rmi", "-f", t)
        shutil.rmtree(work, ignore_errors=True)


def _derived(tag: str, made: list[str], path: str) -> str:
    """`tag` with another PATH (no layer is copied): an image that cannot find python."""
    name = f"agentlab-pytest-{uuid.uuid4().hex[:8]}"
    new = f"{tag}-path{len(made)}"
    assert _docker("create", "--name", name, tag, "python").returncode == 0
    try:
        c = _docker("commit", "--change", f"ENV PATH={path}", name, new)
        assert c.returncode == 0, c.stderr
    finally:
        _docker("rm", "-f", name)
    made.append(new)
    return new


def _sandbox_run(tmp_path: Path, image: str, *extra: str) -> subprocess.CompletedProcess:
    job = tmp_path / "job.py"
    job.write_text(JOB)
    env = {**os.environ, "AGENTLAB_SANDBOX_IMAGE": image}
    return subprocess.run([sys.executable, "-m", "agentlab.cli", "sandbox", "run", str(job), "--backend", "docker",
                           "--timeout", "60", "--memory", "256", "--workdir", str(tmp_path / "wd"), *extra],
                          capture_output=True, text=True, env=env, stdin=subprocess.DEVNULL, timeout=180, cwd=ROOT)


def _containers_of(image: str) -> str:
    return _docker("ps", "-a", "-q", "--filter", f"ancestor={image}").stdout.strip()


def test_an_image_built_from_a_venv_under_tmp_runs_a_job(tmp_venv_image, tmp_path):
    tag, _ = tmp_venv_image
    r = _sandbox_run(tmp_path, tag)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "reason: finished" in r.stdout and "prefix /opt/agentlab-venv" in r.stdout, r.stdout
    assert '"ok": 1' in (tmp_path / "wd" / "results.json").read_text()


def test_an_image_without_python_is_a_clear_error_not_a_traceback(tmp_venv_image, tmp_path):
    tag, made = tmp_venv_image
    broken = _derived(tag, made, "/nonexistent/bin")
    r = _sandbox_run(tmp_path, broken)
    assert r.returncode == 2, r.stdout + r.stderr
    assert "Traceback" not in r.stderr and "APIError" not in r.stderr, r.stderr
    assert "cannot start python" in r.stderr and "build-offline-image.sh" in r.stderr, r.stderr
    assert not _containers_of(broken)  # the container that could not start was removed


def test_an_image_that_needs_tmp_is_refused_by_the_check(tmp_venv_image, tmp_path):
    tag, made = tmp_venv_image
    old_style = _derived(tag, made, "/tmp/checkout/.venv/bin:/usr/bin:/bin")  # what the old script built
    r = _sandbox_run(tmp_path, old_style)
    assert r.returncode == 2 and "Traceback" not in r.stderr, r.stderr
    assert "/tmp/checkout/.venv/bin, which the sandbox hides" in r.stderr and "rebuild it" in r.stderr, r.stderr


def test_docker_refusing_the_limits_names_the_fix(tmp_venv_image, tmp_path):
    tag, _ = tmp_venv_image
    r = _sandbox_run(tmp_path, tag, "--memory", "4")  # below docker's minimum
    assert r.returncode == 2 and "Traceback" not in r.stderr, r.stderr
    assert "lack of memory" in r.stderr and "--memory" in r.stderr, r.stderr
    assert not _containers_of(tag)


def test_a_missing_daemon_is_a_clear_error(tmp_path):
    pytest.importorskip("docker", reason="the docker SDK is not installed")
    job = tmp_path / "job.py"
    job.write_text(JOB)
    env = {**os.environ, "DOCKER_HOST": f"unix://{tmp_path}/no-docker.sock"}
    r = subprocess.run([sys.executable, "-m", "agentlab.cli", "sandbox", "run", str(job), "--backend", "docker"],
                       capture_output=True, text=True, env=env, stdin=subprocess.DEVNULL, timeout=120, cwd=ROOT)
    assert r.returncode == 2 and "Traceback" not in r.stderr, r.stderr
    assert "cannot reach a docker daemon" in r.stderr and "fix:" in r.stderr, r.stderr
