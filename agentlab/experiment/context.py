"""What a stage of the experiment works with: its record, its budget, and the specs and cells it builds
from what earlier stages measured (agentlab.experiment.engine)."""

from __future__ import annotations

import ast
import time
from dataclasses import dataclass, field
from typing import Any

from agentlab.experiment import choices, nodes
from agentlab.experiment.stages import Budget
from agentlab.phases.common import RunContext
from agentlab.state import ExperimentRecord, Node, ResearchState, StageRecord


@dataclass
class StageRun:
    ctx: RunContext
    state: ResearchState
    exp: ExperimentRecord
    rec: StageRecord
    budget: Budget
    t0: float = field(default_factory=time.monotonic)
    tokens0: int = -1
    _cache: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.tokens0 = self.tokens()

    # ---- budget ---------------------------------------------------------------------------------------
    def tokens(self) -> int:
        return int(self.ctx.llm.ledger.totals("experiment")["tokens"])

    def used(self) -> dict[str, float]:
        return {"nodes": len(self.rec["nodes"]), "minutes": round((time.monotonic() - self.t0) / 60, 3),
                "tokens": self.tokens() - self.tokens0}

    def may_add(self) -> bool:
        """Whether the budget allows one more node (a retry of a failed stage grants another budget)."""
        b, tries = self.budget, int(self.rec.get("tries") or 0)
        if len(self.rec["nodes"]) >= b.nodes * (tries + 1):
            return False
        u = self.used()
        if b.minutes is not None and u["nodes"] and u["minutes"] >= b.minutes:
            self.rec["reason"] = f"the stage's {b.minutes:g}-minute budget is used"
            return False
        if b.tokens is not None and u["tokens"] >= b.tokens:
            self.rec["reason"] = f"the stage's {b.tokens}-token budget is used"
            return False
        return True

    # ---- nodes ----------------------------------------------------------------------------------------
    def next_id(self) -> str:
        return f"{self.rec['name']}-{len(self.rec['nodes']) + 1}"

    def last_id(self) -> str | None:
        return self.rec["nodes"][-1]["id"] if self.rec["nodes"] else None

    def memo(self, key: str) -> str:
        return f"experiment/p{self.exp['pass_n']}/{key}"

    def node(self, nid: str, kind: str, parent: str | None = None, tokens: int = 0) -> Node:
        d = f"experiments/p{self.exp['pass_n']}/{nid}"
        return {"id": nid, "stage": self.rec["name"], "kind": kind, "parent": parent, "status": "failed",
                "reason": "", "dir": d, "results_path": None, "job_id": f"{self.ctx.run.id}-x{self.exp['pass_n']}-{nid}",
                "commit": "", "score": None, "primary": {}, "wall_seconds": 0.0, "tokens": tokens,
                "error_tail": "", "files": []}

    def add(self, node: Node) -> None:
        self.rec["nodes"].append(node)
        p = node.get("primary") or {}
        tail = f" score {node['score']:+.4g} vs {p.get('against')}" if node.get("score") is not None else \
            ("" if node["status"] == "ok" else f" ({node.get('reason', '')[:120]})")
        self.ctx.progress("experiment", f"{node['id']} ({node['kind']}): {node['status']}{tail}")

    def done(self, node: Node) -> None:
        self.rec.update(status="ok", best=node["id"], results_path=node.get("results_path"), reason="")

    def give_up(self) -> None:
        self.rec["status"] = "failed"
        if not self.rec.get("reason"):
            self.rec["reason"] = f"no valid node in {len(self.rec['nodes'])} node(s)"

    # ---- what earlier stages measured -------------------------------------------------------------------
    def plan(self) -> dict:
        return self.state.get("plan") or {}

    def info(self) -> choices.FamilyInfo:
        return choices.families()[self.exp["family"]]

    def stage_rec(self, name: str) -> StageRecord:
        return (self.exp.get("stages") or {}).get(name) or {}  # type: ignore[return-value]

    def best_of(self, stage: str) -> str | None:
        return self.stage_rec(stage).get("best")

    def best_node(self, stage: str) -> Node | None:
        best = self.best_of(stage)
        return next((n for n in self.stage_rec(stage).get("nodes") or [] if n["id"] == best), None)

    def best_files(self) -> dict[str, str]:
        """The files of the implement stage's best node (what the method is); {} for a spec proposal."""
        node = self.best_node("implement")
        return dict((node or {}).get("code") or {})

    def results_of(self, rec: StageRecord) -> dict:
        path = rec.get("results_path")
        if not path:
            return {}
        if path not in self._cache:
            res, _ = nodes.read_results(self.ctx.run.repo_dir / path.rsplit("/", 1)[0])
            self._cache[path] = res or {}
        return self._cache[path]

    def trusted(self) -> dict:
        """The baselines stage's results: measured with no LLM code in the process."""
        return self.results_of(self.stage_rec("baselines"))

    # ---- specs and cells ---------------------------------------------------------------------------------
    def spec(self, methods: list[dict], split: str = "val", seeds: list[int] | None = None) -> dict:
        s = self.ctx.settings
        return {"family": self.exp["family"], "model": s.experiment_model, "split": split, "items": s.harness_items,
                "seeds": seeds or [0], "methods": methods, "primary": self.exp["primary"]}

    def baseline_cells(self, knob_values: list | None = None) -> list[dict]:
        info = self.info()
        value = knob_values if knob_values is not None else self.exp["knob_value"]
        return [{"name": b, "params": {info.knob: value} if info.takes_knob(b) else {}}
                for b in self.exp.get("baselines") or []]

    def proposed_cell(self, knob_values: Any = None, extra: dict | None = None, label: str = nodes.PROPOSED) -> dict:
        info = self.info()
        value = knob_values if knob_values is not None else self.exp["knob_value"]
        prop = self.exp.get("proposal") or {}
        if prop:  # a spec proposal: a registered method with settings
            params = {**prop.get("params", {}), **(extra or {})}
            if info.takes_knob(prop["method"]):
                params[info.knob] = value
            return {"name": prop["method"], "label": label, "params": params}
        return {"name": nodes.PROPOSED, "label": label, "params": {**(extra or {}), info.knob: value}}

    def proposed_params(self) -> dict[str, Any]:
        """The proposed method's parameters with defaults: from the registry for a spec proposal, from the
        source of method.py for code (read with `ast`; the LLM's code never runs outside the sandbox)."""
        prop = self.exp.get("proposal") or {}
        if prop:
            return {**self.info().methods.get(prop["method"], {}), **prop.get("params", {})}
        return source_params(self.best_files().get("method.py", ""), nodes.PROPOSED)


def source_params(source: str, name: str) -> dict[str, Any]:
    """Parameters (after the context) of the function decorated `@..._method("<name>", ...)` in `source`,
    with their literal defaults; {} when there is none or the source does not parse."""
    try:
        tree = ast.parse(source)
    except (SyntaxError, ValueError):
        return {}
    for fn in tree.body:
        if isinstance(fn, ast.FunctionDef) and any(_names(d, name) for d in fn.decorator_list):
            args = fn.args.args[1:] + fn.args.kwonlyargs
            defaults = [None] * (len(fn.args.args[1:]) - len(fn.args.defaults)) + list(fn.args.defaults) \
                + list(fn.args.kw_defaults)
            out = {}
            for a, d in zip(args, defaults):
                try:
                    out[a.arg] = ast.literal_eval(d) if d is not None else None
                except ValueError:
                    out[a.arg] = None
            return out
    return {}


def _names(dec: ast.expr, name: str) -> bool:
    return isinstance(dec, ast.Call) and bool(dec.args) and isinstance(dec.args[0], ast.Constant) \
        and dec.args[0].value == name
