"""Workflow files: the shipped examples, the schema, and errors that point at the line."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest
from typer.testing import CliRunner

from agentlab.batch.workflow import Workflow, WorkflowError, load_workflow, load_workflows
from agentlab.cli import app
from agentlab.config import load_settings

ROOT = Path(__file__).resolve().parents[2]


def write(tmp: Path, name: str, text: str) -> Path:
    p = tmp / name
    p.write_text(textwrap.dedent(text).lstrip("\n"))
    return p


def problems(path: Path) -> list[str]:
    with pytest.raises(WorkflowError) as ei:
        load_workflows(path)
    return ei.value.problems


def test_shipped_examples_are_valid_and_map_onto_settings():
    wfs = load_workflows(ROOT / "workflows")
    assert {w.name for w in wfs} == {"kv-cache-compression", "speculative-decoding", "structured-pruning"}
    for w in wfs:
        s = load_settings(None, w.to_overrides(), env={})
        assert s.checkpoints == tuple(w.checkpoints)
        assert s.max_cost == w.budgets.max_cost and s.attempt_timeout == w.sandbox.timeout_s
        assert s.attempt_memory_mb == w.sandbox.memory_mb and s.max_papers == w.literature.max_papers
        assert s.model == w.models["default"] and s.max_attempts == w.sandbox.max_attempts  # implement's nodes
        assert all(getattr(s, k) == v for k, v in w.settings.items()), (w.name, w.settings)
    kv = next(w for w in wfs if w.name == "kv-cache-compression")
    s = load_settings(None, kv.to_overrides(), env={})
    assert s.model_for("plan") == "gpt-4o" and s.model_for("experiment") == "gpt-4o-mini"
    toml = next(w for w in wfs if w.name == "structured-pruning")
    assert toml.source.endswith(".toml") and toml.checkpoints == ["plan", "experiment", "report"]


def test_defaults_and_name_from_file(tmp_path):
    wf = load_workflow(write(tmp_path, "my-study.yml", 'idea: "Is  int8 KV cache\n  lossless at 4k context?"\n'))
    assert wf.name == "my-study" and wf.idea == "Is int8 KV cache lossless at 4k context?"
    assert wf.checkpoints == ["plan", "report"] and wf.on_checkpoint == "park" and wf.sandbox.backend == "auto"
    assert load_workflow(write(tmp_path, "n.yaml", "idea: A long enough idea\ncheckpoints: none\n")).checkpoints == []
    assert len(wf.digest) == 16
    gpu = load_workflow(write(tmp_path, "g.yaml", "idea: A long enough idea\nsandbox: {backend: ray, gpus: 2}\n"))
    s = load_settings(None, gpu.to_overrides(), env={})
    assert s.sandbox == "ray" and s.attempt_gpus == 2 and gpu.warnings() == []  # -> Limits.gpus -> Ray num_gpus
    sub = tmp_path / "studies"
    sub.mkdir()
    wf = load_workflow(write(sub, "p.yaml", "idea: A long enough idea\nliterature: {papers_dir: ../pdfs}\n"))
    assert wf.literature.papers_dir == str(tmp_path / "pdfs")  # relative to the workflow file
    assert load_settings(None, wf.to_overrides(), env={}).papers_dir == str(tmp_path / "pdfs")
    exp = load_workflow(write(tmp_path, "e.yaml", "idea: A long enough idea\nsandbox: {max_attempts: 4}\n"
                                                  "settings: {drafts: 3, seeds: 5, stage_budgets: {sweep: {nodes: 2}}}\n"))
    s = load_settings(None, exp.to_overrides(), env={})  # any setting by name, the staged experiment's included
    assert (s.max_attempts, s.drafts, s.seeds, s.stage_budgets) == (4, 3, 5, {"sweep": {"nodes": 2}})


def test_yaml_errors_name_file_line_and_key(tmp_path):
    write(tmp_path, "bad.yaml", """
        name: bad
        idea: "A perfectly fine research question"
        budgets:
          max_cost: -1
          max_tokns: 5
        sandbox:
          gpus: -2
          backend: kubernetes
        checkpoints: [plan, bogus]
        models:
          plnn: gpt-4o
        settings:
          no_such_setting: 1
    """)
    got = "\n".join(problems(tmp_path))
    f = tmp_path / "bad.yaml"
    assert f"{f}:4: budgets.max_cost: Input should be greater than 0 (got -1)" in got
    assert f"{f}:5: budgets.max_tokns: unknown key" in got
    assert f"{f}:7: sandbox.gpus:" in got
    assert f"{f}:8: sandbox.backend:" in got and "'ray'" in got
    assert f"{f}:9: checkpoints: unknown checkpoint(s) bogus" in got
    assert f"{f}:10: models: unknown phase(s) plnn" in got
    assert f"{f}:12: settings: unknown setting 'no_such_setting'" in got


def test_syntax_missing_and_duplicate_errors(tmp_path):
    d = tmp_path / "a"
    d.mkdir()
    write(d, "syntax.yaml", "idea: ok idea here\nsandbox: [unclosed\n")
    assert problems(d) == [f"{d / 'syntax.yaml'}:3: invalid YAML: expected ',' or ']', but got '<stream end>'"]
    write(d, "syntax.yaml", "idea: ok idea here\nbudgets:\n  max_cost: 1\n bad_indent: 2\n")
    assert problems(d)[0].startswith(f"{d / 'syntax.yaml'}:4: invalid YAML")
    d2 = tmp_path / "b"
    d2.mkdir()
    write(d2, "dup.yaml", "idea: first idea, long enough\nbudgets: {max_cost: 1}\nidea: x\n")
    write(d2, "empty.yaml", "")
    write(d2, "list.yaml", "- a\n- b\n")
    write(d2, "noidea.yaml", "budgets: {max_cost: 1}\n")
    got = problems(d2)
    assert f"{d2 / 'dup.yaml'}:3: duplicate key 'idea'" in got
    assert any(p.startswith(f"{d2 / 'dup.yaml'}:3: idea: the idea must be a real research question") for p in got)
    assert any(p.startswith(f"{d2 / 'empty.yaml'}:1: the file is empty") for p in got)
    assert any(p.startswith(f"{d2 / 'list.yaml'}:1: a workflow is a mapping") for p in got)
    assert f"{d2 / 'noidea.yaml'}:1: idea: required" in got


def test_toml_errors_point_at_the_line(tmp_path):
    write(tmp_path, "t.toml", """
        idea = "A perfectly fine research question"

        [sandbox]
        memory_mb = 1
        gpus = 1

        [literature]
        max_papers = "many"
    """)
    got = problems(tmp_path)
    f = tmp_path / "t.toml"
    assert any(p.startswith(f"{f}:4: sandbox.memory_mb: Input should be greater than or equal to 64") for p in got)
    assert any(p.startswith(f"{f}:8: literature.max_papers:") for p in got)
    write(tmp_path, "t.toml", 'idea = "ok idea that is long"\nbroken = \n')
    assert problems(tmp_path)[0].startswith(f"{f}:2: invalid TOML")


def test_deployment_settings_stay_out_of_workflows(tmp_path):
    write(tmp_path, "w.yaml", "idea: A perfectly fine research question\n"
                              "settings: {checkpointer_url: postgresql://x}\n")
    assert "per deployment" in problems(tmp_path)[0]


def test_names_must_be_unique(tmp_path):
    write(tmp_path, "one.yaml", "name: same\nidea: A perfectly fine research question\n")
    write(tmp_path, "two.yaml", "name: same\nidea: Another perfectly fine question\n")
    assert any("names must be unique" in p for p in problems(tmp_path))


def test_cli_check_reports_every_problem_and_exits_2(tmp_path):
    write(tmp_path, "ok.yaml", "idea: A perfectly fine research question\n")
    write(tmp_path, "bad.yaml", "idea: A perfectly fine research question\nsandbox: {gpus: -1}\n")
    r = CliRunner().invoke(app, ["batch", str(tmp_path), "--check"])
    assert r.exit_code == 2
    assert f"{tmp_path / 'bad.yaml'}:2: sandbox.gpus" in r.output
    (tmp_path / "bad.yaml").unlink()
    r = CliRunner().invoke(app, ["batch", str(tmp_path), "--check"])
    assert r.exit_code == 0 and "1 workflow(s) valid: ok" in r.output
    r = CliRunner().invoke(app, ["batch", "--check", str(ROOT / "workflows"), "--parallel", "2"])
    assert r.exit_code == 0 and "3 workflow(s) valid" in r.output


def test_schema_is_strict_about_types():
    with pytest.raises(Exception):
        Workflow.model_validate({"name": "x", "idea": "long enough idea", "on_checkpoint": "ask"})
