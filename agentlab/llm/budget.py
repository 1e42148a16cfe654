"""Run budgets: cost, tokens, wall minutes. Checked before every LLM call."""

from __future__ import annotations

import time
from dataclasses import dataclass

from agentlab.errors import Resumable
from agentlab.llm.ledger import Ledger


class BudgetExceeded(Resumable, RuntimeError):
    stop_kind = "budget"

    def __init__(self, which: str, used: float, limit: float):
        self.which, self.used, self.limit = which, used, limit
        flag = {"cost": "--max-cost", "tokens": "--max-tokens", "minutes": "--max-minutes"}[which]
        super().__init__(
            f"{which} budget exhausted: used {used:g} of {limit:g}; raise it with `agentlab resume RUN {flag} N`"
        )


@dataclass
class Budget:
    max_cost: float | None = None
    max_tokens: int | None = None
    max_minutes: float | None = None
    minutes_before: float = 0.0  # active minutes spent by earlier processes of this run
    started: float = 0.0

    def __post_init__(self) -> None:
        self.started = self.started or time.monotonic()

    def minutes_used(self) -> float:
        return self.minutes_before + (time.monotonic() - self.started) / 60.0

    def check(self, ledger: Ledger) -> None:
        t = ledger.totals()
        if self.max_cost is not None and t["cost"] >= self.max_cost:
            raise BudgetExceeded("cost", t["cost"], self.max_cost)
        if self.max_tokens is not None and t["tokens"] >= self.max_tokens:
            raise BudgetExceeded("tokens", t["tokens"], self.max_tokens)
        if self.max_minutes is not None and self.minutes_used() >= self.max_minutes:
            raise BudgetExceeded("minutes", round(self.minutes_used(), 2), self.max_minutes)
