"""Run budgets: cost, tokens, active minutes. Hard limits, checked before every LLM call.

Before a request goes out, `LLM` estimates the most it can use (`Estimate`): its prompt in tokens
(`estimate_tokens`: the larger of chars/4 and words + punctuation marks, which errs high on JSON and
code, plus a few tokens per message) plus the request's `max_tokens`; that times the model's price;
and, for minutes, the longest of the model's last few call latencies. `Budget.reserve` refuses the call
with `BudgetExceeded` when what the run has used (the ledger, plus what calls in flight reserved) plus
that estimate would pass a limit, so a limit is not crossed (as far as the prompt estimate holds) and the
run stops before the call, resumably. Memoised calls never get here: they were paid for already.

`BudgetExceeded.payload` is the stop's `exceeded` field: `state["stop"]["exceeded"]`, the interrupt value's
`payload["exceeded"]` at the checkpoint, and `waiting.exceeded` in `agentlab status RUN --json` (the
payload's `budget` field is the checkpoint's used / limit table of every limit set):

  which      "tokens" | "cost" | "minutes": the limit that stopped the run
  setting    its Settings field, the key of a resume override: "max_tokens" | "max_cost" | "max_minutes"
  flag       its CLI flag: "--max-tokens" | "--max-cost" | "--max-minutes"
  used       what the run has spent (tokens; USD; active minutes, all processes of the run)
  limit      the limit in force
  estimate   the most the refused call could have used (0 when the limit was already reached)
  suggested  a new limit that lets the run go on: at least twice the old one and 1.5 x (used + estimate),
             rounded up to two significant digits (an int for tokens)

Prices (USD per 1M tokens, [input, output]) come from `prices.json` and the `prices` setting
(`price_table`). `check_prices` warns about a model the run uses that has no price (its calls count as
$0) and refuses `max_cost` then (`ConfigError`); the embedded model is free.
"""

from __future__ import annotations

import json
import math
import re
import threading
import time
from dataclasses import dataclass, field
from importlib import resources
from typing import Any

from agentlab.config import PHASES, ConfigError, Settings
from agentlab.errors import Resumable
from agentlab.llm.ledger import Ledger

FLAGS = {"tokens": "--max-tokens", "cost": "--max-cost", "minutes": "--max-minutes"}
SETTINGS = {"tokens": "max_tokens", "cost": "max_cost", "minutes": "max_minutes"}
MESSAGE_OVERHEAD = 4  # tokens a chat format adds per message (role, separators)
_TOKEN = re.compile(r"\w+|[^\w\s]")


def _plain(x: float) -> str:
    return str(x) if isinstance(x, int) else f"{x:.10f}".rstrip("0").rstrip(".")


def _show(which: str, x: float) -> str:
    return f"{_plain(round(float(x), 8))} USD" if which == "cost" else f"{_plain(round(float(x), 3))} min" if which == "minutes" else str(int(x))


def suggest_limit(which: str, used: float, limit: float, estimate: float) -> float:
    """A new limit: at least twice the old one and 1.5 x (used + estimate), rounded up to 2 significant digits."""
    want = max(2 * limit, 1.5 * (used + estimate))
    if want <= 0:
        return limit
    step = 10 ** (math.floor(math.log10(want)) - 1)
    out = math.ceil(round(want / step, 6)) * step
    return int(out) if which == "tokens" else round(out, 10)


class BudgetExceeded(Resumable, RuntimeError):
    stop_kind = "budget"

    def __init__(self, which: str, used: float, limit: float, estimate: float = 0.0, run_id: str = "RUN",
                 detail: str = ""):
        self.which, self.used, self.limit, self.estimate = which, used, limit, estimate
        self.suggested = suggest_limit(which, used, limit, estimate)
        flag = FLAGS[which]
        nxt = f", and the next call could use up to {_show(which, estimate)}{detail}" if estimate else ""
        super().__init__(
            f"{which} budget exhausted: used {_show(which, used)} of {_show(which, limit)}{nxt}; the call was "
            f"not made. Raise it with `agentlab resume {run_id} {flag} {_plain(self.suggested)}`")

    @property
    def payload(self) -> dict[str, Any]:
        """What a stop records about the limit (see the module docstring)."""
        return {"which": self.which, "setting": SETTINGS[self.which], "flag": FLAGS[self.which],
                "used": self.used, "limit": self.limit, "estimate": self.estimate, "suggested": self.suggested}


