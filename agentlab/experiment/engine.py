"""The staged experiment: one stage per visit of the `experiment` node (stage table: stages.py).

    baselines → implement → sweep → ablations → seeds

Everything a stage makes is a node (nodes.py). Stages other than `implement` build their specs by code
from what earlier stages measured; `implement` is a tree search (search.py). A stage with no valid node
raises `StageFailed`: the run parks at the experiment's checkpoint with the reason and the stage's
nodes so far, and `retry` continues that stage with another budget's worth of nodes. Selection uses the
`val` split; only the `seeds` stage measures on `test`.
"""

from __future__ import annotations

from typing import Any

from agentlab.experiment import choices, nodes, stages
from agentlab.experiment.context import StageRun
from agentlab.phases.common import PhaseStop, RunContext, clip
from agentlab.prompts import render_messages
from agentlab.schemas import Plan
from agentlab.state import ExperimentRecord, ResearchState, StageRecord


class StageFailed(PhaseStop):
    """A stage produced no valid node. `update` keeps its record in the state, so a retry continues it."""

    def __init__(self, message: str, update: dict):
        super().__init__(message)
        self.update = update


# ---- the pass ------------------------------------------------------------------------------------------
def new_pass(state: ResearchState) -> bool:
    """Whether the experiment starts over: first time, after it finished, or sent back to it."""
    exp = state.get("experiment") or {}
    if not exp or exp.get("done"):
        return True
    last = (state.get("human") or [{}])[-1]
    if last.get("action") == "back" and last.get("phase") == "experiment":
        return True
    if state.get("phase") == "experiment":  # a stage finished: go on with the next
        return False
    # coming from an earlier phase starts afresh, unless this retries (or gives feedback to) a stopped stage
    return not (last.get("at") == "experiment" and last.get("action") in ("retry", "approve", "feedback"))


def start(state: ResearchState, feedback: list[str]) -> ExperimentRecord:
    exp = dict(state.get("experiment") or {})
    if new_pass(state):
        exp = {"pass_n": int(exp.get("pass_n") or 0) + 1, "stage": None, "done": False, "stages": {},
               "feedback": list(feedback)}
    else:
        exp = {**exp, "feedback": list(exp.get("feedback") or []) + list(feedback)}
    return exp  # type: ignore[return-value]


def run_next_stage(state: ResearchState, ctx: RunContext, feedback: list[str]) -> dict:
    """Run the stage after the last finished one; returns the state update."""
    exp = start(state, feedback)
    name = stages.next_stage(exp.get("stage"))
    assert name is not None
    prior = (exp.get("stages") or {}).get(name) or {}
    rec: StageRecord = {"name": name, "status": "failed", "reason": "", "nodes": list(prior.get("nodes") or []),
                        "tries": int(prior.get("tries") or 0) + (1 if prior else 0), "best": None}
    sr = StageRun(ctx, state, exp, rec, stages.budget_of(name, _overrides(ctx)))
    ctx.progress("experiment", f"stage {name}: {stages.stage(name).help}")
    try:
        RUNNERS[name](sr)
    finally:
        rec["used"] = sr.used()
    exp["stages"] = {**(exp.get("stages") or {}), name: rec}
    if rec["status"] == "failed":
        reasons = "; ".join(f"{n['id']}: {clip(n.get('reason', ''), 200)}" for n in rec["nodes"][-3:])
        raise StageFailed(f"experiment stage {name} produced no valid result ({rec.get('reason') or reasons}). "
                          f"Retry continues it with another {sr.budget.nodes} node(s); or go back to the plan "
                          "with feedback.", {"experiment": exp})
    exp["stage"] = name
    exp["done"] = stages.next_stage(name) is None
    if name == "implement":
        exp["best"] = {"node": rec.get("best"), "method": nodes.PROPOSED, **sr.proposed_cell()}
    update: dict[str, Any] = {"experiment": exp}
    if exp["done"]:
        from agentlab.experiment.analysis import analyze

        results = sr.results_of(rec)
        update["results"] = results
        update["analysis"] = analyze(results)
    return update


