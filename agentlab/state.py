"""Typed graph state. It holds plain data only (JSON-able dicts and lists), so what the saver stores
stays portable across processes, machines (Postgres) and versions, and LANGGRAPH_STRICT_MSGPACK
keeps working. The records below are TypedDicts: type hints over plain dicts, never objects (the
pydantic models in `schemas.py` validate what goes in, then are stored as `model_dump()`s).

Every record is `total=False`: the producers (literature sources, the sandbox, the report writer)
add keys over time, and a run saved by an older version must still load.
"""

from __future__ import annotations

from typing import Any, Literal, TypedDict


class Paper(TypedDict, total=False):
    """A selected paper (agentlab.literature.review); `id` is an arXiv id or `local:...`."""

    id: str
    title: str
    authors: list[str]
    year: int | None
    primary_category: str
    abstract: str
    url: str
    pdf_url: str
    bibkey: str
    bibtex: str
    n_chunks: int  # chunks in the run's paper store
    full_text: bool  # False: only the metadata/abstract could be read


class LiteratureFailure(TypedDict, total=False):
    paper_id: str
    stage: str  # search | fulltext | ...
    reason: str


class Claim(TypedDict, total=False):
    field: str  # one of the note fields below
    text: str
    grounding: list[list[Any]]  # [[paper_id, chunk_id], ...]


class Note(TypedDict, total=False):
    """Grounded notes on one paper (agentlab.literature.notes.note_dict)."""

    paper_id: str
    title: str
    bibkey: str
    relevance: str
    problem: str
    method: str
    datasets: list[str]
    metrics: list[str]
    key_numbers: list[str]
    limitations: str
    claims: list[Claim]
    grounding: list[list[Any]]
    ungrounded_claims: int
    clarification_steps: int


class Attempt(TypedDict, total=False):
    """One experiment attempt (agentlab.phases.experiment): `repo/experiments/attempt-<n>/`, one commit."""

    n: int
    status: Literal["ok", "failed"]
    reason: str
    metrics: dict[str, float]
    results_path: str | None
    backend: str
    sandbox_reason: str
    exit_code: int | None
    wall_seconds: float
    error_tail: str
    not_collected: list[str]
    commit: str


class Node(TypedDict, total=False):
    """One node of an experiment stage (agentlab.experiment.engine): a directory, a commit, a sandbox job."""

    id: str  # "<stage>-<k>"
    stage: str
    kind: str  # spec | draft | debug | improve | sweep | ablation | seeds
    parent: str | None
    status: Literal["ok", "failed"]
    reason: str
    dir: str  # repo-relative: experiments/p<pass>/<id>
    results_path: str | None
    job_id: str
    commit: str
    score: float | None  # primary metric relative to the best baseline in the same results file
    primary: dict[str, Any]  # {"cell", "mean"} of the method the node is about
    wall_seconds: float
    tokens: int
    error_tail: str
    files: list[str]
    code: dict[str, str]  # the node's files (implement stage), what a child node edits
    not_collected: list[str]  # what the sandbox refused to bring back, and why
    label: str  # ablations: the ablation's name


class StageRecord(TypedDict, total=False):
    name: str
    status: Literal["ok", "failed", "skipped"]
    reason: str
    nodes: list[Node]
    best: str | None
    results_path: str | None
    used: dict[str, float]
    tries: int


class ExperimentRecord(TypedDict, total=False):
    """The experiment phase's staged search (docs/experiments.md)."""

    pass_n: int  # the pass: 1, then +1 each time the experiment starts again (back, a new plan)
    family: str
    primary: str
    direction: Literal["lower", "higher"]
    knob: str
    knob_value: Any
    baselines: list[str]
    proposal: dict[str, Any]  # spec proposals: {"method", "params"}
    stage: str | None  # the last stage finished
    done: bool
    feedback: list[str]
    stages: dict[str, StageRecord]
    best: dict[str, Any]


class Report(TypedDict, total=False):
    """The current report revision (agentlab.report.writer); paths are relative to the run's repo."""

    revision: int
    tex: str
    pdf: str
    compiled: bool
    problems: list[Any]
    trace: Any
    commit: str
    latex_isolation: Any


class ReviewRound(TypedDict, total=False):
    """The automated reviewers' verdict on one revision (agentlab.report.reviewer.review_report)."""

    revision: int
    reviews: list[dict[str, Any]]  # schemas.Review dumps, one per reviewer
    meta: dict[str, Any]  # report.schemas.MetaReview dump
    overall: float  # mean overall score
    decision: Literal["accept", "revise"]
    scores: dict[str, float]
    commit: str


class Stop(TypedDict, total=False):
    """Why a phase stopped (a resumable problem); the checkpoint waits for a fix, then retries it."""

    kind: Literal["budget", "error"]
    phase: str
    message: str
    error_type: str
    exceeded: dict  # a budget stop: BudgetExceeded.payload (see agentlab/llm/budget.py)


class Decision(TypedDict, total=False):
    """One answer at a checkpoint (see agentlab.phases.checkpoint), as logged: plus `at` and `ts`."""

    action: Literal["approve", "feedback", "edit", "back", "retry", "reject"]
    text: str
    phase: str  # back: the phase returned to
    plan: dict[str, Any]  # edit: the new plan
    refused: str  # an answer that was refused, and why
    at: str  # the phase the checkpoint followed
    ts: float


class ResearchState(TypedDict, total=False):
    idea: str
    phase: str  # the last phase that completed
    visits: dict[str, int]  # phase -> how many times it has started (keys memo entries)
    feedback: dict[str, list[str]]  # phase -> a person's feedback it must take into account
    human: list[Decision]  # every answer given at a checkpoint, in order (key kept for saved runs)
    queries: list[str]
    papers: list[Paper]
    notes: list[Note]
    literature_failures: list[LiteratureFailure]
    plan: dict[str, Any]  # schemas.Plan dump (+ "evidence")
    attempts: list[Attempt]  # runs saved by versions before the staged experiment
    best_attempt: int | None
    experiment: ExperimentRecord
    results: dict[str, Any]  # the seeds stage's results.json (harness format)
    analysis: dict[str, Any]  # comparisons computed from it (agentlab.experiment.analysis)
    interpretation: dict[str, Any]  # schemas.Interpretation dump
    report: Report
    revision: int
    reviews: list[ReviewRound]
    stop: Stop | None  # set while the run waits for a fix; else absent/None
    done: bool
    rejected: bool
