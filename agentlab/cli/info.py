"""`agentlab runs`, `agentlab status RUN` and `agentlab doctor`: look at runs and at this machine.

Both `runs` and `status` take a run's phase and status from one place (`agentlab.run_state.run_state`), and
print what a person should type next on lines of its own, kept whole at the terminal's width.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Optional

import typer
from rich.padding import Padding
from rich.table import Table
from rich.text import Text

from agentlab.cli.common import base_url_option, console, model_option, open_run, overrides, runs_dir_option, runs_root

if TYPE_CHECKING:
    from agentlab.run_state import RunState

STYLE = {"done": "green", "running": "cyan", "waiting": "magenta", "parked": "yellow", "stopped": "red",
         "interrupted": "red", "rejected": "yellow", "created": "dim"}
#: at narrow widths the runs table names these phases by their shorter accepted name (`--back literature`)
COMPACT = {"literature_review": "literature", "write_report": "report"}
NARROW = 100


def say(parts: list[str], indent: str = "") -> None:
    """Print `parts` (a sentence, then commands) as lines: joined while they fit the width, never split inside."""
    line = ""
    for p in parts:
        if line and len(line) + 1 + len(p) > console.width:
            console.print(Text(line), soft_wrap=True)
            line = indent + p
        else:
            line = f"{line} {p}" if line else p
    if line:
        console.print(Text(line), soft_wrap=True)


def _tokens(n: int) -> str:
    return str(n) if n < 10_000 else f"{n / 1000:.1f}k" if n < 1_000_000 else f"{n / 1e6:.1f}M"


def _cost(c: float) -> str:
    return "$0" if not c else f"${c:.4f}" if c < 1 else f"${c:.2f}"


def runs_table(rows: list[dict], width: int) -> Table:
    """One line per run at any width: short ids, topics cut with `…` to the room left by the other columns."""
    from agentlab.run_state import ago

    narrow = width < NARROW
    cells = [[r["short_id"], COMPACT.get(r["phase"], r["phase"]) if narrow else r["phase"], r["label"],
              ago(r.get("updated")), _tokens(r["tokens"]), _cost(r["cost"])] for r in rows]
    heads = ["id", "phase", "status", "updated", "tokens", "cost"]
    widths = [max([len(h), *(len(c[i]) for c in cells)]) for i, h in enumerate(heads)]
    gap = 1 if narrow else 2
    room = max(8, width - sum(widths) - gap * len(heads))
    t = Table(box=None, pad_edge=False, padding=(0, 1), collapse_padding=narrow, show_edge=False,
              header_style="bold")
    t.add_column("id", no_wrap=True, min_width=widths[0])
    t.add_column("topic", no_wrap=True, overflow="ellipsis", max_width=room)
    for h, w in zip(heads[1:], widths[1:]):
        t.add_column(h, no_wrap=True, overflow="ellipsis", min_width=w,
                     justify="right" if h in ("tokens", "cost") else "left")
    for r, c in zip(rows, cells):
        topic = " ".join(str(r.get("topic") or "").split())
        topic = topic if len(topic) <= room else topic[: room - 1] + "…"
        st = STYLE.get(r["status"], "")
        t.add_row(c[0], Text(topic), c[1], Text(c[2], style=st), *c[3:])
    return t


def runs(
    runs_dir: Optional[Path] = runs_dir_option(),
    as_json: bool = typer.Option(False, "--json", help="Print every run as JSON (full ids, all fields) instead of "
                                                       "the table."),
) -> None:
    """List runs: id, topic, phase, status, tokens, cost."""
    from agentlab.run_state import runs_listing

    root = runs_root(runs_dir)
    rows = runs_listing(root)
    if as_json:
        print(json.dumps(rows, indent=2, default=str))
        return
    if not rows:
        say([f"no runs in {root} yet:", 'agentlab run "your research idea"'], indent="  ")
        return
    console.print(runs_table(rows, console.width), soft_wrap=False)


def next_commands(st: RunState, cid: str) -> tuple[str, list[str]]:
    """(what to do, the commands to type) for a run in state `st`; `cid` is the id to put in them."""
    from agentlab.run_state import budget_flag

    if st.status == "waiting":
        at = f"the {st.checkpoint} checkpoint" if st.kind in ("", "checkpoint") else f"the {st.kind} stop in {st.phase}"
        return (f"a person is being asked at {at} in the terminal of process {st.pid}: answer there (or stop it "
                f"with Ctrl-C and resume later)", [])
    if st.status == "running":
        return f"running in process {st.pid}; look again with:", [f"agentlab status {cid}"]
    if st.status == "stopped" and st.kind == "budget":
        flag, n = budget_flag(st)
        return "raise the budget and go on:", [f"agentlab resume {cid} {flag} {n}"]
    if st.status == "stopped" and st.kind == "checkpoint" or st.status == "parked" and st.phase == "review":
        return "see the report, then answer it:", [
            f"agentlab review {cid}", f"agentlab review {cid} --accept" if st.status == "parked" else
            f'agentlab resume {cid} --back write_report --feedback "..."', f'agentlab review {cid} --revise "..."']
    if st.status == "stopped":
        return "fix what the message says, then retry the phase:", [f"agentlab resume {cid}"]
    if st.status == "parked":
        from agentlab.phases.spec import phase_names

        names = phase_names()
        before = names[names.index(st.phase) - 1] if st.phase in names[1:] else ""
        return "answer the checkpoint:", [f"agentlab resume {cid} --approve", f'agentlab resume {cid} --feedback "..."',
                                          *([f'agentlab resume {cid} --back {before} --feedback "..."'] if before
                                            else [])]
    if st.status in ("interrupted", "created"):
        return "continue it from its last checkpoint:", [f"agentlab resume {cid}"]
    if st.status == "done":
        return "the run is finished; read the report:", [f"agentlab review {cid}"]
    return "the report was rejected; the run has ended.", []


def _usage(run_, st: RunState) -> list[dict]:
    """Per phase, in run order: its recorded status and time, and its tokens, cost and calls from the ledger."""
    from agentlab.phases.spec import phase_names
    from agentlab.run_state import phase_time

    by = run_.ledger.by_phase()
    rows = []
    for p in [*phase_names(), *sorted(set(by) - set(phase_names()))]:
        rec, led = st.phases.get(p), by.get(p, {})
        if rec is None and not led:
            continue
        rows.append({"phase": p, "status": (rec or {}).get("status", ""), "time_s": phase_time(rec),
                     "tokens": led.get("tokens", 0), "cost": led.get("cost", 0.0), "calls": led.get("calls", 0)})
    return rows


def _usage_table(rows: list[dict]) -> Table:
    from agentlab.run_state import duration

    t = Table(box=None, pad_edge=False, padding=(0, 1), show_edge=False, header_style="bold")
    for col in ("phase", "status", "time", "tokens", "cost"):
        t.add_column(col, no_wrap=True, justify="right" if col in ("time", "tokens", "cost") else "left")
    for r in rows:
        t.add_row(r["phase"], r["status"] or "-", duration(r["time_s"]), str(r["tokens"]), _cost(r["cost"]))
    times = [r["time_s"] for r in rows if r["time_s"] is not None]
    t.add_row(Text("total", style="bold"), "", duration(sum(times)) if times else "-",
              str(sum(r["tokens"] for r in rows)), _cost(sum(r["cost"] for r in rows)))
    return t


def _field(key: str, val: str, style: str = "") -> None:
    """`key     value`, the value wrapped at spaces (a `backticked command` is never split) under itself."""
    from agentlab.cli.prompt import wrap_prose

    lines = wrap_prose(" ".join(str(val).split()), max(20, console.width - 10)).splitlines() or [""]
    for i, line in enumerate(lines):
        out = Text(f"  {key:<8}" if i == 0 else " " * 10, style="bold")
        out.append(line, style=style)
        console.print(out, soft_wrap=True)


def _show(info: dict, st: RunState, usage: list[dict], cid: str) -> None:
    from agentlab.run_state import ago

    console.print(Text(f"Run {info['id']}", style="bold"), soft_wrap=False)
    where = st.phase or "(not started)"
    if st.stage:
        where += f", stage {st.stage}"
    fields = [("topic", info.get("topic") or ""), ("where", where), ("status", st.label)]
    if st.message:
        fields.append(("why", st.message.replace(info["id"], cid)))
    fields += [("updated", ago(info.get("updated")) or "-"), ("papers", str(info["papers"]))]
    if info.get("report"):
        fields.append(("report", f"{info['report']} (revision {info.get('revision')})"))
    for key, val in fields:
        _field(key, val, STYLE.get(st.status, "") if key == "status" else "")
    if usage:
        console.print(Text("\nUsage per phase", style="bold"))
        console.print(Padding(_usage_table(usage), (0, 0, 0, 2)), soft_wrap=False)
    stages = (info.get("experiment") or {}).get("stages") or {}
    if stages:
        console.print(Text("\nExperiment stages", style="bold"))
        for name, s in stages.items():
            extra = f", best {s['best']}" if s.get("best") else f": {s['reason']}" if s.get("reason") else ""
            console.print(Text(f"  {name}: {s.get('status')}{extra}"), soft_wrap=False)
    problems = info.get("problems") or []
    if problems:
        console.print(Text(f"\nReport problems (revision {info.get('problems_revision')}): {len(problems)}",
                           style="bold yellow"))
        for p in problems:
            console.print(Text(f"  - {p}"), soft_wrap=False)
    what, commands = next_commands(st, cid)
    console.print(Text("\nNext: " + what, style="bold"), soft_wrap=False)
    for c in commands:
        say([f"  {c}"])


def status(
    run_id: str = typer.Argument(..., help="Run id (or a unique prefix)."),
    runs_dir: Optional[Path] = runs_dir_option(),
    as_json: bool = typer.Option(False, "--json", help="Print the run's state as JSON (for scripts) instead of the "
                                                       "summary."),
) -> None:
    """Show one run: where it is, what it waits for, usage per phase, experiment stages, report."""
    from agentlab.config import settings_from_run
    from agentlab.phases.spec import spec
    from agentlab.report.review_view import report_problems
    from agentlab.run_state import command_id, run_state
    from agentlab.runner import pending_interrupt

    run_ = open_run(run_id, runs_dir)
    try:
        payload, values = pending_interrupt(run_, settings_from_run(run_.settings_path, validate=False))
    except Exception:  # a database another process holds, a run of an older version: meta.json alone
        payload, values = None, {}
    st = run_state(run_, pending=payload, values=values)
    meta, cid = run_.meta(), command_id(run_)
    rev, problems = report_problems(run_)
    usage = _usage(run_, st)
    info = {"id": run_.id, "short_id": cid, "path": str(run_.path), "topic": meta.get("topic"),
            "status": st.status, "label": st.label, "phase": st.phase, "stage": st.stage, "kind": st.kind,
            "message": st.message, "waiting": payload or st.waiting, "pid": st.pid,
            "created": meta.get("created"), "updated": meta.get("updated"),
            "usage": run_.ledger.totals(), "usage_by_phase": {r["phase"]: r for r in usage},
            "papers": len(values.get("papers") or []), "experiment": spec("experiment").summary(values),
            "report": (values.get("report") or {}).get("pdf"), "revision": values.get("revision"),
            "problems": problems, "problems_revision": rev, "next": next_commands(st, cid)[1]}
    if as_json:
        print(json.dumps(info, indent=2, default=str))
        return
    _show(info, st, usage, cid)


def doctor(base_url: Optional[str] = base_url_option(), model: Optional[str] = model_option()) -> None:
    """Report what is present and what is missing, with the exact fix for each."""
    from agentlab.config import load_settings
    from agentlab.doctor import exit_code, run_checks, verdict

    settings = load_settings(None, overrides(base_url=base_url, model=model))
    t = Table(title="agentlab doctor")
    for col in ("check", "", "detail", "fix"):
        t.add_column(col, overflow="fold")
    checks = run_checks(settings)
    for c in checks:
        t.add_row(c.name, "[green]ok[/]" if c.ok else "[red]missing[/]", c.detail, c.fix)
    console.print(t)
    console.print(verdict(checks), highlight=False)
    raise typer.Exit(exit_code(checks))  # 1: a required check failed (endpoint, sandbox): a run could not start
