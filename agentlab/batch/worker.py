"""One run driven in a child process (`agentlab batch --isolation process`).

    python -m agentlab.batch.worker RUN_DIR FIRST_JSON OVERRIDES_JSON OUTCOME_PATH PARENT_PID

The orchestrator keeps the lease and the table; the child only drives the run, with the settings
saved in the run, and writes {"status", "payload", "error"} to OUTCOME_PATH. It dies with its
orchestrator (PR_SET_PDEATHSIG), so a run is never driven by an orphan after a takeover.
"""

from __future__ import annotations

import ctypes
import json
import os
import signal
import sys
from pathlib import Path


def _die_with_parent(parent: int) -> None:
    try:
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):  # not Linux: best effort
        pass
    if os.getppid() != parent:  # the parent died before prctl took effect
        os._exit(137)


def main(argv: list[str]) -> int:
    run_path, first_json, overrides_json, outcome_path, parent = argv
    _die_with_parent(int(parent))
    from rich.console import Console

    from agentlab.batch.scheduler import graph_input
    from agentlab.config import settings_from_run
    from agentlab.llm import LLMError
    from agentlab.runner import drive
    from agentlab.runs import RunDir

    run = RunDir(Path(run_path))
    settings = settings_from_run(run.settings_path, json.loads(overrides_json))
    out: dict = {"status": "interrupted", "payload": None, "error": ""}
    with (run.path / "logs" / "batch.log").open("a") as f:
        con = Console(file=f, width=120, force_terminal=False, soft_wrap=True)
        try:
            outcome = drive(run, settings, graph_input(json.loads(first_json)), con, asker=None, live=False)
            out.update(status=outcome.status, payload=outcome.payload)
        except LLMError as exc:
            waiting = {"kind": "error", "phase": run.meta().get("phase"), "message": str(exc)}
            run.write_meta(status="stopped", pid=None, waiting=waiting)
            out.update(status="stopped", payload=waiting, error=str(exc))
    tmp = Path(outcome_path).with_suffix(".tmp")
    tmp.write_text(json.dumps(out, default=str))
    tmp.replace(outcome_path)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
