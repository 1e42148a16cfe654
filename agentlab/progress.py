"""Live progress per phase: status, elapsed time, tokens and cost so far (rich), or plain lines."""

from __future__ import annotations

import time

from rich.console import Console
from rich.live import Live
from rich.markup import escape
from rich.table import Table

from agentlab.llm.ledger import Ledger, LedgerEntry
from agentlab.phases.spec import phase_names


class Progress:
    def __init__(self, console: Console, ledger: Ledger, live: bool):
        self.console = console
        self.rows = {p: {"status": "pending", "start": None, "elapsed": 0.0, "note": ""} for p in phase_names()}
        self.usage = {p: [0, 0.0] for p in phase_names()}
        for p, t in ledger.by_phase().items():
            if p in self.usage:
                self.usage[p] = [t["tokens"], t["cost"]]
        self._live = Live(self._table(), console=console, refresh_per_second=4, transient=False) if live else None

    def __enter__(self) -> "Progress":
        if self._live:
            self._live.start()
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
        self._refresh()

    def _refresh(self) -> None:
        if self._live and self._live.is_started:
            self._live.update(self._table())

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
