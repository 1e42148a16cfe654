"""write_report: LaTeX from templates/, numbers from results files, citations from fetched papers."""

from __future__ import annotations

from typing import Literal

from langgraph.runtime import Runtime
from langgraph.types import Command

from agentlab.phases.common import RunContext, memo_prefix, run_phase
from agentlab.runs import RunDir
from agentlab.state import ResearchState


def report_context(state: ResearchState, revision: int, feedback: list[str], prefix: str,
                   run: RunDir | None = None) -> dict:
    """What the writer and reviewers see. `experiment` (the stage records) and `analysis` are the sources of
    the stage tables, figures and traced numbers; `run_repo` is where their results files are read (never
    trusted: agentlab.experiment.analysis.stage_results). `attempts` only for runs saved before the stages."""
    reviews = state.get("reviews") or []
    ctx = {
        "idea": state["idea"], "plan": state.get("plan") or {}, "papers": state.get("papers") or [],
        "notes": state.get("notes") or [], "attempts": state.get("attempts") or [],
        "best_attempt": state.get("best_attempt"), "results": state.get("results") or {},
        "experiment": state.get("experiment") or {}, "analysis": state.get("analysis") or {},
        "interpretation": state.get("interpretation") or {}, "revision": revision, "feedback": feedback,
        "prior_reviews": reviews[-1]["reviews"] if reviews else [], "memo_prefix": prefix,
    }
    if run is not None:
        ctx["run_repo"] = str(run.repo_dir)
    return ctx


def _body(state: ResearchState, ctx: RunContext, visit: int, feedback: list[str]) -> dict:
    from agentlab.report import write_report as write

    revision = (state.get("revision") or 0) + 1
    rctx = report_context(state, revision, feedback, f"{memo_prefix('write_report', visit)}/rev{revision}", ctx.run)
    report = write(rctx, ctx.settings, ctx.llm, ctx.run, lambda m: ctx.progress("write_report", m))
    return {"report": report, "revision": revision}


def write_report(state: ResearchState, runtime: Runtime[RunContext]) -> Command[Literal["review", "checkpoint"]]:
    return run_phase("write_report", state, runtime.context, _body, goto="review")
