"""The batch's live table (rich): one row per workflow, refreshed from the runs' meta and ledgers."""

from __future__ import annotations

import time

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from agentlab.batch.scheduler import Slot, resume_command
from agentlab.runs import RunDir

STYLE = {"done": "green", "running": "cyan", "parked": "yellow", "waiting": "magenta", "stopped": "red",
         "failed": "bold red", "interrupted": "red", "rejected": "yellow", "skipped": "dim", "queued": "dim"}


def _elapsed(s: Slot) -> str:
    if s.started is None:
        return ""
    sec = (s.ended or time.time()) - s.started
    return f"{int(sec // 60)}:{int(sec % 60):02d}"


def render(slots: list[Slot], title: str = "agentlab batch") -> Table:
    t = Table(title=title, expand=False)
    for col, width in (("workflow", 8), ("run", 12), ("phase", 10), ("status", 11), ("tokens", 6), ("cost", 7),
                       ("time", 5), ("note", 8)):
        t.add_column(col, overflow="fold", min_width=width)
    for s in slots:
        phase, tokens, cost = "", "", ""
        if s.run_path is not None:
            run = RunDir(s.run_path)
            phase = run.meta().get("phase", "")
            tot = run.ledger.totals()
            tokens, cost = str(tot["tokens"]), f"${tot['cost']:.4f}"
        st = STYLE.get(s.state, "")
        t.add_row(escape(s.wf.name), s.run_id or "", phase, f"[{st}]{s.state}[/]" if st else s.state, tokens, cost,
                  _elapsed(s), escape(s.note))
    return t


def print_summary(console: Console, slots: list[Slot]) -> None:
    """Final table plus, for every run that needs a person, the command that continues it."""
    console.print(render(slots, "agentlab batch: summary"))
    counts: dict[str, int] = {}
    for s in slots:
        counts[s.state] = counts.get(s.state, 0) + 1
    console.print(", ".join(f"{n} {k}" for k, n in sorted(counts.items())), highlight=False)
    todo = [s for s in slots if s.state in ("parked", "stopped") and s.run_id]
    if todo:
        console.print("\n[bold]Runs waiting for you:[/]")
        for s in todo:
            phase = (s.waiting or {}).get("phase", "")
            console.print(f"  {escape(s.wf.name)} ({s.state} at {phase}):  {resume_command(s)}", highlight=False)
    bad = [s for s in slots if s.state in ("failed", "interrupted")]
    if bad:
        console.print("\n[bold red]Failed runs[/] (their logs: runs/<id>/logs/run.log); "
                      "run the same `agentlab batch` again to continue them:")
        for s in bad:
            console.print(f"  {escape(s.wf.name)} {s.run_id or ''}: {escape(s.note)}", highlight=False)
