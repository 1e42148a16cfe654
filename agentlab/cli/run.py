"""`agentlab run IDEA` and `agentlab resume RUN`: start a research run, or continue one, in this process.

Both are thin: they turn options into settings and a decision, and call the runner API
(`agentlab.runner.start_run` / `resume_run`), which `agentlab review --accept/--revise` calls too.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from agentlab.cli.common import (
    ON_CHECKPOINT,
    asker_for,
    back_names,
    base_url_option,
    choice_enum,
    console,
    fail,
    finish,
    model_option,
    open_run,
    overrides,
    runs_dir_option,
    sandbox_names,
    stop_help,
    value,
    warn_unsafe,
)

SandboxName = choice_enum("SandboxName", sandbox_names())
OnCheckpoint = choice_enum("OnCheckpoint", ON_CHECKPOINT)
Proposal = choice_enum("Proposal", ("auto", "code", "spec"))
BACK_HELP = (f"Return to an earlier phase and run it again: one of {', '.join(back_names())}.")


def run(
    idea: str = typer.Argument(..., help="The research idea or question."),
    headless: bool = typer.Option(False, "--headless", help="Never prompt; see --on-checkpoint."),
    on_checkpoint: Optional[OnCheckpoint] = typer.Option(
        None, help="Headless, at a checkpoint: approve it and go on, or park the run (exit; resume later)."),
    checkpoints: Optional[str] = typer.Option(None, help=stop_help()),
    base_url: Optional[str] = base_url_option(),
    model: Optional[str] = model_option(),
    max_cost: Optional[float] = typer.Option(None, help="Budget in USD."),
    max_tokens: Optional[int] = typer.Option(None, help="Budget in tokens."),
    max_minutes: Optional[float] = typer.Option(None, help="Budget in active minutes."),
    max_papers: Optional[int] = typer.Option(None, help="Papers to read."),
    papers: Optional[Path] = typer.Option(None, help="Your own reading list: a directory of PDFs and/or BibTeX."),
    offline: Optional[bool] = typer.Option(None, "--offline/--online", help="Use only cached/local papers."),
    max_attempts: Optional[int] = typer.Option(None, help="Node budget of the experiment's implement stage "
                                                           "(drafts, debug and improve nodes of the method)."),
    drafts: Optional[int] = typer.Option(None, help="Implement stage: first drafts of the method (default 2)."),
    seeds: Optional[int] = typer.Option(None, help="Seeds of the final runs on the test split (default 3)."),
    proposal: Optional[Proposal] = typer.Option(
        None, help="How the proposed method is made: code (method.py from the LLM), spec (settings of a "
                   "registered method, for weak models), auto (spec on the embedded model)."),
    sandbox: Optional[SandboxName] = typer.Option(None, help="Sandbox backend for experiment code (auto: the first "
                                                             "isolated one that works here)."),
    runs_dir: Optional[Path] = runs_dir_option(),
    config: Optional[Path] = typer.Option(None, help="TOML settings file (default ./agentlab.toml)."),
) -> None:
    """Start a research run on IDEA."""
    from agentlab.config import ConfigError, load_settings
    from agentlab.runner import RunnerError, create_run, start_run

    if not idea.strip():
        fail("the research idea is empty: give a question, e.g. agentlab run \"Does H2O keep perplexity at 4x?\"")
    try:
        settings = load_settings(config, overrides(
            on_checkpoint=value(on_checkpoint), checkpoints=checkpoints, base_url=base_url, model=model,
            max_cost=max_cost, max_tokens=max_tokens, max_minutes=max_minutes, max_papers=max_papers,
            max_attempts=max_attempts, drafts=drafts, seeds=seeds, proposal=value(proposal), papers_dir=str(papers.resolve()) if papers else None, offline=offline,
            sandbox=value(sandbox), runs_dir=str(runs_dir) if runs_dir else None))
    except ConfigError as exc:
        fail(str(exc))
    if settings.sandbox == "unsafe-local":
        warn_unsafe()
    run_ = create_run(settings, idea)
    console.print(f"Run [bold]{run_.id}[/] in {run_.path}")
    try:
        outcome = start_run(run_, settings, idea, console, asker=asker_for(headless))
    except RunnerError as exc:
        fail(str(exc))
    finish(run_, outcome)


def decision_from_flags(approve: bool, feedback: Optional[str], back: Optional[str], edit_plan: Optional[Path],
                        reject: bool) -> Optional[dict]:
    """The answer the resume flags give (first of --back, --edit-plan, --reject, --feedback, --approve)."""
    if back:
        return {"action": "back", "phase": back, "text": feedback or ""}
    if edit_plan:
        import yaml

        try:
            return {"action": "edit", "plan": yaml.safe_load(edit_plan.read_text())}
        except (OSError, yaml.YAMLError) as exc:
            fail(f"--edit-plan {edit_plan}: {exc}")
    if reject:
        return {"action": "reject"}
    if feedback:
        return {"action": "feedback", "text": feedback}
    if approve:
        return {"action": "approve"}
    return None


def resume(
    run_id: str = typer.Argument(..., help="Run id (or a unique prefix)."),
    approve: bool = typer.Option(False, "--approve", help="Approve the pending checkpoint (or retry a stopped phase)."),
    feedback: Optional[str] = typer.Option(None, help="Feedback the next (or --back) phase must take into account."),
    back: Optional[str] = typer.Option(None, help=BACK_HELP),
    edit_plan: Optional[Path] = typer.Option(None, help="YAML/JSON file with the edited plan (plan checkpoint)."),
    reject: bool = typer.Option(False, "--reject", help="End the run without accepting the report."),
    headless: bool = typer.Option(False, "--headless", help="Never prompt; see --on-checkpoint."),
    on_checkpoint: Optional[OnCheckpoint] = typer.Option(
        None, help="Headless, at later checkpoints: approve them, or park the run (exit; resume later)."),
    max_cost: Optional[float] = typer.Option(None, help="New budget in USD (for the whole run)."),
    max_tokens: Optional[int] = typer.Option(None, help="New budget in tokens (for the whole run)."),
    max_minutes: Optional[float] = typer.Option(None, help="New budget in active minutes (for the whole run)."),
    base_url: Optional[str] = base_url_option(),
    model: Optional[str] = model_option(),
    sandbox: Optional[SandboxName] = typer.Option(None, help="Sandbox backend for experiment code from now on."),
    runs_dir: Optional[Path] = runs_dir_option(),
) -> None:
    """Continue a run from its last checkpoint, in this process."""
    from agentlab.runner import NeedsDecision, RunnerError, resume_run

    run_ = open_run(run_id, runs_dir)
    decision = decision_from_flags(approve, feedback, back, edit_plan, reject)
    if value(sandbox) == "unsafe-local":
        warn_unsafe()
    try:
        outcome = resume_run(run_, decision, console=console, asker=asker_for(headless), overrides=overrides(
            max_cost=max_cost, max_tokens=max_tokens, max_minutes=max_minutes, base_url=base_url, model=model,
            sandbox=value(sandbox), on_checkpoint=value(on_checkpoint)))
    except NeedsDecision as exc:
        fail(f"run {run_.id} waits at the {exc.payload['phase']} checkpoint: pass --approve, --feedback, --back "
             "or --edit-plan")
    except RunnerError as exc:
        fail(str(exc))
    finish(run_, outcome)
