"""Plain subprocess, no isolation: only when the user asks for it (`--sandbox unsafe-local`)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
import warnings

from agentlab.sandbox.base import Job, JobResult, Sandbox, tail


class UnsafeLocalSandbox(Sandbox):
    name = "unsafe-local"
    isolated = False

    @classmethod
    def check(cls) -> tuple[bool, str]:
        return True, "always available; NOT isolated: the code can read your files and use the network"

    def _start_and_wait(self, job: Job) -> JobResult:
        warnings.warn(
            f"job {job.id}: running LLM-written code WITHOUT a sandbox (unsafe-local)", RuntimeWarning, stacklevel=2
        )
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "PYTHONUNBUFFERED": "1", "HOME": job.workdir}
        env.update(job.env)
        cmd = [sys.executable if c == "python" else c for c in job.command]
        lim = job.limits
        start = time.monotonic()
        with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
            proc = subprocess.Popen(cmd, cwd=job.workdir, env=env, stdout=out, stderr=err, start_new_session=True)
            reason = "finished"
            try:
                proc.wait(timeout=lim.wall_seconds)
            except subprocess.TimeoutExpired:
                reason = "timeout"
            finally:
                try:
                    os.killpg(proc.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                proc.wait()
            out.seek(0)
            err.seek(0)
            o, e = out.read(), err.read()
        truncated = len(o) > lim.max_output_bytes or len(e) > lim.max_output_bytes
        return JobResult(
            job_id=job.id,
            backend=self.name,
            exit_code=proc.returncode if reason == "finished" else None,
            reason=reason,
            wall_seconds=round(time.monotonic() - start, 3),
            stdout_tail=tail(o),
            stderr_tail=tail(e),
            output_truncated=truncated,
        )