def estimate_tokens(text: str) -> int:
    """A cheap, high-leaning token count: max(chars/4, words + punctuation marks)."""
    return max(-(-len(text) // 4), sum(1 for _ in _TOKEN.finditer(text)))


def prompt_tokens(messages: list[dict], schema: dict | None = None) -> int:
    """The estimated prompt size of a chat request (its messages, and a response_format schema)."""
    n = 0
    for m in messages:
        content = m.get("content") or ""
        if isinstance(content, list):  # content parts
            content = " ".join(str(p.get("text", "")) if isinstance(p, dict) else str(p) for p in content)
        n += estimate_tokens(str(content)) + MESSAGE_OVERHEAD
    return n + (estimate_tokens(json.dumps(schema)) if schema else 0)


@dataclass(frozen=True)
class Estimate:
    """The most one call may use: prompt + reply tokens, their cost, and its minutes."""

    prompt: int = 0
    reply: int = 0
    cost: float = 0.0
    minutes: float = 0.0

    @property
    def tokens(self) -> int:
        return self.prompt + self.reply


@dataclass
class Budget:
    max_cost: float | None = None
    max_tokens: int | None = None
    max_minutes: float | None = None
    minutes_before: float = 0.0  # active minutes spent by earlier processes of this run
    started: float = 0.0
    _held: list = field(default_factory=lambda: [0, 0.0], init=False, repr=False, compare=False)  # in flight
    _lock: Any = field(default_factory=threading.Lock, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        self.started = self.started or time.monotonic()

    def minutes_used(self) -> float:
        return self.minutes_before + (time.monotonic() - self.started) / 60.0

    def limits(self) -> dict[str, float]:
        """The limits that are set: {"tokens": ..., "cost": ..., "minutes": ...}."""
        lim = {"tokens": self.max_tokens, "cost": self.max_cost, "minutes": self.max_minutes}
        return {k: v for k, v in lim.items() if v is not None}

    def check(self, ledger: Ledger, estimate: Estimate | None = None) -> None:
        """Raise BudgetExceeded when a limit is reached, or when `estimate` on top of it would pass one."""
        est = estimate or Estimate()
        t = ledger.totals()
        used = {"tokens": t["tokens"] + self._held[0], "cost": t["cost"] + self._held[1],
                "minutes": self.minutes_used()}
        need = {"tokens": est.tokens, "cost": est.cost, "minutes": est.minutes}
        run_id = ledger.path.parent.name if ledger.path is not None and ledger.path.name == "ledger.jsonl" else "RUN"
        for which, limit in self.limits().items():
            u, n = used[which], need[which]
            if u >= limit or u + n > limit:
                detail = f" (prompt ~{est.prompt} + reply up to {est.reply})" if which == "tokens" and n else ""
                u = round(u, 3) if which == "minutes" else round(u, 6) if which == "cost" else int(u)
                n = round(n, 3) if which == "minutes" else round(n, 6) if which == "cost" else int(n)
                raise BudgetExceeded(which, u, limit, n, run_id, detail)

    def reserve(self, ledger: Ledger, estimate: Estimate) -> Estimate:
        """Admit one call (or raise BudgetExceeded) and hold its estimate until `release`."""
        with self._lock:
            self.check(ledger, estimate)
            self._held[0] += estimate.tokens
            self._held[1] += estimate.cost
        return estimate

    def release(self, estimate: Estimate) -> None:
        """The call is over (its real usage is in the ledger): stop holding its estimate."""
        with self._lock:
            self._held[0] -= estimate.tokens
            self._held[1] -= estimate.cost


# ---- prices ------------------------------------------------------------------------------------

def default_prices() -> dict[str, list[float]]:
    data = json.loads(resources.files("agentlab.llm").joinpath("prices.json").read_text())
    data.pop("_comment", None)
    return data


def price_table(settings: Settings) -> dict[str, list[float]]:
    """prices.json, overridden and extended by the `prices` setting."""
    return {**default_prices(), **settings.prices}


def is_embedded(settings: Settings) -> bool:
    """The run talks to the embedded model (started when no endpoint is set; its URL is `embedded+http://...`)."""
    url = str(settings.base_url or "")
    return not url or url.split("://", 1)[0].startswith("embedded+") or settings.llm_backend == "embedded"


def check_prices(settings: Settings) -> list[str]:
    """Warnings for the models the run uses that have no price; ConfigError for a bad price, or for
    `max_cost` with a model that has none (it could not be enforced)."""
    for model, p in settings.prices.items():
        if not (isinstance(p, (list, tuple)) and len(p) == 2 and all(isinstance(x, (int, float)) and x >= 0
                                                                     for x in p)):
            raise ConfigError(f"prices: {model!r} must be [input, output] in USD per 1M tokens, e.g. [0.4, 1.6] "
                              f"(got {p!r})")
    if is_embedded(settings):
        return []
    table = price_table(settings)
    users: dict[str, list[str]] = {}
    for phase in PHASES:
        users.setdefault(settings.model_for(phase), []).append(phase)
    missing = {m: ps for m, ps in users.items() if m not in table}
    if not missing:
        return []
    names = ", ".join(f"{m!r} (used by {', '.join(ps) if len(ps) < len(PHASES) else 'every phase'})"
                      for m, ps in missing.items())
    example = json.dumps({m: ["IN", "OUT"] for m in missing}).replace('"IN"', "IN").replace('"OUT"', "OUT")
    first = json.dumps(next(iter(missing)))
    how = (f"give each a price in USD per 1M tokens, [IN, OUT]: --set prices='{example}', or {first} = [IN, OUT] in "
           f"the agentlab.prices table of agentlab.toml (a local model is free: [0, 0])")
    if settings.max_cost is not None:
        raise ConfigError(f"--max-cost {settings.max_cost:g} cannot be enforced: no price for model {names} in "
                          f"agentlab/llm/prices.json or the prices setting; {how}")
    return [f"no price for model {names}: its calls count as $0 in the ledger and a cost limit could not hold "
            f"them; {how}"]
