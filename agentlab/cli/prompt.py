"""The terminal checkpoint prompt: show what a paused run waits on and read a person's answer.

`make_asker(console)` returns the function the runner calls at every checkpoint (or stop) when a
person is at the terminal. It takes exactly the answers the option line shows (`[a]pprove`,
`[f]eedback <text>`, `[b]ack <phase> [text]`, `[e]dit`, `reject`, `[r]etry`, `raise <tokens|cost|minutes> N`:
the word or its bracketed letter), asks before a reject, and checks every answer with the checkpoint
node's own validator before it goes back to the graph. Text is wrapped to the terminal so that no
option or `command` is ever split across lines.
"""

from __future__ import annotations

import json
import math
import os
import re
import subprocess
import tempfile
from collections.abc import Callable
from pathlib import Path

import typer
import yaml
from pydantic import ValidationError
from rich.console import Console
from rich.panel import Panel
from rich.prompt import Prompt
from rich.text import Text

from agentlab.phases.checkpoint import BUDGETS, BadDecision, offered, refusal, validate_decision, where
from agentlab.schemas import Plan

Asker = Callable[[dict], dict]
#: one-letter shortcuts, shown in the option line as `[a]pprove` (reject and raise have none: type them out)
SHORTCUTS = {"approve": "a", "feedback": "f", "back": "b", "edit": "e", "retry": "r"}
CONFIRM_REJECT = "reject ends the run without accepting the report; type yes to confirm"
#: the fields the inline edit asks, in order (the others are kept; $EDITOR edits them all)
TEXT_FIELDS = ("title", "hypothesis", "method", "experiment_outline")
JSON_FIELDS = ("metrics",)
TRIES = 20


# ---- showing ----------------------------------------------------------------------------------------

def wrap_units(units: list[str], width: int, sep: str = " ") -> list[str]:
    """Greedy wrap that never splits a unit (a word, a `command`, an option): lines of at most `width`
    characters, except a unit that is longer on its own."""
    lines: list[str] = []
    line = ""
    # a unit too long for any line (a command with a long run id) is broken between its words, never inside one
    units = [w for u in units for w in (u.split(" ") if len(u) > width else [u])]
    for u in units:
        if line and len(line) + len(sep) + len(u) > width:
            lines.append(line.rstrip())
            line = u
        else:
            line = f"{line}{sep}{u}" if line else u
    if line:
        lines.append(line.rstrip())
    return lines


def wrap_prose(text: str, width: int) -> str:
    """`text` wrapped to `width` at spaces, each `backticked command` kept whole on one line."""
    out: list[str] = []
    for para in text.splitlines():
        units = re.findall(r"\S*`[^`]*`\S*|\S+", para)
        out.extend(wrap_units(units, width) if units else [""])
    return "\n".join(out)


def option_label(option: str) -> str:
    """`feedback <text>` as the option line shows it: `[f]eedback <text>`."""
    word, _, rest = option.partition(" ")
    key = SHORTCUTS.get(word)
    label = f"[{key}]{word[1:]}" if key and word.startswith(key) else word
    if word == "back":
        rest = f"{rest} [text]".strip()
    return f"{label} {rest}".strip()


def option_lines(payload: dict, width: int) -> list[str]:
    """The `answer: ...` line(s), broken only between options."""
    labels = [option_label(o) for o in offered(payload)]
    units = [f"answer: {labels[0]}"] + [f"| {lb}" for lb in labels[1:]] if labels else ["answer: (none)"]
    return wrap_units(units, width)


def _number(v: object, which: str) -> str:
    if v is None:
        return "none"
    if not isinstance(v, (int, float)):
        return str(v)
    return f"${float(v):.4f}" if which == "cost" else f"{float(v):.2f}" if which == "minutes" else str(int(v))


def budget_lines(payload: dict) -> list[str]:
    """The used / limit table a budget stop shows, the limit that stopped the run marked."""
    budget = payload.get("budget") or {}
    ex = payload.get("exceeded") if isinstance(payload.get("exceeded"), dict) else {}
    lines = [f"{'budget':<10}{'used':>14}{'limit':>14}"]
    for which in BUDGETS:
        b = budget.get(which) or {}
        used, limit = b.get("used"), b.get("limit")
        out = isinstance(used, (int, float)) and isinstance(limit, (int, float)) and used >= limit
        mark = "  exhausted" if out else "  the next call would pass it" if ex.get("which") == which else ""
        lines.append(f"{which:<10}{_number(used, which):>14}{_number(limit, which):>14}{mark}")
    return lines


