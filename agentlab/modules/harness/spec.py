"""The harness spec: what to measure (family, model, split, items, seeds, methods and their settings).

``load_spec`` validates a spec (a dict, a JSON string or a path) against the family it names, *after*
plugins are loaded, and raises ``SpecError(field, message)`` naming the field (``methods[1].name``,
``methods[0].params.budget``) with the nearest valid name for a typo. ``cells`` expands it into the cells
that are measured: the family's reference first, then one cell per method and combination of its
list-valued parameters (a sweep, cartesian product).
"""

from __future__ import annotations

import difflib
import itertools
import json
import os
from pathlib import Path
from typing import Any, Literal

import pydantic
from pydantic import BaseModel, ConfigDict, Field

from agentlab.modules.harness.family import Family, SpecError, family_names, get_family

__api__ = False

MAX_CELLS = 64
Scalar = bool | int | float | str


class MethodSpec(BaseModel):
    """One method entry: its registry name, its parameters (a list value is a sweep) and an optional label."""

    model_config = ConfigDict(extra="forbid")

    name: str
    params: dict[str, Scalar | list[Scalar]] = Field(default_factory=dict)
    label: str = ""  # the cell id instead of the name (swept parameters are still appended)


class HarnessSpec(BaseModel):
    """A validated harness spec (``load_spec``); token counts, primary and metrics resolved after validation."""

    model_config = ConfigDict(extra="forbid")

    family: str
    model: Literal["smollm2", "tiny-llama"] = "smollm2"
    split: Literal["val", "test"] = "val"
    items: int = Field(4, ge=1, le=64)
    seeds: list[int] = Field(default_factory=lambda: [0], min_length=1, max_length=10)
    context_tokens: int | None = Field(None, ge=1, le=8192)
    target_tokens: int | None = Field(None, ge=1, le=4096)
    methods: list[MethodSpec] = Field(min_length=1, max_length=24)
    primary: str | None = None
    metrics: list[str] | None = None


def suggest(name: str, choices) -> str:
    """`` (did you mean 'x'?)`` for the closest of `choices`, or ``""``."""
    close = difflib.get_close_matches(str(name), [str(c) for c in choices], n=1, cutoff=0.5)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _path(loc: tuple) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "spec"


def _from_validation(exc: pydantic.ValidationError) -> SpecError:
    err = exc.errors()[0]
    loc = tuple(err["loc"])
    if len(loc) >= 4 and loc[0] == "methods" and loc[2] == "params":  # a union of scalar | list[scalar]
        return SpecError(_path(loc[:4]), "a parameter value must be a number, a string, a boolean or a list of "
                         "them (a sweep)")
    if err["type"] == "extra_forbidden":
        allowed = (MethodSpec if len(loc) > 1 and isinstance(loc[-2], int) else HarnessSpec).model_fields
        return SpecError(_path(loc), f"unknown field{suggest(loc[-1], allowed)}; fields: {', '.join(allowed)}")
    return SpecError(_path(loc), err["msg"])


def _read(obj) -> dict:
    if isinstance(obj, HarnessSpec):
        return obj.model_dump()
    if isinstance(obj, (str, os.PathLike)) and not str(obj).lstrip().startswith("{"):
        try:
            obj = Path(obj).read_text(encoding="utf-8")
        except OSError as exc:
            raise SpecError("spec", f"cannot read {obj}: {exc.strerror or exc}") from None
    if isinstance(obj, (str, bytes)):
        try:
            obj = json.loads(obj)
        except json.JSONDecodeError as exc:
            raise SpecError("spec", f"not valid JSON: {exc}") from None
    if not isinstance(obj, dict):
        raise SpecError("spec", f"must be a JSON object, not {type(obj).__name__}")
    return obj


def _family(name: str) -> Family:
    names = family_names()
    if name not in names:
        raise SpecError("family", f"unknown harness family {name!r}{suggest(name, names)}; choose one of: "
                        f"{', '.join(names)}")
    try:
        return get_family(name)
    except (ImportError, AttributeError) as exc:
        raise SpecError("family", f"family {name!r} is not available here ({type(exc).__name__}: {exc})") from None


def _what(family: Family) -> str:
    return getattr(family, "what", "") or f"{family.name} method"


