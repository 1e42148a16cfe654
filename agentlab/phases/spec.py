"""The phase table: the only place a phase's identity lives.

Everything that names phases derives from `PHASES` below: the graph (`agentlab.graph`), the settings'
phase lists (`agentlab.config.PHASES` / `CHECKPOINTS`), the checkpoint node's aliases, answers and
summaries (`agentlab.phases.checkpoint`), the CLI's help and choices, and the tests. A new phase is
its module `agentlab/phases/<name>.py` exporting a node function `<name>`, its prompt in `prompts/`,
its state keys in `agentlab/state.py`, and one row here.

Vocabulary, used the same way across agentlab:

  phase        a step of the research run and its graph node (module and node share the name).
  checkpoint   the human stop: the `checkpoint` node that runs after every phase and interrupts when
               the settings stop after that phase, or when the phase stopped on a problem.
  stop label   the name of a checkpoint in `--checkpoints` / `checkpoints = [...]` (`literature`,
               `plan`, `experiment`, `interpret`, `review`); a phase without one never stops for a person.
  back alias   another name `--back` / `back <phase>` accepts for a phase (`report` is write_report).
  saver        the persistence of graph state after every step (what LangGraph calls a checkpointer:
               SQLite in the run dir, or Postgres; `agentlab.graph.open_saver`).
  review       the phase of automated reviewers. A person's verdict on the report is given at the
               *review checkpoint* (stop label `review`; `report` is its older spelling), from the
               terminal prompt or the `agentlab review RUN` command.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Mapping

from agentlab.experiment.stages import stage_names

CHECKPOINT = "checkpoint"  # the node every phase goes to when it is done (or stopped)
END = "__end__"  # LangGraph's END

Summary = Callable[[Mapping[str, Any]], dict]


class UnknownName(ValueError):
    """A phase or stop label the table does not know; the message lists the accepted names."""


def _literature_summary(state: Mapping[str, Any]) -> dict:
    return {"papers": [f"[{p['id']}] {p['title']}" for p in state.get("papers") or []],
            "failures": state.get("literature_failures") or []}


def _plan_summary(state: Mapping[str, Any]) -> dict:
    return {"plan": state.get("plan")}


def _experiment_summary(state: Mapping[str, Any]) -> dict:
    exp = state.get("experiment") or {}
    stages = {}
    for name, st in (exp.get("stages") or {}).items():
        nodes = st.get("nodes") or []
        stages[name] = {"status": st.get("status"), "reason": st.get("reason", ""), "best": st.get("best"),
                        "nodes": [f"{n.get('id')} {n.get('kind')}: {n.get('status')}"
                                  + (f" score {n['score']:+.3g}" if isinstance(n.get("score"), (int, float)) else "")
                                  + (f" ({n.get('reason', '')[:120]})" if n.get("status") != "ok" else "")
                                  for n in nodes]}
    return {"stage": exp.get("stage"), "done": bool(exp.get("done")), "family": exp.get("family"),
            "primary": exp.get("primary"), "stages": stages,
            "conclusions": [f"{c.get('a')} vs {c.get('b')}: {c.get('conclusion')}"
                            for c in (state.get("analysis") or {}).get("comparisons") or []]}


def _interpret_summary(state: Mapping[str, Any]) -> dict:
    return {"interpretation": state.get("interpretation")}


def _review_summary(state: Mapping[str, Any]) -> dict:
    rep = state.get("report") or {}
    last = (state.get("reviews") or [{}])[-1]
    out = {"pdf": rep.get("pdf"), "revision": state.get("revision"), "overall": last.get("overall"),
           "decision": last.get("decision")}
    integrity = rep.get("integrity") if isinstance(rep.get("integrity"), dict) else {}
    if integrity.get("open"):
        out["blocked"] = blocked_message(integrity["open"])
    return out


def blocked_message(open_problems: list) -> str:
    """Why a report cannot be accepted (the review checkpoint refuses approve while this holds)."""
    items = "; ".join(str(p) for p in open_problems[:5]) + ("; ..." if len(open_problems) > 5 else "")
    return (f"the report cannot be accepted: {len(open_problems)} integrity problem(s) are open ({items}). "
            f"Use `back write_report` with feedback, or `reject`; `agentlab review RUN` shows report/integrity.jsonl")


def _no_summary(state: Mapping[str, Any]) -> dict:
    return {}


@dataclass(frozen=True)
class PhaseSpec:
    """One phase. `exits` must equal the Literal of its node's `Command[...]` return type (tested)."""

    name: str  # node name == module agentlab.phases.<name> == its function <name>
    exits: tuple[str, ...]  # the nodes its Command may go to
    help: str  # one line, for `--help` and docs
    stop: str | None = None  # stop label of the checkpoint after it; None: never stops for a person
    stop_aliases: tuple[str, ...] = ()  # older spellings of the stop label, still accepted
    back_aliases: tuple[str, ...] = ()  # other names `--back` accepts for this phase
    answers: tuple[str, ...] = ()  # answers beyond approve / feedback / back at its checkpoint
    revise: str | None = None  # where feedback at its checkpoint goes when there is no next phase
    summary: Summary = _no_summary  # what its checkpoint shows the person
    stages: tuple[str, ...] = ()  # sub-steps, one per visit, each with its own stop label `<stop>.<stage>`

    @property
    def module(self) -> str:
        return f"agentlab.phases.{self.name}"


