"""`agentlab review RUN`: a person's look at the report, and their accept / revise / reject answer.

It shows the review display (`agentlab.report.review_view`: PDF path, reviewer scores per revision,
LaTeX diff, number traceability, page images) and answers the review checkpoint through the runner
API (`agentlab.runner.resume_run`), exactly as `agentlab resume` would. An answer needs a run that waits
at its review checkpoint: a finished (accepted or rejected) run, or one waiting elsewhere, is refused (exit 2)
and nothing changes.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import TYPE_CHECKING, Optional

import typer

from agentlab.cli.common import console, fail, finish, open_run, runs_dir_option

if TYPE_CHECKING:
    from agentlab.runs import RunDir


def review(
    run_id: str = typer.Argument(..., help="Run id (or a unique prefix)."),
    open_pdf: bool = typer.Option(False, "--open", help="Open the PDF with the desktop's viewer."),
    diff: bool = typer.Option(True, "--diff/--no-diff", help="Show the LaTeX diff between the last two revisions."),
    png: Optional[Path] = typer.Option(None, help="Render the pages to PNG files in this directory."),
    accept: bool = typer.Option(False, "--accept", help="Accept the report: the run ends."),
    revise: Optional[str] = typer.Option(
        None, "--revise", help="Send the report back with this feedback: the report is rewritten and reviewed again, "
                               "then the run waits at the review checkpoint again. Only for a run waiting there: "
                               "a finished run (accepted or rejected) is refused (exit 2) and stays as it is."),
    reject: bool = typer.Option(False, "--reject", help="Reject the report: the run ends, marked rejected."),
    runs_dir: Optional[Path] = runs_dir_option(),
) -> None:
    """Show the report (PDF path, reviewer scores per revision, LaTeX diff, number traceability, integrity checks) and answer it.

    --accept, --revise and --reject answer the review checkpoint of a run that waits there; on a finished run
    (accepted or rejected) or one waiting elsewhere they are refused with exit 2, before anything is shown."""
    from agentlab.report import review_view as view

    if sum([accept, bool(revise), reject]) > 1:
        fail("choose one of --accept, --revise, --reject")
    run_ = open_run(run_id, runs_dir)
    flag = "--accept" if accept else "--reject" if reject else "--revise" if revise else None
    if flag:
        require_review_checkpoint(run_, flag)
    pdf = view.pdf_path(run_)
    console.print(f"PDF: {pdf if pdf else '(no compiled report yet)'}")
    view.scores_table(run_, console)
    if diff:
        view.latex_diff(run_, console=console)
    view.problems_list(run_, console)
    view.trace_table(run_, console)
    view.integrity_table(run_, console)
    if png:
        for p in view.render_pages_png(run_, png):
            console.print(f"page: {p}")
    if open_pdf and pdf:
        opener = shutil.which("xdg-open") or shutil.which("open")
        if opener:
            subprocess.Popen([opener, str(pdf)])
        else:
            console.print("no desktop viewer found (xdg-open); open the path above")
    if accept:
        answer(run_, {"action": "approve"})
    elif reject:
        answer(run_, {"action": "reject"})
    elif revise:
        from agentlab.phases import spec

        answer(run_, {"action": "back", "phase": spec.spec("review").revise or "write_report", "text": revise})


def require_review_checkpoint(run: RunDir, flag: str) -> None:
    """Leave with exit 2 unless `run` waits at its review checkpoint (a running run is the runner's to refuse)."""
    from agentlab.config import ConfigError, settings_from_run
    from agentlab.runner import pending_interrupt

    if run.effective_status() == "running":
        return
    try:
        payload, values = pending_interrupt(run, settings_from_run(run.settings_path, {}, validate=False))
    except ConfigError as exc:
        fail(str(exc))
    if values.get("done"):
        verdict = "rejected" if values.get("rejected") else "accepted"
        fail(f"run {run.id} is finished (the report was {verdict}): {flag} answers a run waiting at its review "
             f"checkpoint, so nothing changed. To work on the idea again, start a new run.")
    if not payload or payload.get("kind") != "checkpoint" or payload.get("phase") != "review":
        at = (f"it waits at the {payload.get('phase')} checkpoint" if payload and payload.get("kind") == "checkpoint"
              else f"it stopped in {payload.get('phase')} ({payload.get('kind')})" if payload
              else f"its status is {run.effective_status()}")
        fail(f"run {run.id} is not waiting at the review checkpoint ({at}): {flag} answers that checkpoint, so "
             f"nothing changed. See `agentlab status {run.id}`; `agentlab resume {run.id}` continues it.")


def answer(run: RunDir, decision: dict) -> None:
    """Answer the run's review checkpoint with `decision`, headless, and leave with the outcome's exit code."""
    from agentlab.runner import RunnerError, resume_run

    try:
        outcome = resume_run(run, decision, console=console, asker=None)
    except RunnerError as exc:
        fail(str(exc))
    finish(run, outcome)