def show_payload(console: Console, payload: dict) -> None:
    """Print what the run waits on (the phase's summary or the stop's message) and the possible answers."""
    title = f"{payload['kind']} after {payload['phase']}" if payload["kind"] == "checkpoint" else \
        f"run stopped in {payload['phase']} ({payload['kind']})"
    inner = max(20, console.width - 4)  # the panel's border and padding
    if payload.get("message"):
        body = wrap_prose(str(payload["message"]).strip(), inner)
    else:
        body = yaml.safe_dump(payload.get("summary", {}), sort_keys=False, allow_unicode=True,
                              width=max(20, inner - 2)).strip()
    if isinstance(payload.get("budget"), dict):
        body += "\n\n" + "\n".join(budget_lines(payload))
        body += "\n\n" + wrap_prose(f"To go on here, answer `{raise_example(payload)}` (or any N).", inner)
    console.print(Panel(Text(body or "(nothing to show)"), title=title, border_style="yellow"), soft_wrap=False)
    say(console, option_lines(payload, console.width))


def say(console: Console, lines: list[str] | str, style: str = "") -> None:
    """Print plain lines (no markup: `[a]pprove` stays as it is)."""
    for line in [lines] if isinstance(lines, str) else lines:
        console.print(Text(line, style=style), soft_wrap=False)


# ---- reading ----------------------------------------------------------------------------------------

def raise_example(payload: dict) -> str:
    """`raise tokens 2000`: the exhausted budget and the suggested new limit (twice the used one without it)."""
    ex = payload.get("exceeded") if isinstance(payload.get("exceeded"), dict) else {}
    usage = payload.get("budget") if isinstance(payload.get("budget"), dict) else {}
    which = ex.get("which") or next((w for w, b in usage.items() if isinstance(b, dict) and b.get("limit") is not None
                                     and (b.get("used") or 0) >= b["limit"]), "tokens")
    n = ex.get("suggested") if ex.get("which") == which else None
    if not isinstance(n, (int, float)):
        used = (usage.get(which) or {}).get("used")
        n = 2 * used if isinstance(used, (int, float)) and used > 0 else 1000000 if which == "tokens" else 10
    return f"raise {which} {int(n) if which == 'tokens' else f'{float(n):g}'}"


def parse_raise(rest: str, payload: dict) -> dict:
    """`tokens 500000 [cost 5 ...]` as {"action": "retry", "settings": {"max_tokens": 500000, ...}}."""
    words = rest.split()
    example = raise_example(payload)
    if not words or len(words) % 2:
        raise BadDecision(f"say which budget to raise and its new limit, e.g. {example}")
    out: dict[str, float] = {}
    for name, num in zip(words[::2], words[1::2]):
        key = BUDGETS.get(name.lower().removeprefix("--max-").removeprefix("max_"))
        if key is None:
            raise BadDecision(f"unknown budget {name!r}: raise one of {', '.join(BUDGETS)}, e.g. {example}")
        try:
            out[key] = float(num.lstrip("$").replace("_", "").replace(",", ""))
        except ValueError:
            out[key] = math.nan
        if not math.isfinite(out[key]):
            raise BadDecision(f"{num!r} is not a number, e.g. {example}")
    return {"action": "retry", "settings": {k: int(v) if k == "max_tokens" and v == int(v) else v
                                            for k, v in out.items()}}


def parse_answer(line: str, payload: dict) -> dict:
    """One typed line (`approve`, `f some feedback`, `back plan why`, `raise tokens 90000`) as a decision dict.
    Only the answers offered here are taken, by their word or their bracketed letter."""
    word, _, rest = line.strip().partition(" ")
    word = word.lower()
    words = [o.split()[0] for o in offered(payload) if o.split()]
    if word not in words:
        word = next((w for w in words if SHORTCUTS.get(w) == word), word)
    if not word:
        raise refusal("an empty line", payload)
    if word not in words:
        raise refusal(repr(word), payload)
    rest = rest.strip()
    if word == "raise":
        return parse_raise(rest, payload)
    if word == "feedback":
        return {"action": "feedback", "text": rest}
    if word == "back":
        phase, _, text = rest.partition(" ")
        return {"action": "back", "phase": phase, "text": text.strip()}
    return {"action": word}


