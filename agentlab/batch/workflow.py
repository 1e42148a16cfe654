"""Workflow files: one research run described in YAML (or TOML), validated with line-numbered errors.

    name: kv-cache-compression          # defaults to the file name; unique within a batch
    idea: "Does keeping attention sinks plus a recent window ..."
    checkpoints: [plan, report]         # or all / none
    on_checkpoint: park                 # park (wait for `agentlab resume`) | approve
    budgets: {max_cost: 2.0, max_tokens: 400000, max_minutes: 60}
    models: {default: gpt-4o-mini, plan: gpt-4o}
    sandbox: {backend: auto, gpus: 0, memory_mb: 8192, timeout_s: 900, max_attempts: 3}
    literature: {max_papers: 6}
    settings: {drafts: 3}               # any other AgentLab setting, checked by name

`to_overrides()` maps a workflow onto `Settings` overrides for `load_settings`.
"""

from __future__ import annotations

import hashlib
import re
import tomllib
from dataclasses import fields
from pathlib import Path
from typing import Any, Callable, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from agentlab.config import PHASES, ConfigError, Settings, _coerce, parse_checkpoints
from agentlab.sandbox.base import SANDBOX_BACKENDS

SUFFIXES = (".yaml", ".yml", ".toml")
#: "auto" plus every registered sandbox backend (plugins included), re-read on each use
BACKENDS = SANDBOX_BACKENDS.choices("auto")


class WorkflowError(ValueError):
    """One or more workflow files are invalid; each line of the message is `file:line: what is wrong`."""

    def __init__(self, problems: list[str]):
        self.problems = problems
        super().__init__("\n".join(problems))


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Budgets(_Strict):
    max_cost: float | None = Field(None, gt=0, description="USD")
    max_tokens: int | None = Field(None, gt=0)
    max_minutes: float | None = Field(None, gt=0, description="active minutes")


def _backend_schema(schema: dict[str, Any]) -> None:
    schema["enum"] = list(BACKENDS)  # the JSON schema lists what is registered when it is generated


class SandboxSpec(_Strict):
    backend: str = Field("auto", json_schema_extra=_backend_schema,
                         description="auto, or a registered sandbox backend (`agentlab sandbox check` lists them)")
    gpus: int = Field(0, ge=0, le=64)
    memory_mb: int = Field(8192, ge=64)
    timeout_s: float = Field(600.0, gt=0)
    max_attempts: int = Field(3, ge=1, le=50)

    @field_validator("backend")
    @classmethod
    def _backend(cls, v: str) -> str:
        if v not in BACKENDS:
            raise ValueError(f"unknown sandbox backend {v!r}: use one of {', '.join(repr(b) for b in BACKENDS)}")
        return v


class LiteratureSpec(_Strict):
    max_papers: int = Field(5, ge=0, le=200)
    offline: bool = False
    papers_dir: str | None = None


