"""Asking a person at a checkpoint in the terminal: approve / edit / feedback / back / retry / reject."""

from __future__ import annotations

import json
import os

import click
import yaml
from rich.console import Console
from rich.panel import Panel
from rich.prompt import Prompt

from agentlab.human import BadDecision, validate_decision


def show_payload(console: Console, payload: dict) -> None:
    title = f"{payload['kind']} after {payload['phase']}" if payload["kind"] == "checkpoint" else \
        f"run stopped in {payload['phase']} ({payload['kind']})"
    body = payload.get("message") or yaml.safe_dump(payload.get("summary", {}), sort_keys=False, allow_unicode=True,
                                                     width=100)
    console.print(Panel(body.strip() or "(nothing to show)", title=title, border_style="yellow"), soft_wrap=False)
    console.print("answer: " + " | ".join(payload.get("options", [])), highlight=False)


def edit_plan(console: Console, plan: dict) -> dict:
    text = yaml.safe_dump(plan, sort_keys=False, allow_unicode=True, width=100)
    if os.environ.get("EDITOR") or os.environ.get("VISUAL"):
        edited = click.edit(text, extension=".yaml")
        return yaml.safe_load(edited) if edited else plan
    console.print("No $EDITOR set: edit the plan inline (Enter keeps a field).")
    out = dict(plan)
    for key in ("title", "hypothesis", "method", "experiment_outline"):
        out[key] = Prompt.ask(key, default=str(plan.get(key, "")), console=console)
    metrics = Prompt.ask("metrics as JSON", default=json.dumps(plan.get("metrics", [])), console=console)
    out["metrics"] = json.loads(metrics)
    return out


def parse_answer(line: str, payload: dict) -> dict:
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


def make_asker(console: Console):
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
        raise click.Abort()

    return ask
