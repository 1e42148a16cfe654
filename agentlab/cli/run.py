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
BackPhase = choice_enum("BackPhase", back_names())  # phase names and their aliases, from the phase table


SET_HELP = ("Any setting of agentlab/config.py:Settings, KEY=VALUE (repeatable), e.g. --set sandbox=bwrap "
            "--set max_tokens=200000; beats agentlab.toml and the environment, named flags beat it.")
CONFIG_HELP = "TOML settings file (default $AGENTLAB_CONFIG, else ./agentlab.toml)."


def _settings_args(set_: Optional[list[str]]) -> dict:
    from agentlab.config import ConfigError, parse_set_options

    try:
        return parse_set_options(set_)
    except ConfigError as exc:
        fail(str(exc))


def run(
    idea: str = typer.Argument(..., help="The research idea or question."),
    headless: bool = typer.Option(False, "--headless", help="Never prompt; see --on-checkpoint. Without a terminal on "
                                                            "stdin a run is headless anyway."),
    interactive: bool = typer.Option(False, "--interactive", help="Prompt at checkpoints even when stdin is not a "
                                                                  "terminal (answers piped in)."),
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
    set_: Optional[list[str]] = typer.Option(None, "--set", help=SET_HELP),
    runs_dir: Optional[Path] = runs_dir_option(),
    config: Optional[Path] = typer.Option(None, help=CONFIG_HELP),
) -> None:
    """Start a research run on IDEA."""
    from agentlab.config import ConfigError, load_settings
    from agentlab.runner import RunnerError, create_run, start_run

    if not idea.strip():
        fail("the research idea is empty: give a question, e.g. agentlab run \"Does H2O keep perplexity at 4x?\"")
    if headless and interactive:
        fail("--headless and --interactive cannot be combined: choose one")
    try:
        settings = load_settings(config, overrides(
            on_checkpoint=value(on_checkpoint), checkpoints=checkpoints, base_url=base_url, model=model,
            max_cost=max_cost, max_tokens=max_tokens, max_minutes=max_minutes, max_papers=max_papers,
            max_attempts=max_attempts, drafts=drafts, seeds=seeds, proposal=value(proposal),
            papers_dir=str(papers.resolve()) if papers else None, offline=offline,
            sandbox=value(sandbox), runs_dir=str(runs_dir) if runs_dir else None), set_values=_settings_args(set_))
        if settings.sandbox == "unsafe-local":
            warn_unsafe()
        run_ = create_run(settings, idea)
    except (ConfigError, RunnerError) as exc:
        fail(str(exc))
    run_.write_meta(headless=headless)
    console.print(f"Run [bold]{run_.id}[/] in {run_.path}")
    try:
        outcome = start_run(run_, settings, idea, console, asker=asker_for(headless, interactive))
    except RunnerError as exc:
        fail(str(exc))
    finish(run_, outcome)


#: the resume flags that answer the checkpoint; only --back PHASE --feedback TEXT go together (one answer)
ANSWER_FLAGS = ("--approve", "--reject", "--back", "--edit-plan", "--feedback")


def check_one_answer(given: dict[str, object]) -> None:
    """Refuse two answers at once (naming both), before anything is read or run."""
    names = [n for n in ANSWER_FLAGS if given.get(n) not in (None, False)]
    if "--back" in names and "--feedback" in names:
        names.remove("--feedback")
    if len(names) > 1:
        fail(f"{names[0]} and {names[1]} cannot be combined: give one answer (only --back PHASE --feedback TEXT "
             "go together)")


def decision_from_flags(approve: bool, feedback: Optional[str], back: Optional[str], edit_plan: Optional[Path],
                        reject: bool, run_=None) -> Optional[dict]:
    """The answer the resume flags give (check_one_answer made sure there is at most one)."""
    if back:
        return {"action": "back", "phase": back, "text": feedback or ""}
    if edit_plan:
        from agentlab.cli.plan import current_plan, merged_plan, read_plan_file

        edited = read_plan_file(edit_plan)
        return {"action": "edit", "plan": merged_plan(current_plan(run_) if run_ else {}, edited, edit_plan)}
    if reject:
        return {"action": "reject"}
    if feedback is not None:
        return {"action": "feedback", "text": feedback}
    if approve:
        return {"action": "approve"}
    return None


