"""`agentlab sandbox ...`: run a script exactly as an experiment attempt would, and check the backends."""

from __future__ import annotations

import enum
import json
import shutil
import tempfile
import uuid
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console
from rich.table import Table

from agentlab.sandbox.base import (
    Job,
    Limits,
    SandboxUnavailable,
    available_backends,
    backend_class,
    backend_names,
    get_backend,
)
from agentlab.sandbox.safe_files import UntrustedFileError, read_json

sandbox_app = typer.Typer(help="Run scripts in the experiment sandbox; check which backends work here.\n\n"
                               f"Backends (the registry's, plugins included): {', '.join(backend_names())}; "
                               "auto picks the first isolated one that works here.",
                          no_args_is_help=True, pretty_exceptions_enable=False)  # fmt: skip
console = Console(soft_wrap=True)
err = Console(stderr=True, soft_wrap=True)


def _settings():
    from agentlab.config import load_settings

    return load_settings()


#: `auto` plus every registered backend (plugins included): what --backend accepts
BackendName = enum.Enum("BackendName", {n: n for n in ["auto", *backend_names()]}, type=str)


def _plain(text: str) -> str:
    """A job's text for the terminal: no escape sequences or other control characters (newlines and tabs kept)."""
    return "".join(c if c.isprintable() or c in "\n\t" else "?" for c in text)


@sandbox_app.command("run")
def run_cmd(
    file: Path = typer.Argument(..., exists=True, dir_okay=False, help="The script, run as main.py in a fresh work dir."),
    backend: Optional[BackendName] = typer.Option(None, "--backend", "-b",
                                                 help="Sandbox backend (default: the configured sandbox)."),
    timeout: Optional[float] = typer.Option(None, "--timeout", help="Wall-clock seconds (default: attempt_timeout)."),
    memory: Optional[int] = typer.Option(None, "--memory", help="Memory limit in MB (default: attempt_memory_mb)."),
    cpu: Optional[float] = typer.Option(None, "--cpu", help="CPU seconds (default: wall clock x cores)."),
    gpus: int = typer.Option(0, "--gpus", help="GPUs to expose (docker)."),
    workdir: Optional[Path] = typer.Option(None, "--workdir", help="Use this (new or empty) dir instead of a temp dir."),
) -> None:
    """Run FILE with the same backend, limits and environment as an experiment attempt; print how it ended."""
    from agentlab.phases.common import clip

    s = _settings()
    name = backend.value if backend is not None else s.sandbox
    try:
        sb = get_backend(name)
    except SandboxUnavailable as exc:
        err.print(f"[bold red]error:[/] {exc}", highlight=False)
        raise typer.Exit(2)
    if not sb.isolated:
        err.print("[bold red]WARNING:[/] unsafe-local runs the script on this machine WITHOUT isolation.")
    wd = workdir or Path(tempfile.mkdtemp(prefix="agentlab-sandbox-run-"))
    wd.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(file, wd / "main.py")
    limits = Limits(
        wall_seconds=timeout if timeout is not None else s.attempt_timeout,
        memory_mb=memory if memory is not None else s.attempt_memory_mb,
        cpu_seconds=cpu, gpus=gpus,
    )  # fmt: skip
    job = Job(id=f"manual-{uuid.uuid4().hex[:12]}", workdir=str(wd), command=["python", "main.py"], limits=limits,
              labels={"agentlab.node": "manual"})  # fmt: skip
    console.print(f"running {file} in [bold]{sb.name}[/] (wall {limits.wall_seconds:g}s, memory {limits.memory_mb} MB) "
                  f"in {wd}", highlight=False)  # fmt: skip
    try:
        res = sb.run(job)
    except SandboxUnavailable as exc:  # the backend itself failed (docker daemon, image, runtime): cause and fix
        err.print(f"[bold red]error:[/] {exc}", highlight=False)
        raise typer.Exit(2)
    if res.stdout_tail:
        console.rule("stdout (tail)")
        console.out(_plain(res.stdout_tail.rstrip("\n")), highlight=False)
    if res.stderr_tail:
        console.rule("stderr (tail)")
        console.out(_plain(res.stderr_tail.rstrip("\n")), highlight=False)
    console.rule()
    color = "green" if res.ok else "red"
    console.print(f"reason: [bold {color}]{res.reason}[/]  exit code: {res.exit_code}  wall: {res.wall_seconds:.2f}s"
                  + ("  [yellow](output truncated)[/]" if res.output_truncated else ""), highlight=False)  # fmt: skip
    if res.detail:
        console.print(f"detail: {_plain(res.detail)}", highlight=False, markup=False)
    try:  # the file is the job's: never followed if a link, size-capped, bounded parse, never printed raw
        value = read_json(wd, "results.json", max_bytes=1_000_000)
        console.print(f"results.json: {clip(json.dumps(value), 2000)}", markup=False, highlight=False)
    except UntrustedFileError as exc:
        if exc.kind != "missing":
            console.print(f"results.json refused: {exc}", markup=False, highlight=False)
    console.print(f"work dir: {wd}  (logs in {wd / '.job'})", highlight=False)
    raise typer.Exit(0 if res.ok else (res.exit_code or 1))


@sandbox_app.command("check")
def check_cmd() -> None:
    """Say which sandbox backends work here (the exact fix for those that do not) and, for each that does,
    which isolation guarantees a probe job observed: host uid, seccomp, keyring, quotas, read-only inputs."""
    table = Table("backend", "usable", "why / fix")
    any_ok = False
    for name, ok, why in available_backends():
        any_ok |= ok and backend_class(name).isolated
        table.add_row(name, "[green]yes[/]" if ok else "[red]no[/]", why)
    console.print(table)
    from agentlab.sandbox.selftest import guarantees

    for name, ok, _ in available_backends():
        cls = backend_class(name)
        if not ok or not cls.isolated or cls.remote:
            continue
        g = Table("guarantee", "holds", "how / why not", title=f"{name}: what a probe job observed here")
        for what, held, how in guarantees(get_backend(name)):
            g.add_row(what, "[green]yes[/]" if held else "[red]NO[/]", how)
        console.print(g)
    raise typer.Exit(0 if any_ok else 1)
