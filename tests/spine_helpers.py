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


#: the smallest staged experiment (one draft, one seed, one item, no ablations), for tests about the CLI
LEAN = '[agentlab]\ndrafts = 1\nseeds = 1\nharness_items = 1\n\n[agentlab.stage_budgets.implement]\nnodes = 1\n'


def lean_settings(agent_env: dict, llm_server, tmp_path: Path, monkeypatch) -> dict:
    """agent_env with the LEAN settings file, and the scripted server answering a whole run (no ablations)."""
    from tests.fakes.scripts import PLAN, full_run

    cfg = tmp_path / "lean.toml"
    cfg.write_text(LEAN)
    monkeypatch.setenv("AGENTLAB_CONFIG", str(cfg))
    full_run(llm_server, Plan={**PLAN, "ablations": []})
    return {**agent_env, "AGENTLAB_CONFIG": str(cfg)}


def command_tree(app) -> dict[str, object]:
    """Every command of the Typer `app`, loaded: 'agentlab', 'agentlab run', 'agentlab sandbox run', ..."""
    import typer

    out: dict[str, object] = {}

    def walk(cmd, path: str) -> None:
        out[path] = cmd
        subs = cmd.load_all() if hasattr(cmd, "load_all") else getattr(cmd, "commands", {})
        for name, sub in subs.items():
            walk(sub, f"{path} {name}")

    walk(typer.main.get_command(app), "agentlab")
    return out