def _check_names(spec: HarnessSpec, family: Family) -> None:
    names = family.method_names()
    for i, m in enumerate(spec.methods):
        if m.name not in names:
            raise SpecError(f"methods[{i}].name", f"unknown {_what(family)} {m.name!r}{suggest(m.name, names)}; "
                            f"choose one of: {', '.join(names)}")
        for k, v in m.params.items():
            if isinstance(v, list) and not v:
                raise SpecError(f"methods[{i}].params.{k}", "an empty list sweeps nothing: give at least one value")


def _resolve_metrics(spec: HarnessSpec, family: Family) -> None:
    known = list(family.metrics)
    primary = spec.primary or family.primary
    if primary not in known:
        raise SpecError("primary", f"unknown {family.name} metric {primary!r}{suggest(primary, known)}; "
                        f"choose one of: {', '.join(known)}")
    chosen = spec.metrics if spec.metrics is not None else known
    for i, m in enumerate(chosen):
        if m not in known:
            raise SpecError(f"metrics[{i}]", f"unknown {family.name} metric {m!r}{suggest(m, known)}; "
                            f"choose one of: {', '.join(known)}")
    spec.primary = primary
    spec.metrics = [m for m in known if m in chosen or m == primary]


def load_spec(obj) -> HarnessSpec:
    """Validate a spec (dict, JSON text, path or ``HarnessSpec``) against its family; ``SpecError`` if invalid.

    Load plugins first: method names are asked from the family at this point. Every cell is bound once here
    (``family.check``), so a bad parameter name or value fails before anything is measured.
    """
    raw = _read(obj)
    try:
        spec = HarnessSpec.model_validate(raw)
    except pydantic.ValidationError as exc:
        raise _from_validation(exc) from None
    if len(set(spec.seeds)) != len(spec.seeds):
        raise SpecError("seeds", f"seeds must be unique, got {spec.seeds}")
    family = _family(spec.family)
    _check_names(spec, family)
    _resolve_metrics(spec, family)
    spec.context_tokens = spec.context_tokens or family.context_tokens
    spec.target_tokens = spec.target_tokens or family.target_tokens
    cells(spec, family)
    return spec


def _fmt(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    return repr(v) if isinstance(v, float) else str(v)


def _cell_id(m: MethodSpec, params: dict[str, Any]) -> str:
    shown = {k: params[k] for k in m.params if isinstance(m.params[k], list)} if m.label else params
    base = m.label or m.name
    return f"{base}[{','.join(f'{k}={_fmt(v)}' for k, v in shown.items())}]" if shown else base


def _expand(m: MethodSpec) -> list[dict[str, Any]]:
    keys = list(m.params)
    values = [v if isinstance(v, list) else [v] for v in m.params.values()]
    return [dict(zip(keys, combo)) for combo in itertools.product(*values)]


def _count(spec: HarnessSpec) -> int:
    total = 1
    for m in spec.methods:
        n = 1
        for v in m.params.values():
            n *= len(v) if isinstance(v, list) else 1
        total += n
    return total


def cells(spec: HarnessSpec, family: Family | None = None) -> list[tuple[str, str, dict[str, Any]]]:
    """``[(cell_id, method, bound_params)]``: the reference first, then every method x sweep combination.

    A cell id is the method name (or its label) with the given parameters, e.g. ``h2o[budget=0.25]``; the
    reference is its bare name (``full``) and is measured even when the spec does not list it.
    """
    family = family or _family(spec.family)
    ref = family.reference
    total = _count(spec)
    if total > MAX_CELLS:
        raise SpecError("methods", f"the spec expands to {total} cells (reference included); at most {MAX_CELLS}: "
                        "sweep fewer values")
    out = [(ref, ref, family.check(ref, {}, f"{family.name}.reference"))]
    seen = {ref: "the reference"}
    for i, m in enumerate(spec.methods):
        for params in _expand(m):
            cid = _cell_id(m, params)
            if cid == ref and m.name == ref and not params:
                continue  # the reference listed explicitly: measured once, first
            if cid in seen:
                raise SpecError(f"methods[{i}]", f"cell {cid!r} is measured twice (also {seen[cid]}); "
                                "remove the duplicate or give a label")
            seen[cid] = f"methods[{i}]"
            out.append((cid, m.name, family.check(m.name, params, f"methods[{i}].params")))
    return out
