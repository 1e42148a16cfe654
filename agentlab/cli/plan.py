"""`agentlab plan RUN [--out FILE]`: write out a run's current plan to edit; and reading an edited plan back
(`agentlab resume RUN --edit-plan FILE`): file:line for bad YAML, a partial plan merged over the current one,
the merged plan checked with the plan schema (agentlab.schemas.Plan) naming the bad field.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from agentlab.cli.common import console, fail, open_run, runs_dir_option


def current_plan(run) -> dict:
    """The plan in the run's state ({} before the plan phase ran)."""
    from agentlab.config import settings_from_run
    from agentlab.runner import pending_interrupt

    _, values = pending_interrupt(run, settings_from_run(run.settings_path, validate=False))
    return dict(values.get("plan") or {})


def read_plan_file(path: Path) -> dict:
    """The (possibly partial) plan in a YAML/JSON file; a clear error (file:line:column) otherwise."""
    import yaml

    try:
        text = path.read_text()
    except FileNotFoundError:
        fail(f"--edit-plan {path}: no such file (write the current plan out with: agentlab plan RUN --out {path})")
    except OSError as exc:
        fail(f"--edit-plan {path}: cannot read it ({exc.strerror or exc})")
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{path}:{mark.line + 1}:{mark.column + 1}" if mark is not None else str(path)
        problem = getattr(exc, "problem", None) or str(exc)
        fail(f"--edit-plan {where}: invalid YAML: {problem}")
    if not isinstance(data, dict):
        fail(f"--edit-plan {path}: expected the plan's fields (title, hypothesis, method, metrics, ...) as a "
             f"mapping, got {type(data).__name__}")
    return data


def merged_plan(current: dict, edited: dict, path: Path) -> dict:
    """`edited` over `current` (fields given replace, others kept), validated by the plan schema (unknown fields
    are refused with the nearest name)."""
    from pydantic import ValidationError

    from agentlab.config import unknown
    from agentlab.schemas import Plan

    names = list(Plan.model_fields)
    for key in edited:
        if key not in names:
            fail(f"--edit-plan {path}: {unknown('plan field', key, names)}")
    if not current:  # no plan yet: the checkpoint says where an edit is an answer
        return edited
    try:
        return Plan.model_validate({**current, **edited}).model_dump(mode="json")
    except ValidationError as exc:
        problems = "; ".join(f"field {'.'.join(map(str, e['loc'])) or '(plan)'}: {e['msg']}" for e in exc.errors())
        fail(f"--edit-plan {path}: the plan is invalid: {problems}")


def plan(
    run_id: str = typer.Argument(..., help="Run id (or a unique prefix)."),
    out: Optional[Path] = typer.Option(None, help="Write the plan to this YAML file (default: print it)."),
    runs_dir: Optional[Path] = runs_dir_option(),
) -> None:
    """Write out a run's current plan as YAML, to edit and pass back with resume --edit-plan."""
    import yaml

    run_ = open_run(run_id, runs_dir)
    current = current_plan(run_)
    if not current:
        fail(f"run {run_.id} has no plan yet (the plan phase has not run)")
    text = yaml.safe_dump(current, sort_keys=False, allow_unicode=True, width=100)
    if out is None:
        typer.echo(text, nl=False)
        return
    out.write_text(text)
    console.print(f"Wrote the plan of {run_.id} to {out}. Edit it, then:", highlight=False)
    console.print(f"  agentlab resume {run_.id} --edit-plan {out}", highlight=False, markup=False)
