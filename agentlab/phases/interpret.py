"""interpret: what the measured results say about the hypothesis (numbers come from results files).

The model sees every experiment stage (status, reason, the table of its best node's results file) and the
comparisons code computed (`state["analysis"]`). Its verdict then passes `verdict_allowed`: "supported" or
"refuted" only when a paired test against the strongest baseline backs it. No measured results, no
interpretation: the phase stops (and with it the paper).
"""

from __future__ import annotations

import json
from typing import Literal

from langgraph.runtime import Runtime
from langgraph.types import Command

from agentlab.experiment import analysis as an
from agentlab.phases.common import PhaseStop, RunContext, clip, memo_prefix, run_phase
from agentlab.prompts import render_messages
from agentlab.runs import RunDir
from agentlab.schemas import Interpretation
from agentlab.state import ResearchState

TABLE_CHARS = 3000  # one stage's table in the prompt
ANALYSIS_CHARS = 4000
_ROW_KEYS = ("id", "method", "params", "status")


def _compact(row: dict, metrics: list[str]) -> dict:
    """A stage-table row for the prompt: the cell, and per metric its mean and interval."""
    out = {k: row.get(k) for k in _ROW_KEYS}
    out["params"] = an.params_text(row.get("params"), 80)
    for m in metrics:
        if row.get(m) is not None:
            out[m] = {"mean": row[m], "ci95": [row.get(f"{m}_lo"), row.get(f"{m}_hi")], "n": row.get(f"{m}_n")}
    return out


def stages_digest(state: ResearchState, run: RunDir) -> list[dict]:
    """Every stage with its status, reason and (clipped) table of its best node's results file."""
    out = []
    for st in an.stage_results(run.repo_dir, state.get("experiment") or {}):
        res = st["results"]
        table = ""
        if res:
            metrics = [m for m in (res.get("metrics") or {}) if isinstance(m, str)]
            rows = [_compact(r, metrics) for r in an.stage_table(res, metrics)]
            table = clip(json.dumps(rows), TABLE_CHARS)
        spec = (res or {}).get("spec") if isinstance((res or {}).get("spec"), dict) else {}
        out.append({"name": st["name"], "status": st["status"], "reason": clip(st["reason"], 300),
                    "path": st["path"], "split": spec.get("split"), "seeds": len(spec.get("seeds") or []),
                    "table": table, "error": clip(st["error"], 200)})
    return out


def _analysis(state: ResearchState) -> dict:
    """state["analysis"], or computed from state["results"] when the experiment did not store it."""
    if isinstance(state.get("analysis"), dict) and state["analysis"].get("comparisons") is not None:
        return state["analysis"]
    best = (state.get("experiment") or {}).get("best") or {}
    return an.analyze(state.get("results") or {}, proposed_method=best.get("method") or "proposed")


def _analysis_for_prompt(analysis: dict) -> str:
    keep = ("metric", "baseline", "role", "mean_a", "mean_b", "diff", "rel_diff", "paired_on", "test", "ci_overlap",
            "conclusion")
    view = {**{k: v for k, v in analysis.items() if k != "comparisons"},
            "comparisons": [{k: c.get(k) for k in keep if k in c} for c in analysis.get("comparisons") or []]}
    return clip(json.dumps(view, indent=1), ANALYSIS_CHARS)


def require_results(state: ResearchState) -> None:
    """No result, no paper: stop unless the experiment finished with measured results."""
    exp = state.get("experiment") or {}
    if not state.get("results") or not exp.get("done"):
        why = "the experiment has not finished (experiment.done is false)" if not exp.get("done") else \
            "there is no seeds-stage results file (state['results'] is empty)"
        raise PhaseStop(f"interpret: no measured results: {why}. No result, no paper: finish or resume the "
                        f"experiment phase (stage {exp.get('stage') or '?'}) before interpreting.")


def _body(state: ResearchState, ctx: RunContext, visit: int, feedback: list[str]) -> dict:
    require_results(state)
    analysis = _analysis(state)
    msgs = render_messages("interpret", idea=state["idea"], plan=state["plan"],
                           stages=stages_digest(state, ctx.run), analysis_json=_analysis_for_prompt(analysis),
                           analysis=analysis, feedback=feedback)
    interp = ctx.llm.structured(msgs, Interpretation, phase="interpret", purpose="interpret",
                                memo_key=f"{memo_prefix('interpret', visit)}/interpretation")
    verdict, caveat = an.verdict_allowed(analysis, interp.verdict)
    interp.claimed_verdict, interp.verdict_caveat = interp.verdict, caveat
    if caveat:
        interp.verdict = verdict
        interp.caveats.append(caveat)
        ctx.run.log(f"interpret: {caveat}")
    return {"interpretation": interp.model_dump(mode="json"), "analysis": analysis}


def interpret(state: ResearchState, runtime: Runtime[RunContext]) -> Command[Literal["checkpoint"]]:
    return run_phase("interpret", state, runtime.context, _body)
