"""Settings: defaults < TOML file < environment < CLI flags, frozen into one object per run.

The run directory keeps a copy (`settings.json`, secrets removed) so `agentlab resume` in a new
process runs with the same settings; resume layers the same sources over it (saved < TOML file <
environment < flags, `resume_settings`) and reports what changed. Every choice is checked here, before
a run is created or continued, and a wrong name gets the nearest valid one (`did you mean`).
"""

from __future__ import annotations

import json
import os
import re
import tomllib
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from agentlab.phases import spec as _spec

#: the phases in run order (derived from the phase table, agentlab/phases/spec.py)
PHASES: tuple[str, ...] = _spec.phase_names()
#: stop label -> the phase after which the checkpoint asks the person (derived from the phase table)
CHECKPOINTS: dict[str, str] = _spec.stops()
DEFAULT_CHECKPOINTS = ("plan", "review")


class ConfigError(ValueError):
    """A setting is invalid; the message names the setting and the accepted values."""


@dataclass(frozen=True)
class Settings:
    # endpoint
    base_url: str | None = None
    api_key: str | None = None
    model: str = "gpt-4o-mini"
    models: dict[str, str] = field(default_factory=dict)  # phase -> model override
    temperature: float = 0.2
    structured_mode: str = "auto"  # auto | json_schema | json_object | prompt
    llm_backend: str | None = None  # a name in the llm_backends registry; None: "openai" (or a `name+` URL prefix)
    request_timeout: float = 120.0
    max_retries: int = 4
    backoff_base: float = 1.0
    max_repairs: int = 2
    max_output_tokens: int = 4096
    prices: dict[str, list[float]] = field(default_factory=dict)  # model -> [usd per 1M in, per 1M out]
    # runs, checkpoints (human stops) and the saver (persistence)
    runs_dir: str = "runs"
    checkpoints: tuple[str, ...] = DEFAULT_CHECKPOINTS  # stop labels of the phase table (as spelled)
    on_checkpoint: str = "park"  # headless: approve | park
    checkpointer_url: str | None = None  # the saver: None -> SQLite in the run dir; postgresql://... to share
    # budgets (None = unlimited)
    max_cost: float | None = None
    max_tokens: int | None = None
    max_minutes: float | None = None
    # literature
    arxiv_url: str = "https://export.arxiv.org/api/query"
    arxiv_delay: float = 3.0
    max_papers: int = 5
    # --- literature: fields added by the literature work go here ---
    paper_sources: tuple[str, ...] = ()  # names in the paper_sources registry; () -> from papers_dir / offline
    paper_source_options: dict[str, dict] = field(default_factory=dict)  # source name -> its own settings
    papers_dir: str | None = None  # local reading list: a folder of PDFs and/or BibTeX files
    offline: bool = False  # use only the shared paper cache (no arXiv)
    cache_dir: str = field(default_factory=lambda: os.environ.get(
        "AGENTLAB_CACHE_DIR", str(Path("~/.cache/agentlab/papers").expanduser())))
    arxiv_pdf_url: str = ""  # "" -> the feed's pdf link for arxiv.org, else <arxiv_url host>/pdf/<id>
    download_timeout: float = 60.0
    search_rounds: int = 2  # query rounds: the first from the idea, later ones refined from what was found
    coc_depth: int = 2  # clarification steps per question (D)
    coc_branching: int = 1  # clarifications tried per step (B); >1 picks the path by grounding score
    chunk_tokens: int = 256  # target size of one paper chunk
    context_budget_tokens: int = 6000  # most document text in one CoC call
    retriever: str = "bm25"  # bm25 | embedding
    # --- end literature ---
    plan_grounded_question: bool = True  # the plan asks the papers (CoC) what bears on the idea
    # experiment
    sandbox: str = "auto"
    max_attempts: int | None = None  # nodes of the implement stage (older name; stage_budgets wins)
    api_doc_mode: str = "full"  # full | compact: how much of the toolkit's API the experiment prompt carries
    experiment_minutes: float | None = None  # wall-time budget of one experiment stage (stage_budgets wins)
    stage_budgets: dict[str, dict] = field(default_factory=dict)  # stage -> {nodes, minutes, tokens}
    drafts: int = 2  # implement stage: first drafts of method.py before debugging / improving
    seeds: int = 3  # seeds stage: seeds of the final runs (at least 3 gives a confidence interval)
    experiment_model: str = "smollm2"  # the harness model: smollm2 (embedded weights) | tiny-llama (tests)
    harness_items: int = 4  # evaluation items per seed (windows / prompts of the split)
    proposal: str = "auto"  # implement stage: code (method.py from the LLM) | spec (a registered method's
    #                         settings; for weak models) | auto (spec on the embedded model, else code)
    attempt_timeout: float = 600.0
    attempt_memory_mb: int = 8192
    attempt_gpus: int = 0  # GPUs handed to each attempt (docker/ray; bwrap sees the host's devices only if > 0)
    # report / review
    template: str = "article"
    max_revisions: int = 1
    accept_score: int = 6
    latex_repairs: int = 2
    # --- report: fields added by the report work go here ---
    n_reviewers: int = 3  # automated reviewers in the ensemble (plus one meta-review)
    report_fix_rounds: int = 2  # times a section goes back to the writer for untraced numbers / unknown cites
    latex_timeout: float = 180.0  # seconds for one latexmk run
    review_max_chars: int = 40000  # paper text shown to each reviewer
    # --- end report ---

    def model_for(self, phase: str) -> str:
        return self.models.get(phase, self.model)

    def public_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d.pop("api_key", None)
        if d.get("checkpointer_url"):  # keep the URL, never its password
            d["checkpointer_url"] = re.sub(r"://([^:/@]+):[^@]*@", r"://\1:***@", d["checkpointer_url"])
        d["checkpoints"] = list(self.checkpoints)
        return d

    def save(self, path: Path) -> None:
        path.write_text(json.dumps(self.public_dict(), indent=2, sort_keys=True))

    def stops_after(self, phase: str, stage: str | None = None) -> bool:
        """Whether the checkpoint after `phase` asks the person (labels resolved by the phase table). With
        `stage`, after that stage of the phase (its label `<phase stop>.<stage>`); the phase's own label stops
        after its last stage only (the caller passes stage=None then)."""
        return any(_spec.stop_phase(c) == phase and _spec.stop_stage(c) == stage for c in self.checkpoints)


