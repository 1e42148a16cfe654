"""The implement stage: a small tree search over versions of the proposed method (AIDE / AI Scientist v2).

    draft ×N  →  debug a failed node (edits against it, with its exact error)  →  improve the best node

- a *draft* is a fresh `method.py` (fenced code blocks, one per file) registering the method `proposed`
  with the family's decorator; the harness measures it next to the baselines on the `val` split;
- a *debug* node edits a failed node (search/replace blocks, or whole files); a chain of debugs is at
  most MAX_DEBUG_DEPTH deep, then the search drafts afresh;
- an *improve* node edits the best valid node; after PATIENCE improve nodes that do not beat the best,
  the stage ends early.
Nodes are ranked by their score: the primary metric relative to the best baseline measured in the same
results file (nodes.score), never by the raw metric.

With `proposal = "spec"` (weak models, the embedded one) a draft is a structured choice of a registered
method and its settings instead (choices.proposal_schema), measured the same way.
"""

from __future__ import annotations

from typing import Any

from agentlab.experiment import choices, nodes
from agentlab.experiment.context import StageRun
from agentlab.experiment.edits import EditError, format_files, parse_reply
from agentlab.phases.common import clip
from agentlab.prompts import render_messages
from agentlab.state import Node

MAX_DEBUG_DEPTH = 3
PATIENCE = 2
_RESERVED = {nodes.RESULTS, nodes.SPEC}


def implement(sr: StageRun) -> None:
    if proposal_mode(sr) == "spec":
        return _spec_proposals(sr)
    while sr.may_add():
        action, parent = choose(sr.rec["nodes"], sr.ctx.settings.drafts)
        if action == "stop":
            break
        _code_node(sr, action, parent)
    _select(sr)


def proposal_mode(sr: StageRun) -> str:
    mode = sr.ctx.settings.proposal
    if mode == "auto":
        mode = "spec" if getattr(sr.ctx.llm.backend, "name", "") == "embedded" else "code"
    return mode


def _valid(ns: list[Node]) -> list[Node]:
    return [n for n in ns if n["status"] == "ok" and n.get("score") is not None]


def _depth(ns: list[Node], node: Node) -> int:
    by_id, d = {n["id"]: n for n in ns}, 0
    while node and node["kind"] == "debug":
        d += 1
        node = by_id.get(node.get("parent") or "")
    return d


def choose(ns: list[Node], drafts: int) -> tuple[str, Node | None]:
    """The next action: ("draft" | "debug" | "improve" | "stop", parent)."""
    if sum(n["kind"] == "draft" for n in ns) < drafts:
        return "draft", None
    valid = _valid(ns)
    if valid:
        best = max(valid, key=lambda n: n["score"])
        after = [n for n in ns[ns.index(best) + 1:] if n["kind"] == "improve"]
        return ("stop", None) if len(after) >= PATIENCE else ("improve", best)
    children = {n.get("parent") for n in ns}
    leaves = [n for n in reversed(ns) if n["id"] not in children and _depth(ns, n) < MAX_DEBUG_DEPTH
              and _parent_files(ns, n)]  # a reply with no code anywhere up its chain is drafted afresh
    return ("debug", leaves[0]) if leaves else ("draft", None)


def _parent_files(ns: list[Node], parent: Node | None) -> dict[str, str]:
    """The code a child edits: the parent's files; for a parent whose reply did not parse, its own parent's."""
    by_id = {n["id"]: n for n in ns}
    while parent is not None and not parent.get("code"):
        parent = by_id.get(parent.get("parent") or "")
    return dict((parent or {}).get("code") or {})


def _prompt(sr: StageRun, action: str, parent: Node | None) -> list[dict]:
    base = sr.results_of(sr.stage_rec("baselines"))
    table = [{"id": c["id"], "status": c["status"],
              "mean": nodes.cell_mean(c, sr.exp["primary"])} for c in base.get("cells") or []]
    code = format_files(_parent_files(sr.rec["nodes"], parent)) if parent else ""
    return render_messages(f"experiment_{action}", idea=sr.state["idea"], plan=sr.plan(), family=sr.info(),
                           primary=sr.exp["primary"], direction=sr.exp["direction"], baselines=table,
                           feedback=sr.exp.get("feedback") or [], code=code, parent=_parent_view(parent),
                           timeout=int(sr.ctx.settings.attempt_timeout))


def _parent_view(parent: Node | None) -> dict[str, Any] | None:
    if parent is None:
        return None
    return {"id": parent["id"], "status": parent["status"], "reason": clip(parent.get("reason", ""), 1500),
            "stderr": clip(parent.get("error_tail", ""), 2500), "score": parent.get("score"),
            "primary": parent.get("primary") or {}}


def _code_node(sr: StageRun, action: str, parent: Node | None) -> None:
    nid = sr.next_id()
    t0 = sr.tokens()
    reply = sr.ctx.llm.text(_prompt(sr, action, parent), phase="experiment", purpose=f"{action} {nid}",
                            memo_key=sr.memo(f"{nid}-{action}"))
    node = sr.node(nid, action, parent=parent["id"] if parent else None, tokens=sr.tokens() - t0)
    try:
        files = parse_reply(reply, parent=_parent_files(sr.rec["nodes"], parent) if action != "draft" else None,
                            allowed=lambda n: "/" not in n and n not in _RESERVED, default_name="method.py").files
        if "method.py" not in files:
            raise EditError("the reply has no method.py; write it as a fenced block named method.py")
    except EditError as exc:
        node.update(status="failed", reason=f"the reply could not be used: {clip(str(exc), 2500)}")
        sr.add(node)
        return
    node["code"] = files
    node, _ = nodes.run_node(sr.ctx, node, sr.spec(sr.baseline_cells() + [sr.proposed_cell()]), files,
                             trusted=sr.trusted(), knob=sr.exp["knob"], knob_value=sr.exp["knob_value"])
    sr.add(node)


def _select(sr: StageRun) -> None:
    valid = _valid(sr.rec["nodes"])
    if not valid:
        return sr.give_up()
    best = max(valid, key=lambda n: n["score"])
    sr.done(best)


def _spec_proposals(sr: StageRun) -> None:
    """Drafts that configure a registered method (structured output); the first valid one is the proposal."""
    info = sr.info()
    base = tuple(sr.exp.get("baselines") or ())
    schema, options = choices.proposal_schema(info.name, base), choices.proposal_options(info.name, base)
    error = ""
    while sr.may_add():
        nid = sr.next_id()
        t0 = sr.tokens()
        msgs = render_messages("experiment_proposal", idea=sr.state["idea"], plan=sr.plan(), family=info,
                               baselines=list(base), options=sorted(options), feedback=sr.exp.get("feedback") or [],
                               error=error)
        pick = sr.ctx.llm.structured(msgs, schema, phase="experiment", purpose=f"proposal {nid}",
                                     memo_key=sr.memo(nid))
        node = sr.node(nid, "draft" if not error else "debug", parent=sr.last_id(), tokens=sr.tokens() - t0)
        method, params = options[pick.choice]
        sr.exp["proposal"] = {"method": method, "params": dict(params), "choice": pick.choice}
        node, _ = nodes.run_node(sr.ctx, node, sr.spec(sr.baseline_cells() + [sr.proposed_cell()]), {},
                                 knob=info.knob, knob_value=sr.exp["knob_value"])
        sr.add(node)
        if node["status"] == "ok":
            return sr.done(node)
        error = node["reason"]
    sr.give_up()
