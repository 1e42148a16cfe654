"""The review display: what `agentlab review RUN` shows a person, read from the run directory alone.

PDF path, reviewer scores per revision, the LaTeX diff between revisions, number traceability and
page images; no graph, no LLM.

Each function takes a RunDir; the ones that show something also print it when given a rich Console,
and return the data (or the rich renderable) so callers and tests can use it.
"""

from __future__ import annotations

import difflib
import json
import shutil
import subprocess
from pathlib import Path

import git
from rich.console import Console
from rich.syntax import Syntax
from rich.table import Table
from rich.text import Text

from agentlab.report import integrity
from agentlab.report.reviewer import load_reviews
from agentlab.report.writer import report_dir
from agentlab.runs import RunDir


def pdf_path(run: RunDir) -> Path | None:
    """The compiled report, or None if there is none yet."""
    p = report_dir(run) / "main.pdf"
    return p if p.exists() else None


def revisions(run: RunDir) -> list[int]:
    """Revisions with a tagged commit (report-rev-N), ascending."""
    if not (run.repo_dir / ".git").exists():
        return []
    revs = []
    for t in git.Repo(run.repo_dir).tags:
        if t.name.startswith("report-rev-") and t.name[11:].isdigit():
            revs.append(int(t.name[11:]))
    return sorted(revs)


def scores_table(run: RunDir, console: Console | None = None) -> Table:
    """Reviewer scores per revision (each reviewer, then the mean) and the decision."""
    table = Table(title="Reviewer scores per revision")
    for col in ("rev", "reviewer", "soundness", "presentation", "contribution", "overall", "confidence", "decision"):
        table.add_column(col, justify="right" if col not in ("reviewer", "decision") else "left")
    rounds = load_reviews(run)
    for rnd in rounds:
        for i, r in enumerate(rnd.get("reviews", []), 1):
            table.add_row(str(rnd["revision"]), f"#{i}", *(str(r.get(k, "")) for k in
                          ("soundness", "presentation", "contribution", "overall", "confidence")), "")
        table.add_row(str(rnd["revision"]), "[b]mean[/b]", *(str(rnd.get("scores", {}).get(k, "")) for k in
                      ("soundness", "presentation", "contribution")), f"[b]{rnd.get('overall')}[/b]",
                      str(rnd.get("scores", {}).get("confidence", "")), rnd.get("decision", ""), end_section=True)
    if console is not None:
        console.print(table if rounds else "no reviews yet")
        if rounds and rounds[-1].get("meta"):
            meta = rounds[-1]["meta"]
            console.print(f"[b]Meta-review (revision {rounds[-1]['revision']}):[/b] {meta.get('summary', '')}")
            for w in meta.get("weaknesses", [])[:6]:
                console.print(f"  - {w}")
    return table


def _tex_at(run: RunDir, rev: int) -> str:
    repo = git.Repo(run.repo_dir)
    try:
        return repo.git.show(f"report-rev-{rev}:report/main.tex")
    except git.GitCommandError:
        return ""


def latex_diff(run: RunDir, rev_a: int | None = None, rev_b: int | None = None,
               console: Console | None = None) -> str:
    """Unified diff of report/main.tex between two revisions (default: the last two); '' if < 2."""
    revs = revisions(run)
    if rev_b is None:
        rev_b = revs[-1] if revs else None
    if rev_a is None and rev_b is not None:
        rev_a = max((r for r in revs if r < rev_b), default=None)
    if rev_a is None or rev_b is None:
        if console is not None:
            console.print("fewer than two revisions so far: no LaTeX diff")
        return ""
    a, b = _tex_at(run, rev_a), _tex_at(run, rev_b)
    diff = "".join(difflib.unified_diff(a.splitlines(keepends=True), b.splitlines(keepends=True),
                                        fromfile=f"revision {rev_a}/main.tex", tofile=f"revision {rev_b}/main.tex"))
    if console is not None:
        console.print(Syntax(diff, "diff", word_wrap=True) if diff else f"no changes between revisions {rev_a} and {rev_b}")
    return diff


def load_trace(run: RunDir, rev: int | None = None) -> list[dict]:
    """The traceability rows of one revision (default: the latest), [] if none was written."""
    d = report_dir(run)
    files = sorted(d.glob("trace-rev-*.json"), key=lambda p: int(p.stem.rsplit("-", 1)[1]))
    if rev is not None:
        files = [p for p in files if p.stem == f"trace-rev-{rev}"]
    return json.loads(files[-1].read_text()) if files else []


