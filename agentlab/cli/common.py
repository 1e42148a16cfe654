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
    """The runs directory: the option, else the configured one."""
    from agentlab.config import load_settings

    return Path(runs_dir) if runs_dir else Path(load_settings().runs_dir)


def open_run(run_id: str, runs_dir: Optional[Path]) -> RunDir:
    """The run `run_id` (or a unique prefix) names; a clear error if there is none."""
    from agentlab.runs import RunDir, RunNotFound

    try:
        return RunDir.open(runs_root(runs_dir), run_id)
    except RunNotFound as exc:
        fail(str(exc))


def asker_for(headless: bool) -> Optional[Asker]:
    """Who answers checkpoints: the terminal prompt, or nobody when headless (see --on-checkpoint)."""
    if headless:
        return None
    from agentlab.cli.prompt import make_asker

    return make_asker(console)


def finish(run: RunDir, outcome: Outcome) -> NoReturn:
    """Say how the run ended and what to do next, then leave with the outcome's exit code."""
    p = outcome.payload or {}
    if outcome.status == "parked":
        console.print(f"Run [bold]{run.id}[/] is waiting at the [bold]{p.get('phase')}[/] checkpoint.")
        console.print(f"  continue:  agentlab resume {run.id} --approve")
        console.print(f"  or:        agentlab resume {run.id} --feedback \"...\"  |  --back plan --feedback \"...\"")
    elif outcome.status == "stopped":
        console.print(f"[red]Run {run.id} stopped in {p.get('phase')}:[/] {p.get('message')}", highlight=False)
        if p.get("kind") == "checkpoint":  # a checkpoint that cannot be approved (a report with open problems)
            console.print(f"  see why:   agentlab review {run.id}")
            console.print(f"  then:      agentlab resume {run.id} --back write_report --feedback \"...\"  |  --reject")
        else:
            console.print(f"  after fixing it:  agentlab resume {run.id}   (add e.g. --max-cost N for a budget stop)")
    elif outcome.status == "done" and not outcome.ran:
        console.print(f"Run {run.id} is finished. Review it: agentlab review {run.id}")
    elif outcome.status == "done":
        console.print(f"[green]Run {run.id} finished.[/] Review it: agentlab review {run.id}")
    elif outcome.status == "rejected":
        console.print(f"Run {run.id} ended: the report was rejected.")
    elif outcome.status == "interrupted":
        console.print(f"\nInterrupted. Nothing after the last checkpoint is lost beyond the step in flight: "
                      f"agentlab resume {run.id}")
    raise typer.Exit(outcome.exit_code)