def _overrides(ctx: RunContext) -> dict:
    o = {k: dict(v) for k, v in (ctx.settings.stage_budgets or {}).items()}
    if ctx.settings.max_attempts and "nodes" not in o.get("implement", {}):
        o.setdefault("implement", {})["nodes"] = ctx.settings.max_attempts
    if ctx.settings.experiment_minutes:
        for name in stages.stage_names():
            o.setdefault(name, {}).setdefault("minutes", ctx.settings.experiment_minutes)
    return o


# ---- baselines -------------------------------------------------------------------------------------------
def baselines(sr: StageRun) -> None:
    """Spec nodes in two constrained steps (the family, then its baselines and metric: enums of registered
    names, so even the embedded model fills them); a debug node re-asks with the harness's refusal."""
    last_error = ""
    while sr.may_add():
        nid = sr.next_id()
        t0 = sr.tokens()
        view = {"idea": sr.state["idea"], "plan": sr.plan(), "families": choices.families(),
                "feedback": sr.exp.get("feedback") or [], "error": last_error}
        fam = sr.ctx.llm.structured(render_messages("experiment_family", **view), choices.family_schema(),
                                    phase="experiment", purpose=f"family {nid}", memo_key=sr.memo(f"{nid}-family"))
        info = choices.families()[fam.family]
        pick = sr.ctx.llm.structured(render_messages("experiment_baselines", family=info, **view),
                                     choices.baseline_schema(fam.family), phase="experiment",
                                     purpose=f"baselines spec {nid}", memo_key=sr.memo(nid))
        sr.exp.update(family=fam.family, primary=pick.primary or info.primary, knob=info.knob,
                      knob_value=info.knob_default, baselines=list(pick.baselines))
        sr.exp["direction"] = info.metrics[sr.exp["primary"]]
        node = sr.node(nid, "debug" if last_error else "spec", parent=sr.last_id(), tokens=sr.tokens() - t0)
        node, _ = nodes.run_node(sr.ctx, node, sr.spec(sr.baseline_cells()), {})
        sr.add(node)
        if node["status"] == "ok":
            return sr.done(node)
        last_error = node["reason"]
    sr.give_up()


# ---- sweep ------------------------------------------------------------------------------------------------
def sweep(sr: StageRun) -> None:
    """The proposed method and the baselines at every knob value: one node, no LLM."""
    info = sr.info()
    values = list(info.sweep)
    while sr.may_add():
        nid = sr.next_id()
        node = sr.node(nid, "sweep", parent=sr.best_of("implement"))
        cells = sr.baseline_cells(values) + [sr.proposed_cell(values)]
        node, res = nodes.run_node(sr.ctx, node, sr.spec(cells), sr.best_files(), trusted=sr.trusted(),
                                   knob=info.knob, knob_value=sr.exp["knob_value"])
        if res is not None and len(_ok_knobs(res, info.knob)) < 2:
            node.update(status="failed", reason="the proposed method ran at fewer than two values of "
                        f"{info.knob}: no curve")
        sr.add(node)
        if node["status"] == "ok":
            return sr.done(node)
    sr.give_up()


def _ok_knobs(res: dict, knob: str) -> set:
    return {str((c.get("params") or {}).get(knob)) for c in res["cells"]
            if nodes.is_proposed(c) and c["status"] == "ok"}


