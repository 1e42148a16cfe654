"""What every `agentlab` command shares: the consoles, errors, opening a run, options and choices.

Kept light on purpose: importing this module must not import the graph, the LLM layer or git, so
`agentlab --help` and every command's `--help` start fast. Heavy modules are imported inside
the functions that need them.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn, Optional

import typer
from rich.console import Console

if TYPE_CHECKING:
    from agentlab.runner import Asker, Outcome
    from agentlab.runs import RunDir

console = Console(soft_wrap=True)
err = Console(stderr=True, soft_wrap=True)


def fail(msg: str, code: int = 2) -> NoReturn:
    """Print `error: msg` on stderr and leave with `code` (2: the request was wrong; nothing ran)."""
    err.print(f"[bold red]error:[/] {msg}", highlight=False)
    raise typer.Exit(code)


def warn_unsafe() -> None:
    """The warning every command prints before it runs LLM-written code without a sandbox."""
    err.print("[bold red]WARNING:[/] unsafe-local runs LLM-written code on this machine WITHOUT isolation.")


def overrides(**kw: Any) -> dict[str, Any]:
    """The settings a command's options set (those left at None are not overrides)."""
    return {k: v for k, v in kw.items() if v is not None}


def value(choice: enum.Enum | str | None) -> str | None:
    """The plain string of a choice option (an Enum member), or None."""
    return choice.value if isinstance(choice, enum.Enum) else choice


def choice_enum(name: str, names: Iterable[str]) -> type[enum.Enum]:
    """An Enum of `names` for a Typer option, so `--help` lists them and a wrong one is refused."""
    return enum.Enum(name, {n: n for n in names}, type=str)  # type: ignore[return-value]


# ---- choices, each from where the names live ------------------------------------------------------

def sandbox_names() -> list[str]:
    """`auto` plus every registered sandbox backend (plugins included)."""
    from agentlab.sandbox.base import backend_names

    return ["auto", *backend_names()]


def stop_help() -> str:
    """The `--checkpoints` help: the stop labels of the phase table."""
    from agentlab.phases import spec

    aliases = [a for p in spec.PHASES if p.stop for a in p.stop_aliases]
    return (f"Which checkpoints stop for a person: a comma list of {', '.join(spec.stop_labels())}"
            + (f" (older spelling: {', '.join(aliases)})" if aliases else "") + "; or all, or none.")


def back_names() -> tuple[str, ...]:
    """Every phase name `--back` accepts (phase names, then their aliases), from the phase table."""
    from agentlab.phases import spec

    return spec.back_choices()


def llm_backends() -> tuple[list[str], str | None]:
    """(the registered LLM backends, plugins included; the default), chosen by a `name+` base-URL prefix."""
    try:
        from agentlab.llm import backend
        from agentlab.registry import REGISTRIES
    except ImportError:  # pragma: no cover - an LLM layer without the registry
        return [], None
    reg = REGISTRIES.get("llm_backends")
    return (reg.names() if reg is not None else []), getattr(backend, "DEFAULT_BACKEND", None)


ON_CHECKPOINT = ("approve", "park")  # agentlab.config validates the same two


# ---- options shared by several commands ----------------------------------------------------------

def runs_dir_option() -> Any:
    return typer.Option(None, help="Where runs live (default: runs_dir from agentlab.toml, else ./runs).")


def base_url_option() -> Any:
    names, default = llm_backends()
    backends = (f" to pick the LLM backend: {', '.join(names)}" + (f" (default {default})" if default else "")
                if names else " to pick another LLM backend")
    return typer.Option(None, help=f"OpenAI-compatible endpoint (default $OPENAI_BASE_URL); prefix it with "
                                   f"'NAME+'{backends}.")


def model_option() -> Any:
    return typer.Option(None, help="Model name for every phase (default $AGENTLAB_MODEL or the configured model).")


# ---- runs -----------------------------------------------------------------------------------------

def runs_root(runs_dir: Optional[Path]) -> Path:
    """The runs directory: the option, else the configured one (the rest of the settings is not checked here)."""
    from agentlab.config import ConfigError, load_settings

    if runs_dir:
        return Path(runs_dir)
    try:
        return Path(load_settings(validate=False).runs_dir)
    except ConfigError as exc:
        fail(str(exc))