def parse_checkpoints(value: str | list[str] | tuple[str, ...]) -> tuple[str, ...]:
    items = value.split(",") if isinstance(value, str) else list(value)
    items = [i.strip() for i in items if i.strip()]
    if items == ["all"]:
        return _spec.stop_labels()
    if items in (["none"], []):
        return ()
    bad = [i for i in items if i not in _spec.stop_choices()]
    if bad:
        raise ConfigError(
            f"unknown checkpoint(s) {', '.join(bad)}: use a comma list of {', '.join(_spec.stop_labels())}, "
            "or all, or none"
        )
    return tuple(items)  # as spelled (an older spelling such as `report` stays); resolved by the table


_ENV = {
    "OPENAI_BASE_URL": "base_url",
    "OPENAI_API_KEY": "api_key",
    "AGENTLAB_MODEL": "model",
    "AGENTLAB_RUNS_DIR": "runs_dir",
    "AGENTLAB_SANDBOX": "sandbox",
    "AGENTLAB_ARXIV_URL": "arxiv_url",
    "AGENTLAB_ARXIV_DELAY": "arxiv_delay",
    "AGENTLAB_CHECKPOINTER_URL": "checkpointer_url",
    "AGENTLAB_BACKOFF_BASE": "backoff_base",
    "AGENTLAB_STRUCTURED_MODE": "structured_mode",
    "AGENTLAB_OFFLINE": "offline",
    "AGENTLAB_PAPERS_DIR": "papers_dir",
    "AGENTLAB_LLM_BACKEND": "llm_backend",
    "AGENTLAB_PAPER_SOURCES": "paper_sources",
    "AGENTLAB_EXPERIMENT_MODEL": "experiment_model",
}


def _coerce(name: str, value: Any) -> Any:
    types = {f.name: f.type for f in fields(Settings)}
    if name not in types:
        raise unknown("setting", name, [n for n in types if n != "api_key"], "the settings are the fields of "
                      "agentlab/config.py:Settings")
    t = str(types[name])
    try:
        if name == "checkpoints":
            return parse_checkpoints(value)
        if value is None:
            return None
        if t.startswith("bool"):
            return value if isinstance(value, bool) else str(value).strip().lower() in ("1", "true", "yes", "on")
        if t.startswith("float"):
            return float(value)
        if t.startswith("int"):
            return int(value)
        if t.startswith("dict") and isinstance(value, str):
            value = json.loads(value)
            if not isinstance(value, dict):
                raise ValueError("expected a JSON object")
            return value
        if t.startswith("tuple") and isinstance(value, (str, list)):
            items = value.split(",") if isinstance(value, str) else value
            return tuple(str(x).strip() for x in items if str(x).strip())
        return value
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"setting {name!r}: cannot use {value!r} ({exc})") from exc


