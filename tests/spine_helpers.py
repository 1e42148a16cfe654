"""Running the real `agentlab` CLI in a fresh process against the fakes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def cli(args: list[str], env: dict, timeout: float = 240, **kw) -> subprocess.CompletedProcess:
    full_env = {**os.environ, **env, "PYTHONPATH": str(ROOT), "COLUMNS": "200"}
    if "input" not in kw:
        kw["stdin"] = subprocess.DEVNULL
    return subprocess.run([sys.executable, "-m", "agentlab.cli", *args], env=full_env, capture_output=True,
                          text=True, timeout=timeout, **kw)


def cli_popen(args: list[str], env: dict) -> subprocess.Popen:
    full_env = {**os.environ, **env, "PYTHONPATH": str(ROOT), "COLUMNS": "200"}
    return subprocess.Popen([sys.executable, "-m", "agentlab.cli", *args], env=full_env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, text=True)


def only_run(env: dict) -> Path:
    runs = [p for p in Path(env["AGENTLAB_RUNS_DIR"]).iterdir() if (p / "meta.json").exists()]
    assert len(runs) == 1, runs
    return runs[0]


def status(env: dict, run: Path) -> dict:
    out = cli(["status", run.name, "--json"], env)
    assert out.returncode == 0, out.stdout + out.stderr
    return json.loads(out.stdout)


def ledger_rows(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / "ledger.jsonl").read_text().splitlines() if line.strip()]
