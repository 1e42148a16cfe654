"""experiment: the LLM writes main.py, a sandbox runs it, results.json is checked, not believed.

Each attempt is a directory `repo/experiments/attempt-N/` and a commit. Its sandbox job id is
(run, "experiment", N), so a run killed mid-attempt and resumed reattaches to (or reuses the saved
result of) the same job instead of running it twice; the code itself is memoised per attempt.
Successful attempts are ranked by the plan's primary metric as measured, never by an LLM judge.
"""

from __future__ import annotations

import math
import re
import time
from functools import lru_cache
from pathlib import Path
from typing import ClassVar, Literal

from langgraph.runtime import Runtime
from langgraph.types import Command
from pydantic import BaseModel, Field, ValidationError, field_validator

from agentlab.paths import smollm2_cache_dir
from agentlab.phases.common import RunContext, clip, memo_prefix, run_phase
from agentlab.prompts import render_messages
from agentlab.sandbox import Job, Limits, get_backend
from agentlab.sandbox.safe_files import UntrustedFileError, read_json, validation_message, write_new
from agentlab.schemas import ExperimentCode, Plan
from agentlab.state import ResearchState


class ResultsFile(BaseModel):
    """The results.json contract every experiment must write: at most MAX_METRICS metrics named by
    METRIC_NAME, each a finite number (not a bool), and a `details` dict. The file itself is read
    through agentlab.sandbox.safe_files (at most MAX_BYTES), so its size bounds `details` too.
    Error messages never quote a value or a name that failed the checks (they go back into a prompt)."""

    MAX_BYTES: ClassVar[int] = 1_000_000
    MAX_METRICS: ClassVar[int] = 64
    METRIC_NAME: ClassVar[re.Pattern] = re.compile(r"[A-Za-z0-9_.:/@+-]{1,64}")

    metrics: dict[str, float] = Field(min_length=1)
    details: dict = Field(default_factory=dict)

    @field_validator("metrics", mode="before")
    @classmethod
    def _bounded_finite(cls, v: object) -> object:
        if not isinstance(v, dict):
            return v  # pydantic says "Input should be a valid dictionary"
        if len(v) > cls.MAX_METRICS:
            raise ValueError(f"{len(v)} metrics, at most {cls.MAX_METRICS} allowed (put the rest in details)")
        for i, (k, x) in enumerate(v.items(), 1):
            if not isinstance(k, str) or not cls.METRIC_NAME.fullmatch(k):
                raise ValueError(f"metric #{i} has a name that is not 1-64 characters of [A-Za-z0-9_.:/@+-]")
            if isinstance(x, bool) or not isinstance(x, (int, float)):
                raise ValueError(f"metric {k} is not a number")  # noqa: TRY004 - pydantic wants ValueError
            if not math.isfinite(x):
                raise ValueError(f"metric {k} is not finite")
        return v


@lru_cache(maxsize=2)
def api_doc(mode: str = "full") -> str:
    """The toolkit's API, generated from its docstrings; `compact` keeps headings and one-line summaries
    (for models with small context windows)."""
    try:
        from agentlab.modules.apidoc import render_api_doc
    except ImportError:
        return ""
    doc = render_api_doc()
    return compact_api_doc(doc) if mode == "compact" else doc


def compact_api_doc(doc: str) -> str:
    out, want_summary, in_code = [], False, False
    for line in doc.splitlines():
        if line.startswith("```"):
            in_code = not in_code
            continue
        if in_code:
            continue
        if line.startswith("#"):
            out.append(line)
            want_summary = True
        elif want_summary and line.strip():
            out.append(line)
            want_summary = False
    return "\n".join(out)


def model_cache_mounts() -> tuple[tuple[str, ...], dict[str, str]]:
    """Hand the host's converted SmolLM2 weights to the sandbox read-only, so an attempt that loads the
    model does not convert the GGUF again (the toolkit falls back to converting when it is absent)."""
    cache = smollm2_cache_dir()
    if (cache / "config.json").is_file():
        return (str(cache),), {"AGENTLAB_MODEL_CACHE": str(cache)}
    return (), {}


def check_results(workdir: Path, plan: Plan, code: str) -> tuple[dict | None, str]:
    """(results, "") when results.json is valid and measured; (None, reason) otherwise.

    The file is hostile: it is read without following links, size-capped and parsed with bounded
    depth and numbers (agentlab.sandbox.safe_files); no reason ever quotes its content."""
    try:
        data = read_json(workdir, "results.json", max_bytes=ResultsFile.MAX_BYTES)
    except UntrustedFileError as exc:
        if exc.kind == "missing":
            return None, "the program did not write results.json"
        if exc.kind in ("symlink", "not_regular"):
            return None, f"{exc}; write results.json as a regular file in the working directory"
        if exc.kind in ("too_large", "sparse"):
            return None, (f"{exc}; keep results.json under {ResultsFile.MAX_BYTES} bytes "
                          "(summaries in it, bulky data in other files)")
        if exc.kind in ("unreadable", "invalid"):
            return None, str(exc)
        return None, f"results.json is malformed: {exc}"
    try:
        res = ResultsFile.model_validate(data)
    except ValidationError as exc:
        return None, f"results.json is malformed: {validation_message(exc, 600)}"
    primary = plan.primary_metric.name
    if primary not in res.metrics:
        return None, clip(f"results.json lacks the primary metric {primary!r} (has: {', '.join(res.metrics)})", 600)
    literals = set(re.findall(r"(?<![\w.])\d+\.\d+(?:[eE][-+]?\d+)?", code))
    baked = [k for k, v in res.metrics.items() if v != int(v) and (repr(v) in literals or f"{v:g}" in literals)]
    if baked and len(baked) == len([v for v in res.metrics.values() if v != int(v)]):
        return None, f"metrics {', '.join(baked)} appear as literals in the code: results must be measured, not written in"
    return data, ""


