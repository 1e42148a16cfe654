"""THE wiring of a research run. Nothing else lives here.

    START → literature_review → checkpoint → plan → checkpoint → experiment → checkpoint
          → interpret → checkpoint → write_report → review ─(revise)→ write_report
                                                          └─(accept)→ checkpoint → END

Every phase node returns `Command(goto=...)`: to `checkpoint` (or, for write_report, to review;
for review, back to write_report while revisions remain). `checkpoint` decides, per the settings
and the person's answer, where to go next: the next phase, an earlier phase (`back`), the stopped
phase again (`retry`), or END. State is checkpointed after every node (SQLite in the run dir by
default, Postgres by URL), so a new process resumes where the last one stopped.
"""

from __future__ import annotations

import os
import sqlite3
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.graph import START, StateGraph

from agentlab.human import checkpoint
from agentlab.phases.common import RunContext
from agentlab.phases.experiment import experiment
from agentlab.phases.interpret import interpret
from agentlab.phases.literature import literature_review
from agentlab.phases.plan import plan
from agentlab.phases.report import write_report
from agentlab.phases.review import review
from agentlab.state import ResearchState

os.environ.setdefault("LANGGRAPH_STRICT_MSGPACK", "true")

ALL = ("literature_review", "plan", "experiment", "interpret", "write_report", "review", "checkpoint", "__end__")


def build_graph() -> StateGraph:
    g = StateGraph(ResearchState, context_schema=RunContext)
    g.add_node("literature_review", literature_review, destinations=("checkpoint",))
    g.add_node("plan", plan, destinations=("checkpoint",))
    g.add_node("experiment", experiment, destinations=("checkpoint",))
    g.add_node("interpret", interpret, destinations=("checkpoint",))
    g.add_node("write_report", write_report, destinations=("review", "checkpoint"))
    g.add_node("review", review, destinations=("write_report", "checkpoint"))
    g.add_node("checkpoint", checkpoint, destinations=ALL)
    g.add_edge(START, "literature_review")
    return g


@contextmanager
def open_checkpointer(db_path: Path, url: str | None = None) -> Iterator[BaseCheckpointSaver]:
    """SQLite in the run directory by default; `postgresql://…` to share runs between machines."""
    if url and url.startswith(("postgres://", "postgresql://")):
        try:
            from langgraph.checkpoint.postgres import PostgresSaver
        except ImportError as exc:
            raise RuntimeError("Postgres checkpointer needs `pip install 'agentlab[postgres]'`") from exc
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
