"""`agentlab batch PATH --parallel N`: run every workflow file in PATH headless, N at a time.

`batch` is the command (mounted by agentlab.cli as `agentlab batch`); `batch_app` serves it alone.
"""

from __future__ import annotations

import enum
import os
import sys
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console
from rich.live import Live
from rich.markup import escape

from agentlab.batch.lease import open_leases
from agentlab.batch.scheduler import Batch, Slot
from agentlab.batch.table import STYLE, print_summary, render
from agentlab.batch.workflow import BACKENDS, Workflow, WorkflowError, load_workflows
from agentlab.config import ConfigError, load_settings, parse_set_options

batch_app = typer.Typer(help="Headless batch runs from workflow files.", pretty_exceptions_enable=False,
                        context_settings={"allow_interspersed_args": True})  # PATH before or after options
console = Console(soft_wrap=True)
err = Console(stderr=True, soft_wrap=True)


#: what `sandbox: {backend: ...}` in a workflow file accepts, so what --sandbox accepts
SandboxName = enum.Enum("SandboxName", {n: n for n in BACKENDS}, type=str)
Isolation = enum.Enum("Isolation", {n: n for n in ("process", "thread")}, type=str)


def _fail(msg: str, code: int = 2) -> None:
    err.print(f"[bold red]error:[/] {msg}", highlight=False)
    raise typer.Exit(code)


@batch_app.callback(invoke_without_command=True)
def batch(
    path: Path = typer.Argument(..., help="A workflow file or a directory of them (*.yaml, *.yml, *.toml)."),
    parallel: int = typer.Option(1, "--parallel", "-j", min=1, max=256, help="Runs driven at the same time."),
    only: Optional[str] = typer.Option(None, help="Comma list of workflow names to run (default: all)."),
    runs_dir: Optional[Path] = typer.Option(None, help="Where runs live (default ./runs); shared by orchestrators."),
    checkpointer_url: Optional[str] = typer.Option(
        None, help="postgresql://... to share runs between orchestrators (default $AGENTLAB_CHECKPOINTER_URL)."),
    sandbox: Optional[SandboxName] = typer.Option(None, help="Override every workflow's sandbox backend."),
    lease_ttl: float = typer.Option(60.0, min=1.0, help="Seconds before a dead orchestrator's runs are taken over."),
    wait: bool = typer.Option(True, "--wait/--no-wait",
                              help="Wait for runs leased by other orchestrators (take over if their lease expires)."),
    isolation: Isolation = typer.Option(
        Isolation.process, help="process: one child process per run (every core; a crash stays in its run; killed "
                                "if its lease is lost); thread: runs share this process."),
    check: bool = typer.Option(False, "--check", help="Only validate the workflow files."),
    config: Optional[Path] = typer.Option(None, help="TOML settings file (default ./agentlab.toml)."),
    model: Optional[str] = typer.Option(
        None, help="Model name for every phase of every workflow (wins over the files' models: default)."),
    base_url: Optional[str] = typer.Option(
        None, help="OpenAI-compatible endpoint for every run (default $OPENAI_BASE_URL; none: the embedded model)."),
    max_cost: Optional[float] = typer.Option(None, help="Budget in USD for every run (wins over the files' budgets; "
                                                         "raise it and rerun to retry runs stopped on a budget)."),
    max_tokens: Optional[int] = typer.Option(None, help="Budget in tokens for every run (wins over the files)."),
    max_minutes: Optional[float] = typer.Option(None, help="Budget in active minutes for every run (wins over the "
                                                            "files)."),
    set_: Optional[list[str]] = typer.Option(
        None, "--set", metavar="KEY=VALUE", help="Any setting for every run, e.g. --set drafts=2 (repeatable; wins "
                                                 "over the workflow files; the flags above win over it)."),
) -> None:
    """Run every workflow in PATH as its own run; rerun to continue what is unfinished."""
    backend = sandbox.value if sandbox is not None else None
    mode = isolation.value
    wfs = _load(path, only)
    for w in wfs:
        for msg in w.warnings():
            err.print(f"[yellow]warning:[/] {msg}", highlight=False)
    deploy = {k: v for k, v in {"runs_dir": str(runs_dir) if runs_dir else None,
                                "checkpointer_url": checkpointer_url}.items() if v is not None}
    flags = {k: v for k, v in {"model": model, "base_url": base_url, "max_cost": max_cost, "max_tokens": max_tokens,
                               "max_minutes": max_minutes}.items() if v is not None}
    try:  # all settings resolved here, in the main thread, before any run starts
        forced = {**parse_set_options(set_), **flags}  # for every run: over each workflow file, --set < flags
        base = load_settings(config, {**forced, **deploy})
        deploy["runs_dir"] = str(Path(base.runs_dir).resolve())  # absolute: runs must not depend on the cwd
        per_wf = {w.name: _settings_for(w, config, {**forced, **deploy}, backend) for w in wfs}
    except ConfigError as exc:
        _fail(str(exc))
    if check:
        console.print(f"{len(wfs)} workflow(s) valid: {', '.join(w.name for w in wfs)}")
        raise typer.Exit(0)
    if not base.base_url and parallel > 1:
        err.print("[yellow]note:[/] no OPENAI_BASE_URL: every run in flight starts its own embedded model")
    if any(w.sandbox.backend == "unsafe-local" for w in wfs) or backend == "unsafe-local":
        err.print("[bold red]WARNING:[/] unsafe-local runs LLM-written code on this machine WITHOUT isolation.")
    root = Path(base.runs_dir).resolve()
    root.mkdir(parents=True, exist_ok=True)
    try:
        leases = open_leases(root, base.checkpointer_url, lease_ttl)
    except Exception as exc:
        _fail(f"cannot open the lease store for {base.checkpointer_url or root}: {exc}")
    # what a continued (or retried) run takes from this command line: the same flags as a new run
    run_overrides = {**forced, **{k: v for k, v in {"checkpointer_url": checkpointer_url, "sandbox": backend}.items()
                                  if v}}
    live = console.is_terminal
    b = Batch(wfs, root, parallel, leases, lambda w: per_wf[w.name],
              run_overrides=run_overrides, wait_for_others=wait, on_change=None if live else _print_change,
              isolation=mode)
    console.print(f"batch: {len(wfs)} workflow(s), parallel {parallel} ({mode}s), runs in {root}, "
                  f"checkpoints in {'Postgres' if base.checkpointer_url else 'SQLite per run'}, "
                  f"lease owner {leases.owner}",
                  highlight=False)
    try:
        if live:
            with Live(render(b.slots), console=console, refresh_per_second=2) as lv:
                slots = b.run(tick=lambda: lv.update(render(b.slots)))
        else:
            slots = b.run()
    except KeyboardInterrupt:
        _interrupted(b)
    finally:
        leases.close()
    print_summary(console, slots)
    raise typer.Exit(1 if any(s.state in ("failed", "interrupted", "stopped") for s in slots) else 0)


