"""The phase table is the one source of phase identity: everything else agrees with it."""

from __future__ import annotations

import importlib
import json
from typing import get_args, get_type_hints

import pytest

from agentlab import config, errors, graph
from agentlab.phases import checkpoint, spec
from agentlab.phases.common import PhaseStop


def _literal_exits(fn) -> tuple[str, ...]:
    (literal,) = get_args(get_type_hints(fn)["return"])  # Command[Literal[...]]
    return get_args(literal)


@pytest.mark.parametrize("p", spec.PHASES, ids=lambda p: p.name)
def test_each_phase_is_its_module_and_node_and_its_return_type_names_its_exits(p):
    node = getattr(importlib.import_module(f"agentlab.phases.{p.name}"), p.name)
    assert _literal_exits(node) == p.exits
    assert set(p.exits) <= set(graph.ALL)


def test_the_graph_the_settings_and_the_checkpoint_derive_from_the_table():
    names = spec.phase_names()
    assert config.PHASES == names and config.CHECKPOINTS == spec.stops()
    assert _literal_exits(checkpoint.checkpoint) == graph.ALL == (*names, "checkpoint", "__end__")
    nodes = graph.build_graph().nodes
    assert tuple(nodes) == (*names, "checkpoint")
    assert [spec.next_phase(n) for n in names] == [*names[1:], "__end__"]


def test_report_means_write_report_for_back_and_the_review_stop_for_checkpoints():
    assert spec.resolve_back("report") == "write_report" and spec.resolve_back("literature") == "literature_review"
    assert spec.resolve_stop("report") == "review" and spec.stop_phase("report") == "review"
    s = config.Settings(checkpoints=("plan", "report"))
    assert s.stops_after("review") and not s.stops_after("write_report")
    assert config.parse_checkpoints("review,report") == ("review", "report")  # both spellings, one stop
    with pytest.raises(spec.UnknownName, match="unknown checkpoint"):
        spec.resolve_stop("write_report")  # write_report goes straight to review: no stop of its own
    d = checkpoint.validate_decision({"action": "back", "phase": "report"}, {"kind": "checkpoint", "phase": "review"})
    assert d["phase"] == "write_report"


def test_describe_lists_every_phase_alias_and_stop_label():
    text = spec.describe()
    for p in spec.PHASES:
        assert p.name in text and all(a in text for a in p.back_aliases)
    assert all(f"'{label}'" in text for label in spec.stop_labels())


def test_resumable_errors_share_one_base_and_report_their_stop_kind():
    from agentlab.literature.arxiv_source import LiteratureUnavailable
    from agentlab.llm import BudgetExceeded, LLMError
    from agentlab.report import ReportFailed
    from agentlab.sandbox.base import SandboxUnavailable

    for cls in (LLMError, LiteratureUnavailable, SandboxUnavailable, ReportFailed, PhaseStop):
        exc = cls.__new__(cls)
        assert isinstance(exc, errors.Resumable) and exc.stop_kind == "error", cls
    assert BudgetExceeded.stop_kind == "budget"
    assert not isinstance(ValueError("bug"), errors.Resumable)


def test_summaries_are_plain_json():
    node = {"id": "implement-1", "stage": "implement", "kind": "draft", "status": "ok", "score": 0.25, "reason": ""}
    failed = {"id": "implement-2", "stage": "implement", "kind": "debug", "status": "failed", "score": None,
              "reason": "NameError: undefined_name"}
    state = {"papers": [{"id": "1", "title": "t"}], "plan": {"title": "p"},
             "experiment": {"pass_n": 1, "family": "kv", "primary": "ppl", "stage": "implement", "done": False,
                            "stages": {"implement": {"name": "implement", "status": "ok", "reason": "",
                                                     "best": "implement-1", "nodes": [node, failed]}}},
             "analysis": {"comparisons": [{"a": "proposed", "b": "h2o", "conclusion": "better"}]},
             "interpretation": {"summary": "s"}, "report": {"pdf": "report/main.pdf"}, "revision": 1,
             "reviews": [{"overall": 6.0, "decision": "accept"}]}
    for p in spec.PHASES:
        json.dumps(checkpoint.summary(state, p.name))
    assert checkpoint.summary(state, "review")["decision"] == "accept"
    exp = checkpoint.summary(state, "experiment")
    assert exp["stage"] == "implement" and exp["stages"]["implement"]["best"] == "implement-1"
    assert exp["stages"]["implement"]["nodes"][0].startswith("implement-1 draft: ok score +0.25")
    assert "NameError" in exp["stages"]["implement"]["nodes"][1] and exp["conclusions"] == ["proposed vs h2o: better"]
    json.dumps(checkpoint.summary({}, "experiment"))  # a run that has not reached the experiment yet