def resume(
    run_id: str = typer.Argument(..., help="Run id (or a unique prefix)."),
    approve: bool = typer.Option(False, "--approve", help="Approve the pending checkpoint (or retry a stopped phase)."),
    feedback: Optional[str] = typer.Option(None, help="Feedback the next (or --back) phase must take into account."),
    back: Optional[BackPhase] = typer.Option(None, help=BACK_HELP),
    edit_plan: Optional[Path] = typer.Option(None, help="YAML/JSON file with the edited plan, whole or only the "
                                                        "fields to change (plan checkpoint; see agentlab plan)."),
    reject: bool = typer.Option(False, "--reject", help="End the run without accepting the report."),
    headless: bool = typer.Option(False, "--headless", help="Never prompt from now on; see --on-checkpoint "
                                                            "(default: as the run was started)."),
    interactive: bool = typer.Option(False, "--interactive", help="Prompt at checkpoints from now on (a run started "
                                                                  "--headless), even when stdin is not a terminal."),
    on_checkpoint: Optional[OnCheckpoint] = typer.Option(
        None, help="Headless, at later checkpoints: approve them, or park the run (exit; resume later)."),
    checkpoints: Optional[str] = typer.Option(None, help="From now on: " + stop_help()),
    max_cost: Optional[float] = typer.Option(None, help="New budget in USD (for the whole run)."),
    max_tokens: Optional[int] = typer.Option(None, help="New budget in tokens (for the whole run)."),
    max_minutes: Optional[float] = typer.Option(None, help="New budget in active minutes (for the whole run)."),
    base_url: Optional[str] = base_url_option(),
    model: Optional[str] = model_option(),
    papers: Optional[Path] = typer.Option(None, help="Your own reading list: a directory of PDFs and/or BibTeX."),
    offline: Optional[bool] = typer.Option(None, "--offline/--online", help="Use only cached/local papers."),
    sandbox: Optional[SandboxName] = typer.Option(None, help="Sandbox backend for experiment code from now on."),
    set_: Optional[list[str]] = typer.Option(None, "--set", help=SET_HELP),
    config: Optional[Path] = typer.Option(None, help=CONFIG_HELP + " Layered over the run's saved settings."),
    runs_dir: Optional[Path] = runs_dir_option(),
) -> None:
    """Continue a run from its last checkpoint, in this process."""
    from agentlab.runner import NeedsDecision, RunnerError, resume_run

    check_one_answer({"--approve": approve, "--reject": reject, "--back": back, "--edit-plan": edit_plan,
                      "--feedback": feedback})
    if headless and interactive:
        fail("--headless and --interactive cannot be combined: choose one")
    set_values = _settings_args(set_)
    run_ = open_run(run_id, runs_dir)
    decision = decision_from_flags(approve, feedback, value(back), edit_plan, reject, run_)
    if headless or interactive:
        run_.write_meta(headless=headless)
    quiet = headless or (not interactive and bool(run_.meta().get("headless")))
    if "unsafe-local" in (value(sandbox), set_values.get("sandbox")):
        warn_unsafe()
    try:
        outcome = resume_run(run_, decision, console=console, asker=asker_for(quiet, interactive),
                             config_file=config, set_values=set_values, overrides=overrides(
            max_cost=max_cost, max_tokens=max_tokens, max_minutes=max_minutes, base_url=base_url, model=model,
            sandbox=value(sandbox), on_checkpoint=value(on_checkpoint), checkpoints=checkpoints,
            papers_dir=str(papers.resolve()) if papers else None, offline=offline))
    except NeedsDecision as exc:
        fail(f"run {run_.id} waits at the {exc.payload['phase']} checkpoint and nobody was asked (headless): "
             f"give an answer, e.g.\n  agentlab resume {run_.id} --approve\n  agentlab resume {run_.id} "
             f"--feedback \"...\"\n  agentlab resume {run_.id} --back {exc.payload['phase']} --feedback \"...\"")
    except RunnerError as exc:
        fail(str(exc))
    finish(run_, outcome)
