"""`agentlab review RUN`: a person's look at the report, and the accept / revise / reject answer."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console

console = Console()


def review(
    run_id: str = typer.Argument(..., help="Run id (or a unique prefix)."),
    open_pdf: bool = typer.Option(False, "--open", help="Open the PDF with the desktop's viewer."),
    diff: bool = typer.Option(True, "--diff/--no-diff", help="Show the LaTeX diff between the last two revisions."),
    png: Optional[Path] = typer.Option(None, help="Render the pages to PNG files in this directory."),
    accept: bool = typer.Option(False, "--accept", help="Accept the report: the run ends."),
    revise: Optional[str] = typer.Option(None, "--revise", help="Send the report back with this feedback."),
    reject: bool = typer.Option(False, "--reject", help="Reject the report: the run ends, marked rejected."),
    runs_dir: Optional[Path] = typer.Option(None),
) -> None:
    """Show the report (PDF path, reviewer scores per revision, LaTeX diff, number traceability) and answer it."""
    from agentlab import cli
    from agentlab.report import human

    run_, root = cli._open_run(run_id, runs_dir)
    pdf = human.pdf_path(run_)
    console.print(f"PDF: {pdf if pdf else '(no compiled report yet)'}")
    human.scores_table(run_, console)
    if diff:
        human.latex_diff(run_, console=console)
    human.trace_table(run_, console)
    if png:
        for p in human.render_pages_png(run_, png):
            console.print(f"page: {p}")
    if open_pdf and pdf:
        opener = shutil.which("xdg-open") or shutil.which("open")
        if opener:
            subprocess.Popen([opener, str(pdf)])
        else:
            console.print("no desktop viewer found (xdg-open); open the path above")
    if sum([accept, bool(revise), reject]) > 1:
        cli._fail("choose one of --accept, --revise, --reject")
    if not (accept or revise or reject):
        return
    args = ["resume", run_.id, "--runs-dir", str(root), "--headless"]
    if accept:
        args.append("--approve")
    elif reject:
        args.append("--reject")
    else:
        args += ["--back", "write_report", "--feedback", revise]
    cli.app(args, standalone_mode=True)
