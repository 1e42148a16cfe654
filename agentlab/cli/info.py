"""`agentlab runs`, `agentlab status RUN` and `agentlab doctor`: look at runs and at this machine."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer
from rich.table import Table

from agentlab.cli.common import base_url_option, console, model_option, open_run, overrides, runs_dir_option, runs_root


def runs(runs_dir: Optional[Path] = runs_dir_option()) -> None:
    """List runs: id, topic, phase, status, tokens, cost."""
    from agentlab.runs import list_runs

    t = Table()
    t.add_column("id", no_wrap=True)
    for col in ("topic", "phase", "status", "tokens", "cost"):
        t.add_column(col, overflow="fold")
    for r in list_runs(runs_root(runs_dir)):
        m, tot = r.meta(), r.ledger.totals()
        t.add_row(r.id, m.get("topic", "")[:50], m.get("phase", ""), r.effective_status(), str(tot["tokens"]),
                  f"${tot['cost']:.4f}")
    console.print(t)


def status(
    run_id: str = typer.Argument(..., help="Run id (or a unique prefix)."),
    runs_dir: Optional[Path] = runs_dir_option(),
    as_json: bool = typer.Option(False, "--json", help="Print plain JSON (for scripts) instead of highlighted JSON."),
) -> None:
    """Show one run: where it is, what it waits for, usage per phase, experiment stages, report."""
    from agentlab.config import settings_from_run
    from agentlab.phases.spec import spec
    from agentlab.runner import pending_interrupt

    experiment_summary = spec("experiment").summary

    run_ = open_run(run_id, runs_dir)
    settings = settings_from_run(run_.settings_path)
    payload, values = pending_interrupt(run_, settings)
    info = {"id": run_.id, "path": str(run_.path), "topic": run_.meta().get("topic"), "status": run_.effective_status(),
            "phase": values.get("phase"), "waiting": payload, "usage": run_.ledger.totals(),
            "usage_by_phase": run_.ledger.by_phase(), "papers": len(values.get("papers") or []),
            "experiment": experiment_summary(values),
            "report": values.get("report", {}).get("pdf"), "revision": values.get("revision")}
    if as_json:
        print(json.dumps(info, indent=2, default=str))
        return
    console.print_json(json.dumps(info, default=str))


def doctor(base_url: Optional[str] = base_url_option(), model: Optional[str] = model_option()) -> None:
    """Report what is present and what is missing, with the exact fix for each."""
    from agentlab.config import load_settings
    from agentlab.doctor import run_checks

    settings = load_settings(None, overrides(base_url=base_url, model=model))
    t = Table(title="agentlab doctor")
    for col in ("check", "", "detail", "fix"):
        t.add_column(col, overflow="fold")
    for c in run_checks(settings):
        t.add_row(c.name, "[green]ok[/]" if c.ok else "[red]missing[/]", c.detail, c.fix)
    console.print(t)