class Workflow(_Strict):
    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
    idea: str
    description: str = ""
    checkpoints: list[str] | str = Field(default_factory=lambda: ["plan", "report"])
    on_checkpoint: Literal["park", "approve"] = "park"
    budgets: Budgets = Field(default_factory=Budgets)
    models: dict[str, str] = Field(default_factory=dict)
    sandbox: SandboxSpec = Field(default_factory=SandboxSpec)
    literature: LiteratureSpec = Field(default_factory=LiteratureSpec)
    settings: dict[str, Any] = Field(default_factory=dict)
    source: str = Field("", exclude=True)  # the file it came from (set by the loader)
    digest: str = Field("", exclude=True)  # sha256 of the file's text

    @field_validator("idea")
    @classmethod
    def _idea(cls, v: str) -> str:
        from agentlab.config import ConfigError, check_idea

        try:
            return check_idea(v)  # the rule `agentlab run` applies (one source of truth)
        except ConfigError as exc:
            raise ValueError(str(exc)) from None

    @field_validator("checkpoints")
    @classmethod
    def _checkpoints(cls, v: list[str] | str) -> list[str]:
        try:
            return list(parse_checkpoints(v))
        except ConfigError as exc:
            raise ValueError(str(exc)) from exc

    @field_validator("models")
    @classmethod
    def _models(cls, v: dict[str, str]) -> dict[str, str]:
        bad = [k for k in v if k != "default" and k not in PHASES]
        if bad:
            raise ValueError(f"unknown phase(s) {', '.join(bad)}: use default or one of {', '.join(PHASES)}")
        return v

    @field_validator("settings")
    @classmethod
    def _settings(cls, v: dict[str, Any]) -> dict[str, Any]:
        for k, val in v.items():
            if k in ("api_key", "base_url", "runs_dir", "checkpointer_url"):
                raise ValueError(f"{k} is per deployment, not per workflow: set it in agentlab.toml or the environment")
            try:
                _coerce(k, val)
            except ConfigError as exc:
                raise ValueError(str(exc)) from exc
        return v

    def to_overrides(self) -> dict[str, Any]:
        """Settings overrides for `load_settings` (applied over agentlab.toml and the environment)."""
        o: dict[str, Any] = dict(self.settings)
        o.update(checkpoints=tuple(self.checkpoints), on_checkpoint=self.on_checkpoint,
                 sandbox=self.sandbox.backend, attempt_timeout=self.sandbox.timeout_s,
                 attempt_memory_mb=self.sandbox.memory_mb, max_attempts=self.sandbox.max_attempts,
                 max_papers=self.literature.max_papers, offline=self.literature.offline)
        if self.literature.papers_dir:
            o["papers_dir"] = self.literature.papers_dir
        o.update({k: v for k, v in self.budgets.model_dump().items() if v is not None})
        if "default" in self.models:
            o["model"] = self.models["default"]
        per_phase = {k: v for k, v in self.models.items() if k != "default"}
        if per_phase:
            o["models"] = per_phase
        if "attempt_gpus" in _SETTING_NAMES:  # the experiment phase passes it on to Limits.gpus
            o["attempt_gpus"] = self.sandbox.gpus
        return {k: v for k, v in o.items() if k in _SETTING_NAMES}

    def warnings(self) -> list[str]:
        if self.sandbox.gpus and "attempt_gpus" not in _SETTING_NAMES:
            return [f"{self.source}: sandbox.gpus={self.sandbox.gpus} is not passed on by this AgentLab version "
                    "(no attempt_gpus setting); jobs get 0 GPUs"]
        return []


_SETTING_NAMES = {f.name for f in fields(Settings)}


# ---- line numbers ------------------------------------------------------------------------------
def _yaml_line(node: yaml.Node | None, loc: tuple) -> int:
    """1-based line of the deepest node on `loc` that exists in the composed YAML tree."""
    line = node.start_mark.line + 1 if node is not None else 1
    for part in loc:
        if isinstance(node, yaml.MappingNode):
            pairs = [(k, v) for k, v in node.value if getattr(k, "value", None) == part]
            if not pairs:
                return line
            key, node = pairs[-1]  # a duplicated key: the last one wins, as in yaml.safe_load
            line = key.start_mark.line + 1
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int) and part < len(node.value):
            node = node.value[part]
            line = node.start_mark.line + 1
        else:
            return line
    return line


def _duplicate_keys(node: yaml.Node | None, out: list[tuple[int, str]]) -> None:
    if isinstance(node, yaml.MappingNode):
        seen: set = set()
        for k, v in node.value:
            if k.value in seen:
                out.append((k.start_mark.line + 1, f"duplicate key {k.value!r}"))
            seen.add(k.value)
            _duplicate_keys(v, out)
    elif isinstance(node, yaml.SequenceNode):
        for v in node.value:
            _duplicate_keys(v, out)


def _toml_line(text: str, loc: tuple) -> int:
    """Best-effort line for a TOML key path: `[a]` then `b = ...` (or `a.b = ...` / `a = {...}`)."""
    lines = text.splitlines()
    section, found = "", 1
    top = str(loc[0]) if loc else ""
    sub = str(loc[1]) if len(loc) > 1 else None
    for i, raw in enumerate(lines, 1):
        s = raw.strip()
        m = re.match(r"^\[([^\]]+)\]", s)
        if m:
            section = m.group(1).strip()
            if section == top:
                found = i
            continue
        key = re.match(r"^([A-Za-z0-9_.\"-]+)\s*=", s)
        if not key:
            continue
        k = key.group(1).strip('"')
        if section == "" and (k == top or (sub and k == f"{top}.{sub}")):
            found = i
        elif section == top and sub is not None and k == sub:
            return i
    return found


def _loc_text(loc: tuple) -> str:
    return ".".join(str(p) for p in loc) or "(top)"