def _attempt_prompt(state: ResearchState, ctx: RunContext, feedback: list[str], last: dict | None) -> list[dict]:
    s = ctx.settings
    return render_messages("experiment", idea=state["idea"], plan=state["plan"], api_doc=api_doc(s.api_doc_mode),
                           feedback=feedback, last=last, timeout=int(s.attempt_timeout), memory_mb=s.attempt_memory_mb)


def _body(state: ResearchState, ctx: RunContext, visit: int, feedback: list[str]) -> dict:
    s, run = ctx.settings, ctx.run
    plan = Plan.model_validate(state["plan"])
    sandbox = get_backend(s.sandbox)
    attempts = list(state.get("attempts") or [])
    base, last, successes = len(attempts), None, []
    started = time.monotonic()
    for k in range(1, s.max_attempts + 1):
        n = base + k
        if s.experiment_minutes is not None and k > 1 and (time.monotonic() - started) / 60 >= s.experiment_minutes:
            ctx.progress("experiment", f"phase wall-time budget of {s.experiment_minutes:g} min used: no attempt {n}")
            break
        ctx.progress("experiment", f"attempt {n}: writing code")
        code = ctx.llm.structured(_attempt_prompt(state, ctx, feedback, last), ExperimentCode, phase="experiment",
                                  purpose=f"code attempt {n}", memo_key=f"{memo_prefix('experiment', visit)}/code-{k}")
        rel = f"experiments/attempt-{n}"
        workdir = run.repo_dir / rel
        workdir.mkdir(parents=True, exist_ok=True)
        write_new(workdir, "main.py", code.code.encode())  # never through a link a job left
        ctx.progress("experiment", f"attempt {n}: running in {sandbox.name}")
        mounts, env = model_cache_mounts()
        job = Job(id=f"{run.id}-experiment-{n}", workdir=str(workdir), command=["python", "main.py"],
                  readonly_paths=mounts, env=env, inputs=("main.py",),
                  limits=Limits(wall_seconds=s.attempt_timeout, memory_mb=s.attempt_memory_mb, gpus=s.attempt_gpus),
                  labels={"agentlab.run": run.id, "agentlab.node": "experiment", "agentlab.attempt": str(n)})
        res = sandbox.run(job)
        results, reason = (None, f"{res.reason}, exit code {res.exit_code}")
        if res.ok:
            results, reason = check_results(workdir, plan, code.code)
            refused = [x for x in res.not_collected if x.startswith("results.json:")]
            if results is None and refused:
                reason = f"results.json was not accepted from the sandbox ({clip(refused[0], 200)}); write a regular file"
        status = "ok" if results is not None else "failed"
        metrics = (results or {}).get("metrics", {})
        attempt = {"n": n, "status": status, "reason": reason, "metrics": metrics,
                   "results_path": f"{rel}/results.json" if results is not None else None,
                   "backend": res.backend, "sandbox_reason": res.reason, "exit_code": res.exit_code,
                   "wall_seconds": res.wall_seconds, "error_tail": clip(res.stderr_tail, 1500),
                   "not_collected": [clip(x, 200) for x in res.not_collected[:10]]}
        pm = plan.primary_metric.name
        msg = f"attempt {n}: {status}" + (f" {pm}={metrics[pm]:g}" if pm in metrics else f" ({clip(reason, 120)})")
        attempt["commit"] = run.commit([rel], msg)
        ctx.progress("experiment", msg)
        attempts.append(attempt)
        if results is not None:
            successes.append((attempt, results))
            if len(successes) >= s.best_of:
                break
        else:
            last = {"code": clip(code.code, 6000), "reason": reason, "stderr": clip(res.stderr_tail, 3000),
                    "stdout": clip(res.stdout_tail, 1500)}
    best, best_results = None, {}
    if successes:
        sign = 1 if plan.primary_metric.direction == "lower" else -1
        best_attempt, best_results = min(successes, key=lambda ar: sign * ar[0]["metrics"][plan.primary_metric.name])
        best = best_attempt["n"]
    return {"attempts": attempts, "best_attempt": best, "results": best_results}


def experiment(state: ResearchState, runtime: Runtime[RunContext]) -> Command[Literal["checkpoint"]]:
    return run_phase("experiment", state, runtime.context, _body)
