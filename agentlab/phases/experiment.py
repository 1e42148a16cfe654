"""experiment: the LLM writes main.py, a sandbox runs it, results.json is checked, not believed.

Each attempt is a directory `repo/experiments/attempt-N/` and a commit. Its sandbox job id is
(run, "experiment", N), so a run killed mid-attempt and resumed reattaches to (or reuses the saved
result of) the same job instead of running it twice; the code itself is memoised per attempt.
Successful attempts are ranked by the plan's primary metric as measured, never by an LLM judge.
"""

from __future__ import annotations

import json
import math
import re
import time
from functools import lru_cache
from pathlib import Path

from langgraph.runtime import Runtime
from langgraph.types import Command
from pydantic import BaseModel, Field, ValidationError, field_validator

from agentlab.paths import smollm2_cache_dir
from agentlab.phases.common import RunContext, clip, memo_prefix, run_phase
from agentlab.prompts import render_messages
from agentlab.sandbox import Job, Limits, get_backend
from agentlab.schemas import ExperimentCode, Plan
from agentlab.state import ResearchState


class ResultsFile(BaseModel):
    """The results.json contract every experiment must write."""

    metrics: dict[str, float] = Field(min_length=1)
    details: dict = Field(default_factory=dict)

    @field_validator("metrics")
    @classmethod
    def _finite(cls, v: dict[str, float]) -> dict[str, float]:
        bad = [k for k, x in v.items() if not math.isfinite(x)]
        if bad:
            raise ValueError(f"non-finite metric values: {', '.join(bad)}")
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
    """(results, "") when results.json is valid and measured; (None, reason) otherwise."""
    path = workdir / "results.json"
    if not path.exists():
        return None, "the program did not write results.json"
    try:
        data = json.loads(path.read_text())
        res = ResultsFile.model_validate(data)
    except (json.JSONDecodeError, ValidationError) as exc:
        return None, f"results.json is malformed: {clip(str(exc), 600)}"
    primary = plan.primary_metric.name
    if primary not in res.metrics:
        return None, f"results.json lacks the primary metric {primary!r} (has: {', '.join(res.metrics)})"
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
        (workdir / "main.py").write_text(code.code)
        ctx.progress("experiment", f"attempt {n}: running in {sandbox.name}")
        mounts, env = model_cache_mounts()
        job = Job(id=f"{run.id}-experiment-{n}", workdir=str(workdir), command=["python", "main.py"],
                  readonly_paths=mounts, env=env,
                  limits=Limits(wall_seconds=s.attempt_timeout, memory_mb=s.attempt_memory_mb, gpus=s.attempt_gpus),
                  labels={"agentlab.run": run.id, "agentlab.node": "experiment", "agentlab.attempt": str(n)})
        res = sandbox.run(job)
        results, reason = (None, f"{res.reason}, exit code {res.exit_code}")
        if res.ok:
            results, reason = check_results(workdir, plan, code.code)
        status = "ok" if results is not None else "failed"
        metrics = (results or {}).get("metrics", {})
        attempt = {"n": n, "status": status, "reason": reason, "metrics": metrics,
                   "results_path": f"{rel}/results.json" if results is not None else None,
                   "backend": res.backend, "sandbox_reason": res.reason, "exit_code": res.exit_code,
                   "wall_seconds": res.wall_seconds, "error_tail": clip(res.stderr_tail, 1500)}
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


def experiment(state: ResearchState, runtime: Runtime[RunContext]) -> Command:
    return run_phase("experiment", state, runtime.context, _body)
