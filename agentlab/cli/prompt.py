"""The terminal checkpoint prompt: show what a paused run waits on and read a person's answer.

`make_asker(console)` returns the function the runner calls at every checkpoint (or stop) when a
person is at the terminal: approve / edit / feedback / back / retry / reject. The answer is checked
with the checkpoint node's own validator before it goes back to the graph.
"""

from __future__ import annotations

import json
import os
import subprocess
import tempfile
from collections.abc import Callable
from pathlib import Path

import typer
import yaml
from rich.console import Console
from rich.panel import Panel
from rich.prompt import Prompt

from agentlab.phases.checkpoint import BadDecision, validate_decision

Asker = Callable[[dict], dict]


def show_payload(console: Console, payload: dict) -> None:
    """Print what the run waits on (the phase's summary or the stop's message) and the possible answers."""
    title = f"{payload['kind']} after {payload['phase']}" if payload["kind"] == "checkpoint" else \
        f"run stopped in {payload['phase']} ({payload['kind']})"
    body = payload.get("message") or yaml.safe_dump(payload.get("summary", {}), sort_keys=False, allow_unicode=True,
                                                     width=100)
    console.print(Panel(body.strip() or "(nothing to show)", title=title, border_style="yellow"), soft_wrap=False)
    console.print("answer: " + " | ".join(payload.get("options", [])), highlight=False)


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


def edit_plan(console: Console, plan: dict) -> dict:
    """The plan after the person edited it: in $VISUAL/$EDITOR if set, else field by field at the prompt."""
    text = yaml.safe_dump(plan, sort_keys=False, allow_unicode=True, width=100)
    editor = os.environ.get("VISUAL") or os.environ.get("EDITOR")
    if editor:
        edited = _edit_in_editor(text, editor)
        return yaml.safe_load(edited) if edited else plan
    console.print("No $EDITOR set: edit the plan inline (Enter keeps a field).")
    out = dict(plan)
    for key in ("title", "hypothesis", "method", "experiment_outline"):
        out[key] = Prompt.ask(key, default=str(plan.get(key, "")), console=console)
    metrics = Prompt.ask("metrics as JSON", default=json.dumps(plan.get("metrics", [])), console=console)
    out["metrics"] = json.loads(metrics)
    return out


def parse_answer(line: str, payload: dict) -> dict:
    """One typed line (`approve`, `f some feedback`, `back plan why`, ...) as a decision dict."""
    word, _, rest = line.strip().partition(" ")
    word = word.lower()
    if word in ("approve", "a", "yes", "y", "ok"):
        return {"action": "approve"}
    if word in ("retry", "r"):
        return {"action": "retry"}
    if word in ("reject",):
        return {"action": "reject"}
    if word in ("feedback", "f"):
        return {"action": "feedback", "text": rest.strip()}
    if word in ("back", "b"):
        phase, _, text = rest.strip().partition(" ")
        return {"action": "back", "phase": phase, "text": text.strip()}
    if word in ("edit", "e"):
        return {"action": "edit"}
    raise BadDecision(f"unknown answer {word!r}: use {', '.join(payload.get('options', []))}")


def make_asker(console: Console) -> Asker:
    """The function that asks a person at the terminal, until a valid answer (20 tries, then abort)."""

    def ask(payload: dict) -> dict:
        show_payload(console, payload)
        for _ in range(20):
            line = Prompt.ask("[bold]your answer[/]", console=console)
            try:
                decision = parse_answer(line, payload)
                if decision["action"] == "back" and not decision.get("text"):
                    decision["text"] = Prompt.ask("feedback for that phase (optional)", default="", console=console)
                if decision["action"] == "edit":
                    decision["plan"] = edit_plan(console, (payload.get("summary") or {}).get("plan") or {})
                return validate_decision(decision, payload)
            except (BadDecision, yaml.YAMLError, json.JSONDecodeError) as exc:
                console.print(f"[red]{exc}[/]")
        raise typer.Abort()

    return ask