# ---- ablations --------------------------------------------------------------------------------------------
def ablations(sr: StageRun) -> None:
    """One node per ablation the plan names: the proposed method with parameters changed (checked against
    its signature before anything runs), next to the unablated method on the same items."""
    wanted = list(Plan.model_validate(sr.state["plan"]).ablations)
    if not wanted:
        sr.rec.update(status="skipped", reason="the plan names no ablations")
        return
    accepted = sr.proposed_params()
    if not {k for k in accepted if k != sr.exp["knob"]}:
        sr.rec.update(status="skipped", reason="the proposed method has no parameter besides the key one "
                      f"({sr.exp['knob']}) to ablate")
        return
    done = {n.get("label") for n in sr.rec["nodes"] if n.get("status") == "ok"}
    for ablation in wanted:
        if ablation in done or not sr.may_add():
            continue
        nid = sr.next_id()
        t0 = sr.tokens()
        try:
            params = _ablation_params(sr, nid, ablation, accepted)
        except ValueError as exc:
            node = sr.node(nid, "ablation", parent=sr.best_of("implement"), tokens=sr.tokens() - t0)
            node.update(status="failed", reason=clip(str(exc), 800), label=ablation)
            sr.add(node)
            continue
        node = sr.node(nid, "ablation", parent=sr.best_of("implement"), tokens=sr.tokens() - t0)
        node["label"] = ablation
        cells = [sr.proposed_cell(), sr.proposed_cell(extra=params, label=f"ablation:{nodes.slug(ablation)}")]
        node, _ = nodes.run_node(sr.ctx, node, sr.spec(cells), sr.best_files(), trusted=sr.trusted())
        sr.add(node)
    ok = [n for n in sr.rec["nodes"] if n.get("status") == "ok"]
    if ok:
        sr.rec.update(status="ok", best=ok[-1]["id"], results_path=ok[-1].get("results_path"),
                      reason="" if len(ok) >= len(wanted) else f"{len(wanted) - len(ok)} ablation(s) failed")
        return
    sr.give_up()


def _ablation_params(sr: StageRun, nid: str, ablation: str, accepted: dict) -> dict:
    """The LLM's parameters for one ablation: an enum of one-parameter changes for a spec proposal (weak
    models), else free parameters re-asked once with the exact problem when they are not the method's."""
    view = {"idea": sr.state["idea"], "plan": sr.plan(), "ablation": ablation, "params": accepted,
            "knob": sr.exp["knob"], "feedback": sr.exp.get("feedback") or []}
    if sr.exp.get("proposal"):
        options = choices.ablation_options(accepted, sr.exp["knob"])
        if not options:
            raise ValueError(f"ablation {ablation!r}: the proposed configuration has no parameter to change")
        pick = sr.ctx.llm.structured(render_messages("experiment_ablation", error="", options=sorted(options), **view),
                                     choices.ablation_schema(tuple(sorted(options))), phase="experiment",
                                     purpose=f"ablation {ablation}", memo_key=sr.memo(f"{nid}-choice"))
        return dict(options[pick.choice])
    error = ""
    for k in range(2):
        pick = sr.ctx.llm.structured(render_messages("experiment_ablation", error=error, options=[], **view),
                                     choices.AblationChoice, phase="experiment", purpose=f"ablation {ablation}",
                                     memo_key=sr.memo(f"{nid}-params{k}"))
        try:
            choices.check_params(pick.params, accepted, sr.exp["knob"], "the proposed method")
            return dict(pick.params)
        except ValueError as exc:
            error = str(exc)
    raise ValueError(f"ablation {ablation!r}: {error}")


# ---- seeds ------------------------------------------------------------------------------------------------
def seeds(sr: StageRun) -> None:
    """The chosen configuration and every baseline on the test split, seeds 0..n-1 (no selection here)."""
    n = max(1, sr.ctx.settings.seeds)
    while sr.may_add():
        nid = sr.next_id()
        node = sr.node(nid, "seeds", parent=sr.best_of("implement"))
        cells = sr.baseline_cells() + [sr.proposed_cell()]
        node, res = nodes.run_node(sr.ctx, node, sr.spec(cells, split="test", seeds=list(range(n))),
                                   sr.best_files(), knob=sr.exp["knob"], knob_value=sr.exp["knob_value"])
        sr.add(node)
        if node["status"] == "ok":
            return sr.done(node)
    sr.give_up()


def implement(sr: StageRun) -> None:
    from agentlab.experiment.search import implement as run

    run(sr)


RUNNERS = {"baselines": baselines, "implement": implement, "sweep": sweep, "ablations": ablations, "seeds": seeds}
assert tuple(RUNNERS) == stages.stage_names()
