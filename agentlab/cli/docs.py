"""docs/cli.md, generated from every command's `--help`.

    python -m agentlab.cli.docs           rewrite docs/cli.md
    python -m agentlab.cli.docs --check   exit 1 if docs/cli.md is out of date

The help is rendered in this process at a fixed width without colours (as `TERMINAL_WIDTH=100
_TYPER_FORCE_DISABLE_TERMINAL=1` would), so the file is the same on every machine. A test
(tests/test_cli.py) regenerates it and compares it with the committed file.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

WIDTH = 100
DOC = Path(__file__).resolve().parents[2] / "docs" / "cli.md"
REGENERATE = "python -m agentlab.cli.docs"
HEADER = f"""# The `agentlab` command line

<!-- Generated from each command's --help by `{REGENERATE}`; do not edit by hand.
     tests/test_cli.py fails when this file is out of date. -->

Every command and option, as `--help` prints it. Phase names, checkpoint labels and backend names
in the choices come from the phase table (`agentlab/phases/spec.py`) and the registries.
"""


def command_paths() -> list[tuple[str, ...]]:
    """Every command path, depth first in `agentlab --help` order: (), ("run",), ("sandbox", "run"), ..."""
    import typer

    from agentlab.cli import app

    out: list[tuple[str, ...]] = []

    def walk(cmd: object, path: tuple[str, ...]) -> None:
        out.append(path)
        load_all = getattr(cmd, "load_all", None)
        subs = load_all() if load_all else getattr(cmd, "commands", {})
        for name, sub in subs.items():
            if not getattr(sub, "hidden", False):
                walk(sub, (*path, name))

    walk(typer.main.get_command(app), ())
    return out


@contextmanager
def fixed_terminal(width: int = WIDTH) -> Iterator[None]:
    """Typer's rich help at `width` columns, no colours, no terminal: deterministic text."""
    from typer import rich_utils

    saved = {k: getattr(rich_utils, k) for k in ("MAX_WIDTH", "FORCE_TERMINAL", "COLOR_SYSTEM")}
    rich_utils.MAX_WIDTH, rich_utils.FORCE_TERMINAL, rich_utils.COLOR_SYSTEM = width, False, None
    try:
        yield
    finally:
        for k, v in saved.items():
            setattr(rich_utils, k, v)


def help_text(path: tuple[str, ...]) -> str:
    """`agentlab PATH --help`, as printed at the fixed width."""
    from typer.testing import CliRunner

    from agentlab.cli import app

    env = {"COLUMNS": str(WIDTH), "TERMINAL_WIDTH": str(WIDTH), "_TYPER_FORCE_DISABLE_TERMINAL": "1",
           "NO_COLOR": "1", "FORCE_COLOR": None, "PY_COLORS": None, "GITHUB_ACTIONS": None}
    with fixed_terminal():
        res = CliRunner().invoke(app, [*path, "--help"], prog_name="agentlab", env=env, catch_exceptions=False)
    if res.exit_code != 0:
        raise RuntimeError(f"agentlab {' '.join(path)} --help exited {res.exit_code}: {res.output}")
    return "\n".join(line.rstrip() for line in res.stdout.splitlines()).strip("\n")


def render() -> str:
    """The whole of docs/cli.md."""
    parts = [HEADER]
    for path in command_paths():
        title = " ".join(("agentlab", *path))
        parts.append(f"## `{title}`\n\n```text\n{help_text(path)}\n```\n")
    return "\n".join(parts)


def main(argv: list[str] | None = None) -> int:
    """Rewrite docs/cli.md (or, with --check, only say whether it is current)."""
    argv = sys.argv[1:] if argv is None else argv
    text = render()
    if "--check" in argv:
        current = DOC.read_text() if DOC.exists() else ""
        if current != text:
            print(f"{os.path.relpath(DOC)} is out of date: run `{REGENERATE}`", file=sys.stderr)
            return 1
        return 0
    DOC.write_text(text)
    print(f"wrote {DOC}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