def _edit_in_editor(text: str, editor: str) -> str | None:
    """Open `text` in the person's $EDITOR (a shell command line, as git and click run it); None if unchanged."""
    with tempfile.TemporaryDirectory(prefix="agentlab-edit-") as tmp:
        path = Path(tmp) / "plan.yaml"
        path.write_text(text)
        result = subprocess.run(f'{editor} "{path}"', shell=True)
        if result.returncode != 0:
            raise BadDecision(f"the editor ({editor}) exited with status {result.returncode}; the plan is unchanged")
        edited = path.read_text()
    return None if edited == text else edited


def field_error(plan: dict, key: str, value: object) -> str | None:
    """What is wrong with `value` as the plan's `key` (only that field's errors), or None."""
    try:
        Plan.model_validate({**plan, key: value})
    except ValidationError as exc:
        errs = [e for e in exc.errors() if e.get("loc") and e["loc"][0] == key]
        if errs:
            return "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in errs)
    return None


def ask_field(console: Console, plan: dict, key: str) -> object:
    """One field of the plan, asked until it is valid (Enter keeps it); only this field is asked again."""
    is_json = key in JSON_FIELDS
    current = plan.get(key, [] if is_json else "")
    default = json.dumps(current) if is_json else str(current or "")
    for _ in range(TRIES):
        raw = Prompt.ask(f"{key}{' as JSON' if is_json else ''}", default=default, console=console)
        if raw == default:
            return current
        try:
            value = json.loads(raw) if is_json else raw
        except json.JSONDecodeError as exc:
            say(console, f"{key}: not JSON ({exc}); type it again, or Enter to keep it", "red")
            continue
        problem = field_error(plan, key, value)
        if problem is None:
            return value
        say(console, f"{problem}; type {key} again, or Enter to keep it", "red")
    raise typer.Abort()


def edit_plan(console: Console, plan: dict) -> dict | None:
    """The plan after the person edited it: in $VISUAL/$EDITOR if set, else field by field at the prompt.
    None when nothing changed."""
    text = yaml.safe_dump(plan, sort_keys=False, allow_unicode=True, width=100)
    editor = os.environ.get("VISUAL") or os.environ.get("EDITOR")
    if editor:
        edited = _edit_in_editor(text, editor)
        return yaml.safe_load(edited) if edited else None
    say(console, "No $EDITOR set: edit the plan inline (Enter keeps a field).")
    out = dict(plan)
    for key in (*TEXT_FIELDS, *JSON_FIELDS):
        out[key] = ask_field(console, out, key)
    return None if all(out.get(k) == plan.get(k) for k in out) else out


def _confirm_reject(console: Console) -> bool:
    if Prompt.ask(CONFIRM_REJECT, default="", console=console).strip().lower() == "yes":
        say(console, "rejected: the run ends here; the report is not accepted.")
        return True
    say(console, "not rejected; still at the review checkpoint.")
    return False


def make_asker(console: Console) -> Asker:
    """The function that asks a person at the terminal, until a valid answer (20 tries, then abort)."""

    def ask(payload: dict) -> dict:
        show_payload(console, payload)
        for _ in range(TRIES):
            try:
                line = Prompt.ask("[bold]your answer[/]", console=console)
            except EOFError:
                raise typer.Abort() from None
            try:
                decision = parse_answer(line, payload)
                if decision["action"] == "back" and not decision.get("text"):
                    decision["text"] = Prompt.ask("feedback for that phase (optional)", default="", console=console)
                if decision["action"] == "edit":
                    plan = edit_plan(console, (payload.get("summary") or {}).get("plan") or {})
                    if plan is None:
                        say(console, f"no change; still at {where(payload)}.")
                        say(console, option_lines(payload, console.width))
                        continue
                    decision["plan"] = plan
                decision = validate_decision(decision, payload)
                if decision["action"] == "reject" and not _confirm_reject(console):
                    continue
                return decision
            except (BadDecision, yaml.YAMLError) as exc:
                say(console, wrap_prose(str(exc), console.width).splitlines(), "red")
        raise typer.Abort()

    return ask
