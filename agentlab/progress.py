"""Live progress per phase: status, elapsed time, tokens and cost so far (rich), or plain lines; under the
table (and after each phase in plain lines), each budget that is set as used / limit."""

from __future__ import annotations

import json
import time
from collections.abc import Mapping

from rich.console import Console, Group, RenderableType
from rich.live import Live
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from agentlab.llm.budget import Budget
from agentlab.llm.ledger import Ledger, LedgerEntry
from agentlab.phases.spec import phase_names


def recorded_rows(ledger: Ledger, phases: Mapping | None = None) -> dict[str, dict]:
    """The phase rows a (resumed) run starts from: each phase's recorded state and time (meta.json `phases`, see
    RunDir.record_phase; read from the ledger's run directory when not given). Done and stopped phases keep their
    status; one that was running when its process ended is pending again (it runs again)."""
    if phases is None and ledger.path is not None:
        try:
            phases = json.loads((ledger.path.parent / "meta.json").read_text()).get("phases")
        except (OSError, ValueError):
            phases = None
    rows = {p: {"status": "pending", "start": None, "elapsed": 0.0, "note": ""} for p in phase_names()}
    for p, rec in (phases or {}).items():
        if p in rows and isinstance(rec, Mapping):
            st = rec.get("status")
            rows[p].update(status=st if st in ("done", "stopped") else "pending",
                           elapsed=float(rec.get("elapsed") or 0.0))
    return rows


class Progress:
    def __init__(self, console: Console, ledger: Ledger, live: bool, phases: Mapping | None = None,
                 budget: Budget | None = None):
        self.console = console
        self.budget = budget
        t = ledger.totals()
        self.spent = [t["tokens"], t["cost"]]  # the whole run's (every phase, every process): the budgets' use
        self.rows = recorded_rows(ledger, phases)
        self.usage = {p: [0, 0.0] for p in phase_names()}
        for p, t in ledger.by_phase().items():
            if p in self.usage:
                self.usage[p] = [t["tokens"], t["cost"]]
        self._live = Live(self._view(), console=console, refresh_per_second=4, transient=False) if live else None

    def __enter__(self) -> "Progress":
        if self._live:
            self._live.start(refresh=True)  # at once: a resumed run shows its recorded phases before anything runs
        return self

    def __exit__(self, *exc) -> None:
        self.pause()

    def pause(self) -> None:
        if self._live and self._live.is_started:
            self._live.stop()

    def resume(self) -> None:
        if self._live and not self._live.is_started:
            self._live.start()

    def on_llm(self, e: LedgerEntry) -> None:
        self.spent[0] += e.prompt_tokens + e.completion_tokens
        self.spent[1] += e.cost
        if e.phase in self.usage:
            self.usage[e.phase][0] += e.prompt_tokens + e.completion_tokens
            self.usage[e.phase][1] += e.cost
        self._refresh()

    def on_phase(self, phase: str, msg: str) -> None:
        row = self.rows.get(phase)
        if row is None:
            return
        now = time.monotonic()
        if msg == "started":
            row.update(status="running", start=now, note="")
            names = list(self.rows)
            for later in names[names.index(phase) + 1:]:  # a `back` or a revision: what follows is redone
                if self.rows[later]["status"] != "running":
                    self.rows[later].update(status="pending", note="")
        elif msg == "done" or msg.startswith("stopped"):
            if row["start"] is not None:
                row["elapsed"] += now - row["start"]
            row.update(status="done" if msg == "done" else "stopped", start=None, note="" if msg == "done" else msg)
        else:
            row["note"] = msg
        if not self._live:
            tok, cost = self.usage[phase]
            extra = f" ({row['elapsed']:.1f}s, {tok} tokens, ${cost:.4f})" if msg == "done" else ""
            self.console.print(escape(f"[{phase}] {msg}{extra}"), highlight=False, soft_wrap=True)
            if msg == "done" and self.budget_line():
                self.console.print(escape(self.budget_line()), highlight=False, soft_wrap=True)
        self._refresh()

    def _refresh(self) -> None:
        if self._live and self._live.is_started:
            self._live.update(self._view())

    def budget_line(self) -> str:
        """`budget: tokens 1,200 / 3,000 · cost $0.0123 / $2.0000 · minutes 3.1 / 60.0` for the limits set, else ''."""
        limits = self.budget.limits() if self.budget is not None else {}
        if not limits or self.budget is None:
            return ""
        used = {"tokens": self.spent[0], "cost": self.spent[1], "minutes": self.budget.minutes_used()}
        show = {"tokens": lambda x: f"{int(x):,}", "cost": lambda x: f"${x:.4f}", "minutes": lambda x: f"{x:.1f}"}
        return "budget: " + " · ".join(f"{w} {show[w](used[w])} / {show[w](lim)}" for w, lim in limits.items())

    def _view(self) -> RenderableType:
        """The table, and under it the budgets' line when a limit is set."""
        line = self.budget_line()
        return Group(self._table(), Text(line, style="bold")) if line else self._table()

    def _table(self) -> Table:
        t = Table(title="AgentLab run", expand=False)
        for col in ("phase", "status", "elapsed", "tokens", "cost", "now"):
            t.add_column(col)
        tot_tok, tot_cost = 0, 0.0
        for p, row in self.rows.items():
            el = row["elapsed"] + (time.monotonic() - row["start"] if row["start"] else 0.0)
            tok, cost = self.usage[p]
            tot_tok, tot_cost = tot_tok + tok, tot_cost + cost
            style = {"running": "bold cyan", "done": "green", "stopped": "red"}.get(row["status"], "dim")
            t.add_row(p, f"[{style}]{row['status']}[/]", f"{el:.1f}s", str(tok), f"${cost:.4f}", row["note"][:60])
        t.add_row("total", "", "", str(tot_tok), f"${tot_cost:.4f}", "")
        return t
