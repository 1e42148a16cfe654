"""The stage table of the experiment phase: the only place a stage's identity lives.

The experiment phase runs these stages in order, one per visit of the `experiment` node, each a
bounded sub-search whose nodes are directories, commits and sandbox jobs (agentlab.experiment.engine).
Its checkpoint after each stage has the stop label `experiment.<stage>`; the last stage's checkpoint is
the phase's own (`experiment`). A budget is per stage: nodes, minutes and LLM tokens; the setting
`stage_budgets = {"implement": {"nodes": 8}}` overrides the defaults below.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any, Mapping


@dataclass(frozen=True)
class Budget:
    """What one stage may spend; None is unlimited (the run's own budgets still hold)."""

    nodes: int
    minutes: float | None = None
    tokens: int | None = None


@dataclass(frozen=True)
class Stage:
    name: str
    help: str  # one line, for `--help`, docs and the checkpoint
    budget: Budget
    kinds: tuple[str, ...]  # node kinds it makes


STAGES: tuple[Stage, ...] = (
    Stage("baselines", "the plan's baselines measured by the harness (a spec filled from the method registry)",
          Budget(nodes=3), ("spec", "debug")),
    Stage("implement", "drafts of the proposed method, debug nodes for failed ones, improve nodes for the best",
          Budget(nodes=6), ("draft", "debug", "improve")),
    Stage("sweep", "the method and the baselines at every value of the key parameter: a curve",
          Budget(nodes=1), ("sweep",)),
    Stage("ablations", "each ablation the plan names: the method with one part changed",
          Budget(nodes=4), ("ablation",)),
    Stage("seeds", "the chosen configuration and the baselines on the test split, on several seeds",
          Budget(nodes=1), ("seeds",)),
)

_BY_NAME = {s.name: s for s in STAGES}


def stage_names() -> tuple[str, ...]:
    return tuple(_BY_NAME)


def stage(name: str) -> Stage:
    try:
        return _BY_NAME[name]
    except KeyError:
        raise ValueError(f"unknown experiment stage {name!r}: use one of {', '.join(_BY_NAME)}") from None


def next_stage(name: str | None) -> str | None:
    """The stage after `name` (the first for None), or None after the last."""
    names = stage_names()
    if name is None:
        return names[0]
    i = names.index(name)
    return names[i + 1] if i + 1 < len(names) else None


def budget_of(name: str, overrides: Mapping[str, Mapping[str, Any]] | None = None) -> Budget:
    """The stage's default budget with the settings' overrides (`stage_budgets`) applied."""
    b = stage(name).budget
    o = dict((overrides or {}).get(name) or {})
    return replace(b, **{k: o[k] for k in ("nodes", "minutes", "tokens") if k in o})


def check_budgets(overrides: Mapping[str, Any]) -> None:
    """ValueError naming the stage or field when `stage_budgets` is malformed."""
    for name, b in (overrides or {}).items():
        stage(name)
        if not isinstance(b, Mapping):
            raise ValueError(f"stage_budgets.{name} must be a table like {{nodes = 4, minutes = 10}}")
        for k, v in b.items():
            if k not in ("nodes", "minutes", "tokens"):
                raise ValueError(f"stage_budgets.{name}.{k}: unknown; use nodes, minutes or tokens")
            if v is not None and (isinstance(v, bool) or not isinstance(v, (int, float)) or v <= 0):
                raise ValueError(f"stage_budgets.{name}.{k} must be a positive number")
            if k == "nodes" and (not isinstance(v, int) or v > 50):
                raise ValueError(f"stage_budgets.{name}.nodes must be an integer from 1 to 50")


def stop_labels() -> tuple[str, ...]:
    """The stop labels of the checkpoints after each stage."""
    return tuple(f"experiment.{s}" for s in stage_names())