def open_run(run_id: str, runs_dir: Optional[Path]) -> RunDir:
    """The run `run_id` (or a unique prefix) names; a clear error if there is none."""
    from agentlab.runs import RunDir, RunNotFound

    try:
        return RunDir.open(runs_root(runs_dir), run_id)
    except RunNotFound as exc:
        fail(str(exc))


def stdin_is_terminal() -> bool:
    import sys

    try:
        return sys.stdin is not None and sys.stdin.isatty()
    except (AttributeError, ValueError):
        return False


def asker_for(headless: bool, interactive: bool = False) -> Optional[Asker]:
    """Who answers checkpoints: the terminal prompt, or nobody when headless (see --on-checkpoint). Without a
    terminal on stdin a run is headless (said once) unless `interactive` asks for the prompt anyway."""
    if headless:
        return None
    if not interactive and not stdin_is_terminal():
        err.print("headless: stdin is not a terminal, so nobody is asked; checkpoints park the run (or are "
                  "approved with --on-checkpoint approve); --interactive prompts anyway.", highlight=False,
                  soft_wrap=False)
        return None
    from agentlab.cli.prompt import make_asker

    return make_asker(console)


def say_command(line: str) -> None:
    """One command the person copies: on its own line, never wrapped or highlighted by rich."""
    console.print(f"  {line}", soft_wrap=True, overflow="ignore", highlight=False, markup=False, crop=False)


def say(text: str) -> None:
    """Prose: wrapped by rich at word boundaries (unlike a command)."""
    console.print(text, highlight=False, soft_wrap=False)


def finish(run: RunDir, outcome: Outcome) -> NoReturn:
    """Say how the run ended and what to do next (each command on its own line), then leave with the
    outcome's exit code."""
    from agentlab.run_state import command_id

    p = outcome.payload or {}
    rid = command_id(run)  # short enough that a command fits an 80-column line, and still unique
    if outcome.status == "parked":
        phase = p.get("phase")
        say(f"Run [bold]{run.id}[/] is waiting at the [bold]{phase}[/] checkpoint.")
        say("Continue with one of:")
        say_command(f"agentlab resume {rid} --approve")
        say_command(f'agentlab resume {rid} --feedback "..."')
        say_command(f'agentlab resume {rid} --back {phase} --feedback "..."')
        if phase == "plan":
            say("Or edit the plan: write it out, edit the file, then resume with it:")
            say_command(f"agentlab plan {rid} --out plan.yaml")
            say_command(f"agentlab resume {rid} --edit-plan plan.yaml")
    elif outcome.status == "stopped":
        console.print(f"[red]Run {run.id} stopped in {p.get('phase')}:[/] {p.get('message')}", highlight=False)
        if p.get("kind") == "checkpoint":  # a checkpoint that cannot be approved (a report with open problems)
            say("See why, then send it back or reject it:")
            say_command(f"agentlab review {rid}")
            say_command(f'agentlab resume {rid} --back write_report --feedback "..."')
            say_command(f"agentlab resume {rid} --reject")
        else:
            say("After fixing it (agentlab.toml, the environment, or --set KEY=VALUE), continue:")
            say_command(f"agentlab resume {rid}")
            if p.get("kind") == "budget":
                ex = p.get("exceeded") if isinstance(p.get("exceeded"), dict) else {}
                say("A budget stop: raise the budget as you resume, e.g.")
                say_command(f"agentlab resume {rid} {ex['flag']} {ex['suggested']}" if ex.get("flag") and
                            ex.get("suggested") else f"agentlab resume {rid} --max-tokens N --max-cost USD")
    elif outcome.status == "done" and not outcome.ran:
        say(f"Run {run.id} is finished. Review it:")
        say_command(f"agentlab review {rid}")
    elif outcome.status == "done":
        say(f"[green]Run {run.id} finished.[/] Review it:")
        say_command(f"agentlab review {rid}")
    elif outcome.status == "rejected":
        say(f"Run {run.id} ended: the report was rejected.")
    elif outcome.status == "interrupted":
        say("\nInterrupted. Nothing after the last checkpoint is lost beyond the step in flight. Continue:")
        say_command(f"agentlab resume {rid}")
    raise typer.Exit(outcome.exit_code)
