"""`agentlab review RUN`: a person's look at the report, and their accept / revise / reject answer.

It shows the review display (`agentlab.report.review_view`: PDF path, reviewer scores per revision,
LaTeX diff, number traceability, page images) and answers the review checkpoint through the runner
API (`agentlab.runner.resume_run`), exactly as `agentlab resume` would.
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
    revise: Optional[str] = typer.Option(None, "--revise", help="Send the report back with this feedback."),
    reject: bool = typer.Option(False, "--reject", help="Reject the report: the run ends, marked rejected."),
    runs_dir: Optional[Path] = runs_dir_option(),
) -> None:
    """Show the report (PDF path, reviewer scores per revision, LaTeX diff, number traceability, integrity checks) and answer it."""
    from agentlab.report import review_view as view

    if sum([accept, bool(revise), reject]) > 1:
        fail("choose one of --accept, --revise, --reject")
    run_ = open_run(run_id, runs_dir)
    pdf = view.pdf_path(run_)
    console.print(f"PDF: {pdf if pdf else '(no compiled report yet)'}")
    view.scores_table(run_, console)
    if diff:
        view.latex_diff(run_, console=console)
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


def answer(run: RunDir, decision: dict) -> None:
    """Answer the run's review checkpoint with `decision`, headless, and leave with the outcome's exit code."""
    from agentlab.runner import RunnerError, resume_run

    try:
        outcome = resume_run(run, decision, console=console, asker=None)
    except RunnerError as exc:
        fail(str(exc))
    finish(run, outcome)