def trace_note(run: RunDir, rev: int | None = None) -> str:
    """What is true when there is no traceability row to show: no report yet, or a report with no rendered number."""
    files = sorted(report_dir(run).glob("trace-rev-*.json"))
    if rev is not None:
        files = [p for p in files if p.stem == f"trace-rev-{rev}"]
    if not files:
        return "no report yet: nothing to trace" if rev is None else f"no report revision {rev}: nothing to trace"
    n = rev if rev is not None else max(int(p.stem.rsplit("-", 1)[1]) for p in files)
    return f"the report (revision {n}) has no rendered numbers: nothing to trace"


def report_problems(run: RunDir) -> tuple[int | None, list[str]]:
    """(the latest revision, the problems its writing met: tables or figures dropped, captions replaced, sentences
    removed, ...); (None, []) before the first report. Read from report/sections.json."""
    try:
        data = json.loads((report_dir(run) / "sections.json").read_text())
    except (OSError, ValueError):
        return None, []
    return data.get("revision"), [str(p) for p in data.get("problems") or []]


def problems_list(run: RunDir, console: Console | None = None) -> list[str]:
    """Print the latest revision's report problems (each one, not only their count); returns them."""
    rev, problems = report_problems(run)
    if console is not None and rev is not None:
        console.print(f"[b]Report problems (revision {rev}):[/b] {len(problems) or 'none'}")
        for p in problems:
            console.print(Text(f"  - {p}"), soft_wrap=False)
    return problems


def trace_table(run: RunDir, console: Console | None = None, rev: int | None = None) -> Table:
    """Every number in the report with its source (untraced ones first, in red)."""
    rows = load_trace(run, rev)
    rows = sorted(rows, key=lambda r: r.get("status") == "ok")
    table = Table(title=f"Numbers and their sources ({sum(r['status'] != 'ok' for r in rows)} untraced of {len(rows)})")
    for col in ("number", "where", "source", "status"):
        table.add_column(col, overflow="fold")
    for r in rows:
        status = "[green]ok[/green]" if r["status"] == "ok" else f"[red]{r['status']} (not in the PDF)[/red]"
        table.add_row(r["number"], r.get("section", ""), r.get("source") or r.get("context", ""), status)
    if console is not None:
        console.print(table if rows else trace_note(run, rev))
    return table


def integrity_table(run: RunDir, console: Console | None = None) -> Table:
    """The audit trail (report/integrity.jsonl): what was flagged, what the writer sent back, what was decided;
    the latest revision's open problems first (they block acceptance)."""
    records = integrity.read(report_dir(run) / "integrity.jsonl")
    summ = integrity.summary(records)
    table = Table(title=f"Integrity checks (revision {summ['revision']}: {summ['flagged']} flagged, {summ['fixed']} "
                        f"fixed by the writer, {summ['dropped']} sentence(s) removed, {len(summ['open'])} open)")
    for col in ("rev", "where", "event", "kind", "claim", "message / replacement", "decision"):
        table.add_column(col, overflow="fold")
    opened = integrity.open_problems(records)
    for r in opened + [r for r in records if r not in opened][-200:]:
        decision = r.get("decision") or ""
        style = {"open": "[red]open[/red]", "dropped": "[yellow]dropped[/yellow]", "fixed": "[green]fixed[/green]"}
        table.add_row(str(r.get("revision", "")), str(r.get("section", "")), r.get("event", ""), r.get("kind", ""),
                      str(r.get("claim", ""))[:200], str(r.get("message") or r.get("replacement") or "")[:300],
                      style.get(decision, decision))
    if console is not None:
        console.print(table if records else "no integrity records yet")
        for p in summ["open"]:
            console.print(f"[red]open:[/red] {p}")
    return table


def render_pages_png(run: RunDir, out_dir: Path, dpi: int = 80) -> list[Path]:
    """The PDF's pages as PNG files (pdftoppm) for a quick look; [] without a PDF or pdftoppm."""
    pdf = pdf_path(run)
    if pdf is None or not shutil.which("pdftoppm"):
        return []
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    subprocess.run(["pdftoppm", "-png", "-r", str(dpi), str(pdf), str(out_dir / "page")], check=True,
                   capture_output=True, timeout=120)
    return sorted(out_dir.glob("page*.png"))
