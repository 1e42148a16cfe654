"""A command group whose commands are imported only when used, so `agentlab --help` starts fast.

Each entry names where its command lives ("module:attr", a function or a Typer app) and its
one-line help, which `agentlab --help` shows without importing it. The command itself (with its
options, their help and their choices, which may come from registries) is imported when it is
invoked, when its own `--help` is asked for, or by `load_all()` (docs, tests).
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import typer
from typer.core import TyperCommand, TyperGroup


@dataclass(frozen=True)
class Lazy:
    """Where a command lives and what `agentlab --help` says about it (equal to its docstring's first line)."""

    target: str  # "package.module:attr": a command function or a typer.Typer sub-app
    help: str
    context_settings: Mapping[str, Any] = field(default_factory=dict)


def _load(name: str, spec: Lazy) -> Any:
    mod, _, attr = spec.target.partition(":")
    obj = getattr(importlib.import_module(mod), attr)
    if isinstance(obj, typer.Typer):  # a sub-app: its own group, with its own commands
        cmd = typer.main.get_group(obj)
    else:  # a command function
        holder = typer.Typer(add_completion=False)
        holder.command(name, context_settings=dict(spec.context_settings))(obj)
        cmd = typer.main.get_command(holder)
    cmd.name = name
    return cmd


class LazyGroup(TyperGroup):
    """A TyperGroup with placeholder commands (name + one-line help) that load on first use."""

    lazy: Mapping[str, Lazy] = {}

    def __init__(self, **attrs: Any) -> None:
        super().__init__(**attrs)
        for name, spec in self.lazy.items():
            self.commands.setdefault(name, TyperCommand(name=name, help=spec.help, callback=None))
        self._loaded: set[str] = set()

    def load(self, name: str) -> Any:
        """The real command `name` (imported now if it was a placeholder)."""
        if name in self.lazy and name not in self._loaded:
            self.commands[name] = _load(name, self.lazy[name])
            self._loaded.add(name)
        return self.commands.get(name)

    def load_all(self) -> dict[str, Any]:
        """Every command, imported: for generating docs and for tests that walk the tree."""
        return {name: self.load(name) for name in list(self.commands)}

    def resolve_command(self, ctx: Any, args: Sequence[str]) -> Any:
        if args and args[0] in self.lazy:
            self.load(args[0])
        return super().resolve_command(ctx, list(args))