def _load(path: Path, only: Optional[str]) -> list[Workflow]:
    """The workflows in PATH (only those --only names, if given); a clear error for a bad file or name."""
    try:
        wfs = load_workflows(path)
    except WorkflowError as exc:
        _fail(f"invalid workflow file(s):\n{exc}")
    if only:
        names = {n.strip() for n in only.split(",") if n.strip()}
        unknown = names - {w.name for w in wfs}
        if unknown:
            _fail(f"--only: no workflow named {', '.join(sorted(unknown))} in {path}")
        wfs = [w for w in wfs if w.name in names]
    return wfs


def _settings_for(w: Workflow, config: Optional[Path], deploy: dict, sandbox: Optional[str]):
    o = {**w.to_overrides(), **deploy}
    if sandbox:
        o["sandbox"] = sandbox
    return load_settings(config, o)


_last: dict[str, str] = {}


def _print_change(s: Slot) -> None:
    """Without a terminal (CI, logs): one line per state change instead of the live table."""
    if s.state == "waiting" and _last.get(s.wf.name) == "waiting":
        return
    _last[s.wf.name] = s.state
    st = STYLE.get(s.state, "")
    line = f"[{st}]{s.state:<11}[/] {escape(s.wf.name)}" if st else f"{s.state:<11} {escape(s.wf.name)}"
    console.print(f"{line} {s.run_id or ''} {escape(s.note)}".rstrip(), highlight=False)


def _interrupted(b: Batch) -> None:
    """Ctrl-C: mark the runs in flight interrupted, give their leases back, and leave at once."""
    from agentlab.runs import RunDir

    for s in b.slots:
        if s.state == "running" and s.run_path is not None:
            RunDir(s.run_path).write_meta(status="interrupted", pid=None)
            b.leases.release(b.key(s))
    console.print("\nInterrupted. Run the same `agentlab batch` command again to continue the unfinished runs.")
    sys.stdout.flush()
    os._exit(130)
