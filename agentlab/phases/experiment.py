"""experiment: a staged search over the toolkit's evaluation harness, one stage per visit of this node.

    baselines → implement → sweep → ablations → seeds        (agentlab/experiment/stages.py)

After each stage the node goes to the checkpoint, which stops for a person when the settings name the
stage (`experiment.<stage>`) and otherwise sends the run back here for the next one; so the state is
saved after every stage. Inside a stage, nodes have deterministic job ids and memoised LLM calls, so a
run killed mid-stage and resumed reuses every node that finished. A stage with no valid node stops the
run at the checkpoint with the reason: no result, no paper. Details: docs/experiments.md.
"""

from __future__ import annotations

from typing import Literal

from langgraph.runtime import Runtime
from langgraph.types import Command

from agentlab.experiment.engine import run_next_stage
from agentlab.phases.common import RunContext, run_phase
from agentlab.state import ResearchState


def _body(state: ResearchState, ctx: RunContext, visit: int, feedback: list[str]) -> dict:
    return run_next_stage(state, ctx, feedback)


def experiment(state: ResearchState, runtime: Runtime[RunContext]) -> Command[Literal["checkpoint"]]:
    return run_phase("experiment", state, runtime.context, _body)