def parse_set_options(items: list[str] | tuple[str, ...] | None) -> dict[str, Any]:
    """`--set KEY=VALUE` options (run, resume, batch) as overrides; a bad item names the setting it meant.
    VALUE is coerced like a TOML/env value (JSON for a dict, a comma list for a tuple)."""
    out: dict[str, Any] = {}
    for item in items or ():
        key, sep, raw = str(item).partition("=")
        key = key.strip().replace("-", "_")
        if not sep or not key:
            raise ConfigError(f"--set {item!r}: expected KEY=VALUE, e.g. --set sandbox=bwrap")
        if key not in {f.name for f in fields(Settings)} or key == "api_key":
            import difflib

            near = difflib.get_close_matches(key, [f.name for f in fields(Settings) if f.name != "api_key"], n=1)
            raise ConfigError(f"--set {item!r}: unknown setting {key!r}"
                              + (f" (did you mean {near[0]!r}?)" if near else ""))
        out[key] = _coerce(key, raw.strip())
    return out


def unknown(what: str, value: Any, choices: Any, listing: str | None = None) -> ConfigError:
    """`unknown sandbox 'bwarp' (did you mean 'bwrap'?); choose one of: auto, bwrap, ...` (`listing`: what to
    say instead of the list, when it is long)."""
    import difflib

    names = [str(c) for c in choices]
    near = difflib.get_close_matches(str(value), names, n=1, cutoff=0.5)
    hint = f" (did you mean {near[0]!r}?)" if near else ""
    return ConfigError(f"unknown {what} {value!r}{hint}; {listing or 'choose one of: ' + ', '.join(names)}")


def _choose(what: str, value: Any, choices: Any) -> None:
    if value not in list(choices):
        raise unknown(what, value, choices)


def _check_names(s: Settings) -> None:
    """Names that must exist (a fixed list or a registry, plugins included): refused before anything runs."""
    from agentlab.paths import templates_dir

    _choose("on_checkpoint", s.on_checkpoint, ("approve", "park"))
    _choose("structured_mode", s.structured_mode, ("auto", "json_schema", "json_object", "prompt"))
    _choose("api_doc_mode", s.api_doc_mode, ("full", "compact"))
    _choose("proposal", s.proposal, ("auto", "code", "spec"))
    _choose("experiment_model", s.experiment_model, ("smollm2", "tiny-llama"))
    root = templates_dir()
    _choose("report template", s.template,
            sorted(p.name for p in root.iterdir() if (p / "main.tex.j2").exists()) if root.exists() else [])
    from agentlab.sandbox.base import backend_names

    _choose("sandbox", s.sandbox, ["auto", *backend_names()])
    from agentlab.retrieval.retriever import retriever_names

    _choose("retriever", s.retriever, retriever_names())
    if s.llm_backend:
        from agentlab.llm.backend import LLM_BACKENDS

        _choose("llm_backend", s.llm_backend, LLM_BACKENDS.names())
    if s.paper_sources:
        from agentlab.literature.paper_source import PAPER_SOURCES

        for name in s.paper_sources:
            _choose("paper source", name, PAPER_SOURCES.names())


MIN_IDEA = 10  # characters, whitespace collapsed (the same rule as a workflow file's idea)


def check_idea(idea: str) -> str:
    """The idea, whitespace collapsed; a ConfigError when it is empty or too short to be a research question."""
    text = " ".join(str(idea or "").split())
    if len(text) < MIN_IDEA:
        raise ConfigError(f"the idea must be a real research question ({MIN_IDEA} characters or more), e.g. "
                          "agentlab run \"Does H2O keep perplexity within 5% at 4x compression?\"")
    return text


def _check_experiment(s: Settings) -> None:
    from agentlab.experiment.stages import check_budgets

    try:
        check_budgets(s.stage_budgets)
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    for name, lo, hi in (("drafts", 1, 10), ("seeds", 1, 10), ("harness_items", 1, 64)):
        v = getattr(s, name)
        if not lo <= v <= hi:
            raise ConfigError(f"{name} must be from {lo} to {hi} (got {v})")
    if s.max_attempts is not None and not 1 <= s.max_attempts <= 50:
        raise ConfigError(f"--max-attempts must be from 1 to 50 (got {s.max_attempts})")


def _validate(s: Settings) -> Settings:
    _check_names(s)
    _check_experiment(s)
    for name in ("max_cost", "max_tokens", "max_minutes"):
        v = getattr(s, name)
        if v is not None and v <= 0:
            raise ConfigError(f"--{name.replace('_', '-')} must be positive (got {v})")
    return s