PHASES: tuple[PhaseSpec, ...] = (
    PhaseSpec("literature_review", (CHECKPOINT,), "find papers for the idea and take grounded notes",
              stop="literature", back_aliases=("literature",), summary=_literature_summary),
    PhaseSpec("plan", (CHECKPOINT,), "a structured plan: hypothesis, method, metrics, baselines",
              stop="plan", answers=("edit",), summary=_plan_summary),
    PhaseSpec("experiment", (CHECKPOINT,), "baselines, method drafts, sweep, ablations and seeds, in the sandbox",
              stop="experiment", back_aliases=("experiments",), summary=_experiment_summary,
              stages=stage_names()),
    PhaseSpec("interpret", (CHECKPOINT,), "what the measured results say about the hypothesis",
              stop="interpret", back_aliases=("interpretation",), summary=_interpret_summary),
    PhaseSpec("write_report", ("review", CHECKPOINT), "the LaTeX report, numbers traced to results files",
              back_aliases=("report",)),
    PhaseSpec("review", ("write_report", CHECKPOINT), "automated reviewers; a low score means a revision",
              stop="review", stop_aliases=("report",), answers=("reject",), revise="write_report",
              summary=_review_summary),
)

_BY_NAME = {p.name: p for p in PHASES}


def phase_names() -> tuple[str, ...]:
    """The phases in run order."""
    return tuple(_BY_NAME)


def spec(name: str) -> PhaseSpec:
    """The row of phase `name` (an exact phase name; see `resolve_back` for aliases)."""
    try:
        return _BY_NAME[name]
    except KeyError:
        raise UnknownName(f"unknown phase {name!r}: use one of {', '.join(_BY_NAME)}") from None


def next_phase(name: str) -> str:
    """The phase after `name` in run order, or END after the last."""
    names = phase_names()
    i = names.index(spec(name).name)
    return names[i + 1] if i + 1 < len(names) else END


def stop_labels() -> tuple[str, ...]:
    """The canonical stop labels, in run order (what `--checkpoints all` means)."""
    return tuple(p.stop for p in PHASES if p.stop)


def stops() -> dict[str, str]:
    """Canonical stop label -> the phase after which that checkpoint asks the person."""
    return {p.stop: p.name for p in PHASES if p.stop}


def stage_stops() -> dict[str, tuple[str, str]]:
    """Stop label of a stage's checkpoint (`experiment.sweep`) -> (phase, stage)."""
    return {f"{p.stop}.{s}": (p.name, s) for p in PHASES if p.stop for s in p.stages}


def stop_choices() -> tuple[str, ...]:
    """Every spelling `--checkpoints` accepts for one stop (labels, older aliases, stage labels); plus all / none."""
    return stop_labels() + tuple(a for p in PHASES if p.stop for a in p.stop_aliases) + tuple(stage_stops())


def resolve_stop(alias: str) -> str:
    """The canonical stop label for a label or an older spelling (`report` -> `review`)."""
    if alias in stage_stops():
        return alias
    for p in PHASES:
        if p.stop and alias in (p.stop, *p.stop_aliases):
            return p.stop
    raise UnknownName(f"unknown checkpoint {alias!r}: use one of {', '.join(stop_labels())}")


def stop_phase(alias: str) -> str:
    """The phase after which the checkpoint `alias` (a stop label or older spelling) stops; for a stage label,
    the phase the stage belongs to (it stops after that stage, see `stop_stage`)."""
    label = resolve_stop(alias)
    return stage_stops()[label][0] if label in stage_stops() else stops()[label]


def stop_stage(alias: str) -> str | None:
    """The stage after which a stage label (`experiment.sweep`) stops; None for a phase's own label."""
    label = resolve_stop(alias)
    return stage_stops()[label][1] if label in stage_stops() else None


def back_choices() -> tuple[str, ...]:
    """Every name `--back` accepts: the phase names, then their aliases."""
    return phase_names() + tuple(a for p in PHASES for a in p.back_aliases)


def resolve_back(alias: str) -> str:
    """The phase a `--back` name means: a phase name, or one of its back aliases (`report` -> write_report)."""
    for p in PHASES:
        if alias in (p.name, *p.back_aliases):
            return p.name
    raise UnknownName(f"unknown phase {alias!r}: use one of {', '.join(back_choices())}")


def describe() -> str:
    """Help text: one line per phase with its back aliases and its stop label."""
    lines = []
    for p in PHASES:
        names = ", ".join((p.name, *p.back_aliases))
        stop = f"checkpoint '{p.stop}'" + (f" (or {', '.join(p.stop_aliases)})" if p.stop_aliases else "") \
            if p.stop else "no checkpoint"
        lines.append(f"{names:<32} {stop:<32} {p.help}")
        for st in p.stages:
            lines.append(f"{'  ' + st:<32} {'checkpoint ' + repr(p.stop + '.' + st):<32} stage of {p.name}")
    return "\n".join(lines)
