"""Real infrastructure on 127.0.0.1: a Ray head (`ray start --head`) and a fresh PostgreSQL cluster.

Both are started as processes of this test session and stopped by their process group id.
Tests skip, with the reason, when ray or the PostgreSQL server binaries are not installed.
"""

from __future__ import annotations

import glob
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

BIN = Path(sys.executable).parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_port(port: int, proc: subprocess.Popen, what: str, timeout: float = 90.0) -> None:
    end = time.time() + timeout
    while time.time() < end:
        if proc.poll() is not None:
            raise RuntimeError(f"{what} exited with {proc.returncode}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.3)
    raise RuntimeError(f"{what} did not listen on {port} within {timeout:.0f}s")


def _stop_group(proc: subprocess.Popen, grace: float = 20.0) -> None:
    """SIGTERM, then SIGKILL, to the process group this fixture started (and nothing else)."""
    for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, 5.0)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(timeout=wait)
            return
        except subprocess.TimeoutExpired:
            continue


@pytest.fixture(scope="session")
def ray_cluster():
    """A real Ray head on 127.0.0.1 with 2 CPUs (two workers can run at once); yields its address."""
    pytest.importorskip("ray", reason="ray not installed: pip install 'agentlab[ray]'")
    ray_bin = BIN / "ray"
    if not ray_bin.exists():
        pytest.skip(f"the `ray` command is not in {BIN}")
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


def _pg_bin() -> Path | None:
    for cand in [os.environ.get("AGENTLAB_PG_BIN", "")] + sorted(glob.glob("/usr/lib/postgresql/*/bin"), reverse=True):
        if cand and (Path(cand) / "postgres").exists() and (Path(cand) / "initdb").exists():
            return Path(cand)
    found = shutil.which("postgres")
    return Path(found).resolve().parent if found and shutil.which("initdb") else None


@pytest.fixture(scope="session")
def postgres_url():
    """A fresh PostgreSQL cluster (initdb in a temp dir) on 127.0.0.1:<free port>; yields its URL."""
    pytest.importorskip("psycopg", reason="psycopg not installed: pip install 'agentlab[postgres]'")
    pytest.importorskip("langgraph.checkpoint.postgres", reason="pip install langgraph-checkpoint-postgres")
    bindir = _pg_bin()
    if bindir is None:
        pytest.skip("PostgreSQL server binaries not found: apt-get install -y postgresql")
    root = os.geteuid() == 0
    if root and shutil.which("runuser") is None:
        pytest.skip("running as root without runuser: cannot start postgres as an unprivileged user")
    as_user = ["runuser", "-u", "postgres", "--"] if root else []
    tmp = tempfile.mkdtemp(prefix="agentlab-pg-", dir="/tmp")
    data = Path(tmp) / "data"
    if root:
        shutil.chown(tmp, "postgres", "postgres")
    os.chmod(tmp, 0o700)
    subprocess.run(as_user + [str(bindir / "initdb"), "-D", str(data), "-A", "trust", "-U", "agentlab", "-E", "UTF8",
                              "--no-sync"], check=True, capture_output=True)
    port = free_port()
    log = open(Path(tmp) / "pg.log", "w") if not root else subprocess.DEVNULL
    proc = subprocess.Popen(as_user + [str(bindir / "postgres"), "-D", str(data), "-k", tmp, "-p", str(port),
                                       "-h", "127.0.0.1", "-c", "fsync=off", "-c", "max_connections=100"],
                            stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        _wait_port(port, proc, "postgres", timeout=60)
        url = f"postgresql://agentlab@127.0.0.1:{port}/postgres"
        import psycopg

        for _ in range(50):
            try:
                psycopg.connect(url, connect_timeout=2).close()
                break
            except psycopg.OperationalError:  # still starting up
                time.sleep(0.2)
        yield url
    finally:
        _stop_group(proc, grace=15.0)
        shutil.rmtree(tmp, ignore_errors=True)
