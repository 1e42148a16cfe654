"""Escape suite: every attempt by a job to reach the host must fail, on every isolated backend."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import pytest

from agentlab.sandbox import Limits

pytestmark = pytest.mark.timeout(180)


def test_network_loopback_listener_gets_nothing(run_job):
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(5)
    srv.settimeout(0.2)
    port = srv.getsockname()[1]
    got: list = []
    stop = threading.Event()

    def accept() -> None:
        while not stop.is_set():
            try:
                got.append(srv.accept())
            except OSError:
                pass

    t = threading.Thread(target=accept, daemon=True)
    t.start()
    script = """
    import json, socket, sys
    out = {}
    for host in ("127.0.0.1", "localhost"):
        try:
            s = socket.create_connection((host, int(sys.argv[1])), timeout=2)
            s.sendall(b"stolen"); out[host] = "connected"
        except OSError as e:
            out[host] = f"blocked: {e}"
    json.dump(out, open("results.json", "w"))
    """
    try:
        result, out, _ = run_job(script, args=[str(port)])
    finally:
        stop.set()
        t.join()
        srv.close()
    assert result.ok, result
    assert out and all(v.startswith("blocked") for v in out.values()), out
    assert got == []


def test_network_public_address_unreachable(run_job):
    script = """
    import json, socket
    out = {}
    try:
        socket.create_connection(("1.1.1.1", 443), timeout=3); out["ip"] = "connected"
    except OSError as e:
        out["ip"] = f"blocked: {e}"
    try:
        socket.getaddrinfo("example.com", 443); out["dns"] = "resolved"
    except OSError as e:
        out["dns"] = f"blocked: {e}"
    import os
    out["interfaces"] = sorted(os.listdir("/sys/class/net")) if os.path.isdir("/sys/class/net") else []
    json.dump(out, open("results.json", "w"))
    """
    result, out, _ = run_job(script)
    assert result.ok, result
    assert out["ip"].startswith("blocked") and out["dns"].startswith("blocked"), out
    assert set(out["interfaces"]) <= {"lo"}, out


def test_host_secrets_unreadable(run_job, tmp_path, monkeypatch):
    home = tmp_path / "fakehome"
    (home / ".ssh").mkdir(parents=True)
    secret = f"SECRET-{uuid.uuid4()}"
    (home / ".ssh" / "id_ed25519").write_text(secret)
    monkeypatch.setenv("HOME", str(home))
    script = """
    import glob, json, os, sys
    found = {}
    paths = [sys.argv[1], os.path.expanduser("~/.ssh/id_ed25519"), "/etc/shadow", "/etc/gshadow", "/root/.ssh",
             "/root/.bash_history", "/home"] + glob.glob("/root/.ssh/*") + glob.glob("/home/*/.ssh/*")
    for p in paths:
        try:
            found[p] = open(p).read()[:200] if os.path.isfile(p) else sorted(os.listdir(p))
        except OSError as e:
            found[p] = None
    json.dump(found, open("results.json", "w"))
    """
    result, out, _ = run_job(script, args=[str(home / ".ssh" / "id_ed25519")])
    assert result.ok, result
    assert secret not in str(out) + result.stdout_tail + result.stderr_tail
    leaked = {p: v for p, v in out.items() if v}  # an empty listing of a mount-point dir is harmless
    assert leaked == {}, leaked


def test_parent_environment_not_inherited(run_job, monkeypatch):
    key = f"sk-test-{uuid.uuid4().hex}"
    monkeypatch.setenv("OPENAI_API_KEY", key)
    monkeypatch.setenv("AGENTLAB_API_KEY", key)
    script = """
    import glob, json, os
    blobs = []
    for p in glob.glob("/proc/*/environ"):
        try:
            blobs.append(open(p, "rb").read().decode(errors="replace"))
        except OSError:
            pass
    json.dump({"env": dict(os.environ), "proc": blobs}, open("results.json", "w"))
    """
    result, out, _ = run_job(script)
    assert result.ok, result
    assert key not in str(out)
    assert "OPENAI_API_KEY" not in out["env"]
    assert not out["env"].get("HOME", "").startswith(("/root", "/home")), out["env"]


def test_cannot_write_outside_workdir(run_job, tmp_path):
    outside = tmp_path / "outside.txt"
    marker = f"agentlab-marker-{uuid.uuid4().hex}"
    targets = [str(outside), "/etc/evil", "/usr/evil", "/opt/agentlab/agentlab/evil.py", f"{sys.prefix}/evil",
               f"{Path(sys.base_prefix)}/evil", "/root/evil", "/evil"]  # fmt: skip
    script = """
    import json, sys
    res = {}
    for p in sys.argv[2:]:
        try:
            open(p, "w").write("x"); res[p] = "written"
        except OSError as e:
            res[p] = f"blocked: {e.__class__.__name__}"
    open("/tmp/" + sys.argv[1], "w").write("private tmp")
    open("inside.txt", "w").write("ok")
    json.dump(res, open("results.json", "w"))
    """
    result, out, workdir = run_job(script, args=[marker, *targets])
    assert result.ok, result
    assert all(v.startswith("blocked") for v in out.values()), out
    for p in targets:
        assert not Path(p).exists(), p
    assert not Path("/tmp", marker).exists()  # the job's /tmp is private
    assert (workdir / "inside.txt").read_text() == "ok"


def test_fork_bomb_is_contained(run_job):
    script = """
    import json, os, time
    n = 0
    for _ in range(2000):
        try:
            pid = os.fork()
        except OSError:
            break
        if pid == 0:
            try:
                os.fork()  # children multiply too
            except OSError:
                pass
            time.sleep(30)
            os._exit(0)
        n += 1
    json.dump({"forked": n}, open("results.json", "w"))
    """
    result, out, _ = run_job(script, limits=Limits(wall_seconds=30, memory_mb=512, max_processes=32))
    assert out is not None, result
    assert out["forked"] < 32, out
    assert subprocess.run(["true"]).returncode == 0  # the host can still start processes


def test_memory_bomb_is_killed(run_job):
    script = """
    chunks = []
    for _ in range(60):
        chunks.append(bytearray(64 * 1024 * 1024))  # zero-filled, so really resident
    open("results.json", "w").write('{"survived": true}')
    """
    result, out, _ = run_job(script, limits=Limits(wall_seconds=60, memory_mb=256, max_processes=32))
    assert out is None
    assert result.reason == "memory", result


def test_infinite_loop_hits_cpu_limit(run_job):
    result, out, _ = run_job("while True:\n    pass\n", limits=Limits(wall_seconds=120, cpu_seconds=2, memory_mb=256))
    assert result.reason == "timeout", result
    assert "CPU" in result.detail, result


def test_sleep_past_wall_timeout(run_job):
    result, out, _ = run_job("import time\ntime.sleep(600)\n", limits=Limits(wall_seconds=2, memory_mb=256))
    assert result.reason == "timeout", result
    assert result.exit_code is None
    assert "wall" in result.detail


def test_huge_stdout_is_capped(run_job):
    script = """
    import sys
    line = b"x" * 1023 + b"\\n"
    for _ in range(100 * 1024):  # 100 MB
        sys.stdout.buffer.write(line)
    """
    cap = 1_000_000
    result, out, workdir = run_job(script, limits=Limits(wall_seconds=120, memory_mb=256, max_output_bytes=cap))
    assert result.output_truncated, result
    assert result.reason == "output_limit", result
    assert (workdir / ".job" / "stdout.log").stat().st_size <= cap
    assert len(result.stdout_tail) <= 4000


def test_killing_the_parent_does_not_hurt_the_host(run_job):
    canary = subprocess.Popen(["sleep", "120"])
    script = """
    import json, os, signal, time
    ppid = os.getppid()
    for target in (ppid, -1):
        try:
            os.kill(target, signal.SIGKILL)
        except OSError:
            pass
    os.system("kill -9 -1 2>/dev/null")
    time.sleep(0.5)
    json.dump({"ppid": ppid}, open("results.json", "w"))
    """
    try:
        result, out, _ = run_job(script, limits=Limits(wall_seconds=30, memory_mb=256))
        assert canary.poll() is None  # the host process next to us survived
        os.kill(os.getpid(), 0)  # and so did we
        assert result.reason in ("finished", "killed"), result
    finally:
        canary.kill()
        canary.wait()


def _host_procs_with(marker: str) -> list[int]:
    pids = []
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                if marker.encode() in (d / "cmdline").read_bytes():
                    pids.append(int(d.name))
            except OSError:
                pass
    return pids


def test_daemon_left_behind_is_killed(run_job):
    marker = f"agentlab-daemon-{uuid.uuid4().hex}"
    script = """
    import os, sys, time
    if os.fork() == 0:
        os.setsid()
        if os.fork() == 0:
            code = "import time\\n# " + sys.argv[1] + "\\nwhile True:\\n    open('heartbeat', 'a').write('.')\\n    time.sleep(0.1)\\n"
            os.execv(sys.executable, [sys.executable, "-c", code, sys.argv[1]])
        os._exit(0)
    time.sleep(1)
    open("results.json", "w").write('{"parent": "done"}')
    """
    result, out, workdir = run_job(script, args=[marker], limits=Limits(wall_seconds=30, memory_mb=256))
    assert result.ok, result
    beat = workdir / "heartbeat"
    assert beat.exists()  # the daemon did run inside
    size = beat.stat().st_size
    time.sleep(1.0)
    assert beat.stat().st_size == size  # ... and is no longer writing
    assert _host_procs_with(marker) == []
