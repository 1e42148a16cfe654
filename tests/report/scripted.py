"""Scripted writer/reviewer replies for the report tests (served by tests/fakes ScriptedLLM over HTTP)."""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path

from agentlab.config import Settings
from agentlab.llm.client import LLM
from agentlab.llm.ledger import Ledger
from agentlab.runs import RunDir
from tests.report.harness_run import run_state, stage_files, write_files

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "report"
_MARK = re.compile(r"^(FIX )?SECTION: (\w+)", re.MULTILINE)


def load_ctx(repo_dir: Path | None = None, **run) -> dict:
    """The report context of a staged kv run (tests/report/harness_run.py); with `repo_dir`, its results
    files are written there and the context points at them (`run_repo`). `run`: noisy, proposed, paths."""
    ctx = json.loads((FIXTURES / "ctx.json").read_text())
    ctx.update(run_state(repo_dir, **run))
    if repo_dir is not None:
        ctx["run_repo"] = str(repo_dir)
    ctx["memo_prefix"] = "write_report/v1/rev1"
    return ctx


def legacy_ctx() -> dict:
    """A run saved before the staged experiment: state["attempts"] and a flat results file."""
    ctx = {k: v for k, v in load_ctx().items() if k not in ("experiment", "analysis")}
    ctx.update(json.loads((FIXTURES / "legacy_attempts.json").read_text()))
    ctx["results"] = json.loads((FIXTURES / "results.json").read_text())
    return ctx


def sections() -> dict:
    return json.loads((FIXTURES / "sections.json").read_text())


def user_text(body: dict) -> str:
    return "\n".join(m.get("content") or "" for m in body["messages"] if m["role"] == "user")


class Writer:
    """Replies to SectionDraft requests by section; `drafts`/`fixes` override by section with a queue."""

    def __init__(self, drafts: dict[str, list[str]] | None = None, fixes: dict[str, list[str]] | None = None):
        self.base = sections()
        self.drafts = copy.deepcopy(drafts or {})
        self.fixes = copy.deepcopy(fixes or {})
        self.seen: list[tuple[str, str]] = []  # (kind, section)

    def __call__(self, body: dict) -> dict:
        m = _MARK.search(user_text(body))
        assert m, "request without a SECTION marker"
        kind, name = ("fix" if m.group(1) else "draft"), m.group(2)
        self.seen.append((kind, name))
        queue = (self.fixes if kind == "fix" else self.drafts).get(name) or []
        latex = queue.pop(0) if queue else self.base[name]
        return {"section": name, "latex": latex}


def review(overall: int, weakness: str = "The results section does not discuss variance.") -> dict:
    return {"summary": "A small KV-cache eviction study.", "strengths": ["honest reporting"],
            "weaknesses": [weakness], "soundness": 2, "presentation": 3, "contribution": 2,
            "overall": overall, "confidence": 3}


META = {"summary": "Reviewers find the study small.", "strengths": ["clear"], "weaknesses": ["variance"],
        "sections_to_revise": ["results", "nonsense"], "recommendation": "revise"}


def script(srv, writer: Writer, outline: dict | None = None) -> Writer:
    srv.on("ReportOutline", outline or sections()["outline"])
    srv.on("SectionDraft", writer)
    return writer


def make_llm(srv, tmp: Path, **settings) -> tuple[LLM, Settings]:
    """The real LLM client against the scripted server; its ledger is tmp/ledger.jsonl."""
    s = Settings(base_url=srv.base_url, model="scripted-model", backoff_base=0.01, **settings)
    return LLM(s, Ledger(tmp / "ledger.jsonl"), memo_dir=tmp / "memo"), s


def ledger_phases(tmp: Path) -> set[str]:
    lines = (tmp / "ledger.jsonl").read_text().splitlines()
    return {json.loads(x)["phase"] for x in lines}


def make_run(tmp: Path, files: bool = True) -> RunDir:
    """A fresh run; with `files`, the staged experiment's results files are in its repo (as load_ctx() expects)."""
    run = RunDir.create(tmp / "runs", "kv cache eviction")
    if files:
        write_files(run.repo_dir, stage_files())
    return run