# ---- loading -----------------------------------------------------------------------------------
def _parse_toml(path: Path, text: str) -> tuple[Any, Callable[[tuple], int]]:
    """Parse TOML text into (data, line_of); raise WorkflowError on a syntax error."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        m = re.search(r"line (\d+)", str(exc))
        raise WorkflowError([f"{path}:{m.group(1) if m else 1}: invalid TOML: {exc}"]) from exc
    return data, lambda loc: _toml_line(text, loc)


def _parse_yaml(path: Path, text: str, problems: list[str]) -> tuple[Any, Callable[[tuple], int]]:
    """Parse YAML text into (data, line_of), adding duplicate-key problems; raise WorkflowError on bad syntax."""
    try:
        node = yaml.compose(text)
        data = yaml.safe_load(text)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = mark.line + 1 if mark else 1
        raise WorkflowError([f"{path}:{where}: invalid YAML: {exc.problem or exc}"]) from exc
    dups: list[tuple[int, str]] = []
    _duplicate_keys(node, dups)
    problems += [f"{path}:{ln}: {msg}" for ln, msg in dups]
    return data, lambda loc: _yaml_line(node, loc)


def _require_mapping(path: Path, data: Any) -> None:
    """Raise WorkflowError unless the parsed file is a non-empty mapping."""
    if data is None:
        raise WorkflowError([f"{path}:1: the file is empty: a workflow needs at least `idea:`"])
    if not isinstance(data, dict):
        raise WorkflowError([f"{path}:1: a workflow is a mapping of keys (idea:, budgets:, ...), "
                             f"not a {type(data).__name__}"])


def _error_message(e: dict) -> str:
    """The user-facing message for one pydantic validation error."""
    msg = e["msg"].removeprefix("Value error, ")
    if e["type"] == "extra_forbidden":
        msg = "unknown key (check the spelling; see workflows/README.md)"
    elif e["type"] == "missing":
        msg = "required"
    elif "input" in e and not isinstance(e["input"], (dict, list)):
        msg += f" (got {e['input']!r})"
    return msg


def _validation_problems(path: Path, exc: ValidationError, line_of: Callable[[tuple], int]) -> list[str]:
    """One `file:line: loc: message` problem per pydantic validation error."""
    out: list[str] = []
    for e in exc.errors():
        loc = tuple(p for p in e["loc"] if not (isinstance(p, str) and p.startswith(("function-", "literal["))))
        out.append(f"{path}:{line_of(loc)}: {_loc_text(loc)}: {_error_message(e)}")
    return out


def load_workflow(path: str | Path) -> Workflow:
    """Parse and validate one workflow file; raise WorkflowError with `file:line:` messages."""
    path = Path(path)
    text = path.read_text()
    problems: list[str] = []
    if path.suffix == ".toml":
        data, line_of = _parse_toml(path, text)
    else:
        data, line_of = _parse_yaml(path, text, problems)
    _require_mapping(path, data)
    data.setdefault("name", path.stem)
    for k in ("source", "digest"):
        if k in data:
            problems.append(f"{path}:{line_of((k,))}: {k}: not a workflow key")
            data.pop(k)
    try:
        wf = Workflow.model_validate(data)
    except ValidationError as exc:
        problems += _validation_problems(path, exc, line_of)
        raise WorkflowError(problems) from exc
    if problems:
        raise WorkflowError(problems)
    update: dict[str, Any] = {"source": str(path), "digest": hashlib.sha256(text.encode()).hexdigest()[:16]}
    if wf.literature.papers_dir:  # relative to the workflow file, not to wherever batch was started
        pd = (path.parent / Path(wf.literature.papers_dir).expanduser()).resolve()
        update["literature"] = wf.literature.model_copy(update={"papers_dir": str(pd)})
    return wf.model_copy(update=update)


def workflow_files(path: str | Path) -> list[Path]:
    p = Path(path)
    if p.is_file():
        return [p]
    if not p.is_dir():
        raise WorkflowError([f"{p}: no such file or directory"])
    files = sorted(f for f in p.iterdir() if f.is_file() and f.suffix in SUFFIXES)
    if not files:
        raise WorkflowError([f"{p}: no workflow files (*.yaml, *.yml, *.toml)"])
    return files


def load_workflows(path: str | Path) -> list[Workflow]:
    """Every workflow in a directory (or one file); all problems of all files reported together."""
    problems: list[str] = []
    out: list[Workflow] = []
    for f in workflow_files(path):
        try:
            out.append(load_workflow(f))
        except WorkflowError as exc:
            problems += exc.problems
    names: dict[str, str] = {}
    for wf in out:
        if wf.name in names:
            problems.append(f"{wf.source}:1: name {wf.name!r} is also used by {names[wf.name]}; names must be unique")
        names.setdefault(wf.name, wf.source)
    if problems:
        raise WorkflowError(problems)
    return out
