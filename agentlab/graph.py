"""THE wiring of a research run, built from the phase table (agentlab/phases/spec.py). Nothing else lives here.

    START → literature_review → checkpoint → plan → checkpoint → experiment → checkpoint
          → interpret → checkpoint → write_report → review ─(revise)→ write_report
                                                          └─(accept)→ checkpoint → END

Every phase is the node `agentlab.phases.<name>.<name>` and returns `Command(goto=...)` to one of
its exits in the table (a `Command[Literal[...]]` return type says the same): to `checkpoint`, or,
for write_report, to review; for review, back to write_report while revisions remain. The
`checkpoint` node (agentlab/phases/checkpoint.py) is the human stop: per the settings and the
person's answer it goes to the next phase, an earlier phase (`back`), the stopped phase again
(`retry`), or END.

Persistence is the *saver* (LangGraph's "checkpointer"; not to be confused with the checkpoint
node): state is saved after every node, in SQLite in the run dir by default or Postgres by URL, so
a new process resumes where the last one stopped.
"""

from __future__ import annotations

import importlib
import os
import sqlite3
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterator

from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.graph import START, StateGraph

from agentlab.phases import spec
from agentlab.phases.checkpoint import checkpoint, exits
from agentlab.phases.common import RunContext
from agentlab.state import ResearchState

os.environ.setdefault("LANGGRAPH_STRICT_MSGPACK", "true")

#: every node name, then END (what the checkpoint node may go to)
ALL = exits()


def phase_node(p: spec.PhaseSpec) -> Callable:
    """The node function of a phase: `<name>` in module `agentlab.phases.<name>`."""
    return getattr(importlib.import_module(p.module), p.name)


def build_graph() -> StateGraph:
    g = StateGraph(ResearchState, context_schema=RunContext)
    for p in spec.PHASES:
        g.add_node(p.name, phase_node(p), destinations=p.exits)
    g.add_node(spec.CHECKPOINT, checkpoint, destinations=ALL)
    g.add_edge(START, spec.PHASES[0].name)
    return g


@contextmanager
def open_saver(db_path: Path, url: str | None = None) -> Iterator[BaseCheckpointSaver]:
    """The saver: SQLite in the run directory by default; `postgresql://…` to share runs between machines."""
    if url and url.startswith(("postgres://", "postgresql://")):
        try:
            from langgraph.checkpoint.postgres import PostgresSaver
        except ImportError as exc:
            raise RuntimeError("Postgres saver needs `pip install 'agentlab[postgres]'`") from exc
        with PostgresSaver.from_conn_string(url) as saver:
            saver.setup()
            yield saver
        return
    from langgraph.checkpoint.sqlite import SqliteSaver

    conn = sqlite3.connect(str(db_path), check_same_thread=False)
    try:
        saver = SqliteSaver(conn)
        saver.setup()
        yield saver
    finally:
        conn.close()


def compile_graph(saver: BaseCheckpointSaver):
    return build_graph().compile(checkpointer=saver)
