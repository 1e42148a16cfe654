"""Every command's `--help` says what each of its options does: no option without help, no doubled negative
flag (`--no-no-x`), listed choices are enums (so `--help` shows them and a wrong one is refused), and
`agentlab sandbox --help` names every registered backend."""

from __future__ import annotations

import enum
import re
import subprocess
import sys
import typing
from pathlib import Path

from typer.testing import CliRunner

from agentlab.cli import app
from tests.spine_helpers import command_tree

ROOT = Path(__file__).resolve().parent.parent


def tree() -> dict[str, object]:
    return command_tree(app)


def opts(p) -> list[str]:
    return [*(getattr(p, "opts", None) or []), *(getattr(p, "secondary_opts", None) or [])]


def annotation(p):
    """The parameter's Python type, Optional[...] unwrapped (None when this Typer does not expose it)."""
    td = getattr(p, "type_descriptor", None)
    t = getattr(td, "annotation", None)
    args = [a for a in typing.get_args(t) if a is not type(None)]
    return args[0] if typing.get_origin(t) is typing.Union and len(args) == 1 else t


def test_the_tree_has_every_command():
    assert {"agentlab run", "agentlab resume", "agentlab runs", "agentlab status", "agentlab doctor",
            "agentlab review", "agentlab sandbox run", "agentlab sandbox check", "agentlab eval coc",
            "agentlab batch"} <= set(tree())


def test_every_command_option_and_argument_has_help():
    missing = []
    for path, cmd in tree().items():
        if not (getattr(cmd, "help", None) or "").strip():
            missing.append(f"{path}: the command itself")
        for p in cmd.params:
            if not (getattr(p, "help", None) or "").strip():
                missing.append(f"{path} {'/'.join(opts(p)) or p.name}")
    assert not missing, f"no help text: {missing}"


def test_every_help_page_renders_each_option_with_its_help():
    for path, cmd in tree().items():
        r = CliRunner().invoke(app, [*path.split()[1:], "--help"], env={"COLUMNS": "200"})
        assert r.exit_code == 0, f"{path} --help: {r.output}"
        for p in cmd.params:
            for o in opts(p):
                if o.startswith("--") and not getattr(p, "hidden", False):
                    assert o in r.output, f"{path} --help does not show {o}"


def test_no_doubled_negative_flags():
    bad = [f"{path} {o}" for path, cmd in tree().items() for p in cmd.params for o in opts(p)
           if o.startswith("--no-no-") or re.match(r"^--no-.*", o) and f"--no-{o}" in opts(p)]
    assert not bad, f"flags with a doubled negative (use --x/--no-x): {bad}"
    out = subprocess.run([sys.executable, "-m", "agentlab.cli", "eval", "coc", "--help"], capture_output=True,
                         text=True, cwd=ROOT, env={"COLUMNS": "200", "PATH": "/usr/bin:/bin"}, timeout=120)
    assert "--no-synthetic" in out.stdout and "--no-no-" not in out.stdout, out.stdout + out.stderr


def test_a_choice_listed_in_the_help_is_an_enum():
    """A str option whose help lists 'one of ...' should be a choice (agentlab.cli.common.choice_enum)."""
    free = [f"{path} {'/'.join(opts(p))}" for path, cmd in tree().items() for p in cmd.params
            if annotation(p) is str and re.search(r"\bone of\b", getattr(p, "help", "") or "")]
    assert not free, f"free-string options that list their choices (make them enums): {free}"
    enums = [annotation(p) for cmd in tree().values() for p in cmd.params]
    assert any(isinstance(t, type) and issubclass(t, enum.Enum) for t in enums)


def test_sandbox_help_lists_every_registered_backend():
    from agentlab.sandbox.base import backend_names

    out = subprocess.run([sys.executable, "-m", "agentlab.cli", "sandbox", "--help"], capture_output=True, text=True,
                         cwd=ROOT, env={"COLUMNS": "200", "PATH": "/usr/bin:/bin"}, timeout=120)
    text = " ".join(out.stdout.split())
    assert out.returncode == 0, out.stderr
    missing = [n for n in backend_names() if n not in text]
    assert "ray" in backend_names() and not missing, f"sandbox --help omits {missing}:\n{out.stdout}"