def _layers(config_file: str | Path | None, env: Mapping[str, str], set_values: Mapping[str, Any] | None,
            overrides: Mapping[str, Any] | None) -> list[tuple[str, dict[str, Any]]]:
    """(source, values) from the TOML file, the environment, `--set` and the flags, lowest first."""
    layers: list[tuple[str, dict[str, Any]]] = []
    path = Path(config_file) if config_file else Path(env.get("AGENTLAB_CONFIG", "agentlab.toml"))
    if path.exists():
        try:
            data = tomllib.loads(path.read_text())
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{path}: invalid TOML: {exc}") from exc
        section = data.get("agentlab", data)
        layers.append((str(path), {k: _coerce(k, v) for k, v in section.items()}))
    elif config_file:
        raise ConfigError(f"config file {path} does not exist")
    for var, name in _ENV.items():
        if env.get(var):
            layers.append((f"env {var}", {name: _coerce(name, env[var])}))
    layers.append(("--set", {k: _coerce(k, v) for k, v in (set_values or {}).items() if v is not None}))
    layers.append(("flag", {k: _coerce(k, v) for k, v in (overrides or {}).items() if v is not None}))
    return layers


def load_settings(config_file: str | Path | None = None, overrides: dict[str, Any] | None = None,
                  base: Settings | None = None, env: Mapping[str, str] | None = None, *,
                  set_values: Mapping[str, Any] | None = None, validate: bool = True,
                  sources: dict[str, str] | None = None) -> Settings:
    """Build settings: `base` (or defaults) < TOML file < environment < `set_values` (--set) < `overrides`
    (flags). `sources`, when given, is filled with setting -> where its value came from."""
    values: dict[str, Any] = {}
    for source, layer in _layers(config_file, os.environ if env is None else env, set_values, overrides):
        values.update(layer)
        if sources is not None:
            sources.update({k: source for k in layer})
    s = replace(base if base is not None else Settings(), **values)
    return _validate(s) if validate else s


def saved_settings(path: Path) -> Settings:
    """The settings a run saved (not validated: an old run may hold a value that is no longer valid)."""
    data = json.loads(path.read_text())
    data["checkpoints"] = tuple(data.get("checkpoints", DEFAULT_CHECKPOINTS))
    data["paper_sources"] = tuple(data.get("paper_sources", ()))
    known = {f.name for f in fields(Settings)}
    return Settings(**{k: v for k, v in data.items() if k in known})


def settings_from_run(path: Path, overrides: dict[str, Any] | None = None,
                      env: dict[str, str] | None = None, validate: bool = True) -> Settings:
    """Settings saved with a run, with the secret re-read from the environment and flags applied."""
    base = saved_settings(path)
    env = os.environ if env is None else env
    extra: dict[str, Any] = {"api_key": env.get("OPENAI_API_KEY")}
    if env.get("OPENAI_BASE_URL"):
        extra["base_url"] = env["OPENAI_BASE_URL"]
    extra.update({k: v for k, v in (overrides or {}).items() if v is not None})
    s = replace(base, **{k: _coerce(k, v) for k, v in extra.items() if v is not None or k == "api_key"})
    return _validate(s) if validate else s


#: settings a resume never changes or reports: the secret, and where the run lives
_NOT_RESUMED = ("api_key", "runs_dir")


def resume_settings(path: Path, config_file: str | Path | None = None, overrides: Mapping[str, Any] | None = None,
                    set_values: Mapping[str, Any] | None = None, env: Mapping[str, str] | None = None,
                    ) -> tuple[Settings, list[dict[str, Any]]]:
    """A run's saved settings < TOML file < environment < --set < flags, validated; and what changed
    ([{setting, old, new, source}]) against what was saved."""
    saved = saved_settings(path)
    env = os.environ if env is None else env
    sources: dict[str, str] = {}
    new = load_settings(config_file, dict(overrides or {}), base=saved, env=env, set_values=set_values,
                        validate=False, sources=sources)
    new = replace(new, runs_dir=saved.runs_dir, api_key=env.get("OPENAI_API_KEY") or new.api_key)
    return _validate(new), changed(saved, new, sources)


def changed(old: Settings, new: Settings, sources: Mapping[str, str]) -> list[dict[str, Any]]:
    """The settings that differ between `old` and `new`, with the source that set each (public values only)."""
    a, b = old.public_dict(), new.public_dict()
    return [{"setting": k, "old": a.get(k), "new": b.get(k), "source": sources.get(k, "?")}
            for k in sorted(b) if k not in _NOT_RESUMED and a.get(k) != b.get(k)]


def with_settings(s: Settings, values: Mapping[str, Any], source: str) -> tuple[Settings, list[dict[str, Any]]]:
    """`s` with `values` applied (coerced and validated like flags), and the changes they make."""
    new = _validate(replace(s, **{k: _coerce(k, v) for k, v in values.items() if k not in _NOT_RESUMED}))
    return new, changed(s, new, {k: source for k in values})


def describe_change(c: Mapping[str, Any]) -> str:
    """`structured_mode: 'json_schema' -> 'auto' (env AGENTLAB_STRUCTURED_MODE)`"""
    return f"{c['setting']}: {c['old']!r} -> {c['new']!r} ({c['source']})"
