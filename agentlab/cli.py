"""The `agentlab` command: run, resume, runs, status, review, doctor (+ sandbox, eval, batch)."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console
from rich.table import Table

from agentlab.config import ConfigError, Settings, load_settings, settings_from_run
from agentlab.llm import LLMError
from agentlab.runs import RunDir, RunNotFound, list_runs

app = typer.Typer(help="AgentLab: an autonomous research agent for LLM-efficiency research.", no_args_is_help=True,
                  pretty_exceptions_enable=False)
console = Console(soft_wrap=True)
err = Console(stderr=True, soft_wrap=True)


def _fail(msg: str, code: int = 2) -> None:
    err.print(f"[bold red]error:[/] {msg}", highlight=False)
    raise typer.Exit(code)


def _mount_subcommands() -> None:
    from agentlab.batch.cli import batch
    from agentlab.eval.cli import eval_app
    from agentlab.sandbox.cli import sandbox_app

    app.add_typer(sandbox_app, name="sandbox")
    app.add_typer(eval_app, name="eval")
    app.command("batch", context_settings={"allow_interspersed_args": True})(batch)


def _overrides(**kw) -> dict:
    return {k: v for k, v in kw.items() if v is not None}


def _print_resume_hint(run: RunDir, outcome) -> None:
    p = outcome.payload or {}
    if outcome.status == "parked":
        console.print(f"Run [bold]{run.id}[/] is waiting at the [bold]{p.get('phase')}[/] checkpoint.")
        console.print(f"  continue:  agentlab resume {run.id} --approve")
        console.print(f"  or:        agentlab resume {run.id} --feedback \"...\"  |  --back plan --feedback \"...\"")
    elif outcome.status == "stopped":
        console.print(f"[red]Run {run.id} stopped in {p.get('phase')}:[/] {p.get('message')}", highlight=False)
        console.print(f"  after fixing it:  agentlab resume {run.id}   (add e.g. --max-cost N for a budget stop)")
    elif outcome.status == "done":
        console.print(f"[green]Run {run.id} finished.[/] Review it: agentlab review {run.id}")
    elif outcome.status == "interrupted":
        console.print(f"Run {run.id} interrupted; continue with: agentlab resume {run.id}")


def _drive(run: RunDir, settings: Settings, first, headless: bool) -> None:
    from agentlab.cli_human import make_asker
    from agentlab.runner import drive

    asker = None if headless else make_asker(console)
    try:
        outcome = drive(run, settings, first, console, asker=asker)
    except KeyboardInterrupt:
        run.write_meta(status="interrupted", pid=None)
        console.print(f"\nInterrupted. Nothing after the last checkpoint is lost beyond the step in flight: "
                      f"agentlab resume {run.id}")
        raise typer.Exit(130)
    except LLMError as exc:
        run.write_meta(status="stopped", pid=None)
        _fail(f"{exc}\nThe run is saved: agentlab resume {run.id}")
    _print_resume_hint(run, outcome)
    raise typer.Exit(outcome.exit_code)


@app.command()
def run(
    idea: str = typer.Argument(..., help="The research idea or question."),
    headless: bool = typer.Option(False, "--headless", help="Never prompt; see --on-checkpoint."),
    on_checkpoint: Optional[str] = typer.Option(None, help="Headless: approve | park at human checkpoints."),
    checkpoints: Optional[str] = typer.Option(None, help="Which phases stop for a human: e.g. plan,report | all | none."),
    base_url: Optional[str] = typer.Option(None, help="OpenAI-compatible endpoint (default $OPENAI_BASE_URL)."),
    model: Optional[str] = typer.Option(None, help="Model name for every phase."),
    max_cost: Optional[float] = typer.Option(None, help="Budget in USD."),
    max_tokens: Optional[int] = typer.Option(None, help="Budget in tokens."),
    max_minutes: Optional[float] = typer.Option(None, help="Budget in active minutes."),
    max_papers: Optional[int] = typer.Option(None, help="Papers to read."),
    papers: Optional[Path] = typer.Option(None, help="Your own reading list: a directory of PDFs and/or BibTeX."),
    offline: Optional[bool] = typer.Option(None, "--offline/--online", help="Use only cached/local papers."),
    max_attempts: Optional[int] = typer.Option(None, help="Experiment attempts per visit."),
    sandbox: Optional[str] = typer.Option(None, help="auto | bwrap | docker | unsafe-local."),
    runs_dir: Optional[Path] = typer.Option(None, help="Where runs live (default ./runs)."),
    config: Optional[Path] = typer.Option(None, help="TOML settings file (default ./agentlab.toml)."),
) -> None:
    """Start a research run on IDEA."""
    if not idea.strip():
        _fail("the research idea is empty: give a question, e.g. agentlab run \"Does H2O keep perplexity at 4x?\"")
    try:
        settings = load_settings(config, _overrides(
            on_checkpoint=on_checkpoint, checkpoints=checkpoints, base_url=base_url, model=model, max_cost=max_cost,
            max_tokens=max_tokens, max_minutes=max_minutes, max_papers=max_papers, max_attempts=max_attempts,
            papers_dir=str(papers.resolve()) if papers else None, offline=offline,
            sandbox=sandbox, runs_dir=str(runs_dir) if runs_dir else None))
    except ConfigError as exc:
        _fail(str(exc))
    if sandbox == "unsafe-local" or settings.sandbox == "unsafe-local":
        err.print("[bold red]WARNING:[/] --sandbox unsafe-local runs LLM-written code on this machine WITHOUT isolation.")
    run_ = RunDir.create(Path(settings.runs_dir), idea.strip())
    settings.save(run_.settings_path)
    console.print(f"Run [bold]{run_.id}[/] in {run_.path}")
    _drive(run_, settings, {"idea": idea.strip()}, headless)


def _open_run(run_id: str, runs_dir: Optional[Path]) -> tuple[RunDir, Path]:
    root = Path(runs_dir) if runs_dir else Path(load_settings().runs_dir)
    try:
        return RunDir.open(root, run_id), root
    except RunNotFound as exc:
        _fail(str(exc))
        raise  # unreachable


@app.command()
def resume(
    run_id: str = typer.Argument(..., help="Run id (or a unique prefix)."),
    approve: bool = typer.Option(False, "--approve", help="Approve the pending checkpoint (or retry a stopped phase)."),
    feedback: Optional[str] = typer.Option(None, help="Feedback the next (or --back) phase must take into account."),
    back: Optional[str] = typer.Option(None, help="Return to an earlier phase (literature, plan, experiment, ...)."),
    edit_plan: Optional[Path] = typer.Option(None, help="YAML/JSON file with the edited plan (plan checkpoint)."),
    reject: bool = typer.Option(False, "--reject", help="End the run without accepting the report."),
    headless: bool = typer.Option(False, "--headless"),
    on_checkpoint: Optional[str] = typer.Option(None),
    max_cost: Optional[float] = typer.Option(None), max_tokens: Optional[int] = typer.Option(None),
    max_minutes: Optional[float] = typer.Option(None), base_url: Optional[str] = typer.Option(None),
    model: Optional[str] = typer.Option(None), sandbox: Optional[str] = typer.Option(None),
    runs_dir: Optional[Path] = typer.Option(None),
) -> None:
    """Continue a run from its last checkpoint, in this process."""
    from agentlab.human import BadDecision, validate_decision
    from agentlab.runner import pending_interrupt
    from langgraph.types import Command
    import yaml

    run_, _ = _open_run(run_id, runs_dir)
    if run_.effective_status() == "running":
        _fail(f"run {run_.id} is running in process {run_.meta().get('pid')}; stop it first")
    try:
        settings = settings_from_run(run_.settings_path, _overrides(
            max_cost=max_cost, max_tokens=max_tokens, max_minutes=max_minutes, base_url=base_url, model=model,
            sandbox=sandbox, on_checkpoint=on_checkpoint))
    except ConfigError as exc:
        _fail(str(exc))
    settings.save(run_.settings_path)
    payload, values = pending_interrupt(run_, settings)
    if values.get("done"):
        console.print(f"Run {run_.id} is finished. Review it: agentlab review {run_.id}")
        raise typer.Exit(0)
    decision = None
    if back:
        decision = {"action": "back", "phase": back, "text": feedback or ""}
    elif edit_plan:
        decision = {"action": "edit", "plan": yaml.safe_load(edit_plan.read_text())}
    elif reject:
        decision = {"action": "reject"}
    elif feedback:
        decision = {"action": "feedback", "text": feedback}
    elif approve:
        decision = {"action": "retry" if payload and payload["kind"] != "checkpoint" else "approve"}
    if payload is None:
        if decision is not None:
            console.print("[yellow]The run is not waiting at a checkpoint; continuing where it stopped.[/]")
        _drive(run_, settings, None, headless)
    if decision is None:
        if payload["kind"] != "checkpoint":
            decision = {"action": "retry"}
        elif headless:
            _fail(f"run {run_.id} waits at the {payload['phase']} checkpoint: pass --approve, --feedback, --back or --edit-plan")
        else:
            from agentlab.cli_human import make_asker

            decision = make_asker(console)(payload)
    try:
        decision = validate_decision(decision, payload)
    except BadDecision as exc:
        _fail(f"{exc}. Nothing changed; the run still waits at {payload['phase']}.")
    _drive(run_, settings, Command(resume=decision), headless)


@app.command("runs")
def runs_cmd(runs_dir: Optional[Path] = typer.Option(None)) -> None:
    """List runs: id, topic, phase, status, tokens, cost."""
    root = Path(runs_dir) if runs_dir else Path(load_settings().runs_dir)
    t = Table()
    t.add_column("id", no_wrap=True)
    for col in ("topic", "phase", "status", "tokens", "cost"):
        t.add_column(col, overflow="fold")
    for r in list_runs(root):
        m, tot = r.meta(), r.ledger.totals()
        t.add_row(r.id, m.get("topic", "")[:50], m.get("phase", ""), r.effective_status(), str(tot["tokens"]),
                  f"${tot['cost']:.4f}")
    console.print(t)


@app.command()
def status(run_id: str, runs_dir: Optional[Path] = typer.Option(None), as_json: bool = typer.Option(False, "--json")) -> None:
    """Show one run: where it is, what it waits for, usage per phase, attempts, report."""
    from agentlab.runner import pending_interrupt

    run_, _ = _open_run(run_id, runs_dir)
    settings = settings_from_run(run_.settings_path)
    payload, values = pending_interrupt(run_, settings)
    info = {"id": run_.id, "path": str(run_.path), "topic": run_.meta().get("topic"), "status": run_.effective_status(),
            "phase": values.get("phase"), "waiting": payload, "usage": run_.ledger.totals(),
            "usage_by_phase": run_.ledger.by_phase(), "papers": len(values.get("papers") or []),
            "attempts": [{k: a.get(k) for k in ("n", "status", "reason", "metrics")} for a in values.get("attempts") or []],
            "report": values.get("report", {}).get("pdf"), "revision": values.get("revision")}
    if as_json:
        print(json.dumps(info, indent=2, default=str))
        return
    console.print_json(json.dumps(info, default=str))


@app.command()
def doctor(base_url: Optional[str] = typer.Option(None), model: Optional[str] = typer.Option(None)) -> None:
    """Report what is present and what is missing, with the exact fix for each."""
    from agentlab.doctor import run_checks

    settings = load_settings(None, _overrides(base_url=base_url, model=model))
    t = Table(title="agentlab doctor")
    for col in ("check", "", "detail", "fix"):
        t.add_column(col, overflow="fold")
    checks = run_checks(settings)
    for c in checks:
        t.add_row(c.name, "[green]ok[/]" if c.ok else "[red]missing[/]", c.detail, c.fix)
    console.print(t)


from agentlab.review_cmd import review  # noqa: E402  (registers `agentlab review`)

app.command()(review)
_mount_subcommands()


def main() -> None:  # pragma: no cover
    app()


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
