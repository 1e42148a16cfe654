"""Real infrastructure on 127.0.0.1: a Ray head (`ray start --head`) and a fresh PostgreSQL cluster.

Both are started as processes of this test session and stopped by their process group id.
Tests skip, with the reason, when ray or the PostgreSQL server binaries are not installed.
"""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

from tests.fakes.procs import _stop_group, _wait_port, free_port


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
