"""The escape and takeover suites again, with the orchestrator running as an ordinary (non-root) user.

As root the bwrap backend stages paths and drops each job to a dedicated uid; as an ordinary user it runs
the job as that user, and every other guarantee (seccomp, keyring, read-only /proc/sys, quotas, the safe
channel back) must still hold. CI runs as root, so this test re-runs both suites under `setpriv` as uid
54321. A python or checkout under /root (mode 0700) is made reachable for that uid in a private mount
namespace only: nothing on the host changes.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
UID = 54321
pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]


def _reachable_outside_root(path: str) -> bool:
    """Every ancestor of `path` outside /root lets others traverse it."""
    p = Path(path)
    for anc in [p, *p.parents]:
        if str(anc) in ("/", "/root") or str(anc).startswith("/root/"):
            continue
        if not os.stat(anc).st_mode & 0o001:
            return False
    return True


@pytest.mark.skipif(os.geteuid() != 0, reason="already an ordinary user: this suite run is that run")
def test_escape_and_takeover_suites_pass_as_an_ordinary_user():
    for tool in ("setpriv", "unshare", "mount", "bwrap"):
        if not shutil.which(tool):
            pytest.skip(f"{tool} is not installed")
    needed = sorted({os.path.realpath(sys.base_prefix), os.path.realpath(sys.prefix), str(ROOT)})
    if not all(_reachable_outside_root(p) for p in needed):
        pytest.skip(f"one of {needed} sits under a directory other users cannot traverse")
    work = tempfile.mkdtemp(prefix="agentlab-ordinary-")
    os.chmod(work, 0o777)
    under_root = [p for p in needed if p.startswith("/root/")]
    lines = ["set -e"]
    if under_root:  # a tmpfs over /root in this namespace only, with just these paths bound back
        save = f"{work}/root-save"
        lines += [f"mkdir -p {save}", f"mount --bind /root {save}", "mount -t tmpfs -o mode=0755 tmpfs /root"]
        for p in under_root:
            lines += [f"mkdir -p {shlex.quote(p)}", f"mount --bind {shlex.quote(save + p[len('/root'):])} {shlex.quote(p)}"]
    pytest_cmd = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-k", "bwrap",
                  "--basetemp", f"{work}/bt", "tests/sandbox/test_escape.py", "tests/sandbox/test_takeover.py"]  # fmt: skip
    env = {"PATH": f"{sys.prefix}/bin:/usr/bin:/bin", "HOME": work, "PYTHONDONTWRITEBYTECODE": "1",
           "HF_HUB_OFFLINE": "1", "LANG": "C.UTF-8"}  # fmt: skip
    lines.append("exec setpriv --reuid {0} --regid {0} --clear-groups env -i {1} {2}".format(
        UID, " ".join(f"{k}={shlex.quote(v)}" for k, v in env.items()), shlex.join(pytest_cmd)))
    try:
        p = subprocess.run(["unshare", "--mount", "--propagation", "private", "sh", "-c", "\n".join(lines)],
                           cwd=ROOT, capture_output=True, text=True, timeout=840)  # fmt: skip
    finally:
        shutil.rmtree(work, ignore_errors=True)
    out = p.stdout + p.stderr
    assert p.returncode == 0, out[-4000:]
    m = re.search(r"(\d+) passed", out)
    assert m and int(m.group(1)) >= 15, out[-2000:]
    assert " failed" not in out.splitlines()[-1], out[-2000:]
