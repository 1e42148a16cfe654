"""Writing sections with bounded context, and the checks that send a section back to the writer."""

from __future__ import annotations

import json
import re
from typing import Callable

from agentlab.llm.client import LLM
from agentlab.prompts import render_messages
from agentlab.report.bib import drop_unknown_cites, unknown_cites
from agentlab.report.latex import sanitize
from agentlab.report.schemas import SECTION_TITLES, SectionDraft
from agentlab.report.trace import Source, find_numbers, redact, source_of

PHASE = "write_report"
_REF = re.compile(r"\\(?:ref|autoref|cref|Cref)\{([^}]*)\}")
NOTES_BUDGET_CHARS = 6000  # all paper notes together, per section prompt
#: which parts of the run each section sees (bounded context, never the whole history)
_NEEDS = {
    "abstract": {"datasets", "stages"}, "introduction": {"papers"}, "related_work": {"papers", "notes"},
    "method": {"notes"}, "experimental_setup": {"datasets", "attempts", "stages"},
    "results": {"datasets", "attempts", "labels", "stages"}, "discussion": {"datasets", "attempts", "notes", "stages"},
    "conclusion": set(),
}


class Writer:
    """Writes, checks and fixes sections for one revision; collects the problems it could not fix."""

    def __init__(self, ctx: dict, llm: LLM, sources: list[Source], numbers: list[str], keys: dict[str, dict],
                 data_view: list[dict], labels: list[str], fix_rounds: int, progress: Callable[[str], None],
                 figures: list[str] | None = None):
        self.ctx, self.llm, self.sources, self.numbers = ctx, llm, sources, numbers
        self.figures = list(figures or [])  # the figure files the host drew: all \includegraphics may name
        self.keys, self.data_view, self.labels = keys, data_view, labels
        self.fix_rounds, self.progress = fix_rounds, progress
        self.prefix = ctx.get("memo_prefix") or f"write_report/rev{ctx.get('revision', 1)}"
        self.problems: list[str] = []
        self.removed: dict[str, list[dict]] = {}  # section -> trace rows of numbers removed as untraced

    # ---- context -----------------------------------------------------------------------------
    def _papers(self, with_notes: bool) -> list[dict]:
        """Cite keys and titles of every paper; the notes share a fixed character budget, so the prompt
        stays bounded however many papers the review found."""
        notes = {n.get("paper_id"): n for n in self.ctx.get("notes") or []}
        per_note = max(300, NOTES_BUDGET_CHARS // max(1, len(self.keys)))
        out = []
        for key, p in self.keys.items():
            n = notes.get(p.get("id")) or {}
            note = ""
            if with_notes and n:
                parts = [f"problem: {n.get('problem', '')}", f"method: {n.get('method', '')}"]
                if n.get("key_numbers"):
                    parts.append("numbers: " + "; ".join(map(str, n["key_numbers"])))
                if n.get("limitations"):
                    parts.append(f"limitations: {n['limitations']}")
                if n.get("grounding"):
                    parts.append("grounding: " + json.dumps(n["grounding"])[:600])
                note = " ".join(parts)
                note = note if len(note) <= per_note else note[: per_note - 3] + "..."
            out.append({"key": key, "title": p.get("title", ""), "year": p.get("year", ""), "note": note})
        return out

    def _stages(self) -> tuple[list[dict], dict]:
        """The experiment's stages (status, reason, results file) and the analysis' headline, for the prompt."""
        stages = (self.ctx.get("experiment") or {}).get("stages")
        rows = [{"stage": n, "status": st.get("status"), "reason": str(st.get("reason") or "")[:300],
                 "results_file": st.get("results_path")}
                for n, st in (stages.items() if isinstance(stages, dict) else []) if isinstance(st, dict)]
        an = self.ctx.get("analysis") if isinstance(self.ctx.get("analysis"), dict) else {}
        keys = ("primary", "direction", "split", "n_seeds", "proposed", "strongest_baseline", "significant_any")
        return rows, {k: an.get(k) for k in keys if k in an}

    def _vars(self, name: str, title: str) -> dict:
        needs = _NEEDS.get(name, set())
        attempts = [{k: a.get(k) for k in ("n", "status", "reason", "metrics")} for a in self.ctx.get("attempts") or []]
        stages, analysis = self._stages() if "stages" in needs else ([], {})
        return {
            "section": name, "title": SECTION_TITLES.get(name, name), "paper_title": title,
            "idea": self.ctx.get("idea", ""), "plan": self.ctx.get("plan") or {},
            "interpretation": self.ctx.get("interpretation") or {},
            "papers": self._papers("notes" in needs) if needs & {"papers", "notes"} else
            [{"key": k, "title": p.get("title", ""), "year": p.get("year", ""), "note": ""} for k, p in self.keys.items()],
            "datasets": self.data_view if "datasets" in needs else [],
            "attempts": attempts if "attempts" in needs else [], "stages": stages, "analysis": analysis,
            "labels": self.labels, "numbers": self.numbers, "feedback": self.ctx.get("feedback") or [],
            "current": "", "instructions": "", "reviews": [],
        }

    # ---- writing -----------------------------------------------------------------------------
    def write(self, name: str, title: str, current: str = "", instructions: str = "",
              reviews: list[str] | None = None) -> str:
        """Draft (or rewrite) one section, then check and fix it."""
        self.progress(f"writing {name}" if not current else f"revising {name}")
        v = self._vars(name, title)
        v.update(current=current, instructions=instructions or "address the reviews", reviews=reviews or [])
        draft = self.llm.structured(render_messages("report_section", **v), SectionDraft, phase=PHASE,
                                    purpose=f"section {name}", memo_key=f"{self.prefix}/section/{name}")
        return self.check_and_fix(name, draft.latex)

    def fix(self, name: str, latex: str, problems: list[str], tag: str) -> str:
        msgs = render_messages("report_fix", section=name, problems=problems, latex=latex,
                               keys=list(self.keys), numbers=self.numbers)
        out = self.llm.structured(msgs, SectionDraft, phase=PHASE, purpose=f"fix {name}",
                                  memo_key=f"{self.prefix}/fix/{name}/{tag}")
        return out.latex

    def issues(self, latex: str) -> list[str]:
        """What code rejects in a section: unknown cite keys and numbers without a source."""
        out = [f"\\cite key '{k}' is not in references.bib (known keys: {', '.join(self.keys) or 'none'})"
               for k in unknown_cites(latex, set(self.keys))]
        for label in _REF.findall(latex):
            if label not in self.labels:
                out.append(f"\\ref{{{label}}} points to no table or figure (labels: {', '.join(self.labels) or 'none'})")
        for f in find_numbers(latex):
            if source_of(f, self.sources) is None:
                snippet = " ".join(latex[max(0, f.start - 50): f.end + 20].split())
                out.append(f"number {f.text}{'%' if f.percent else ''} has no source in the results files or "
                           f"the paper notes (in: \"{snippet}\")")
        return out

    def check_and_fix(self, name: str, latex: str, rounds: int | None = None) -> str:
        """Send the section back while it has problems (bounded); then drop/redact what remains."""
        latex, removed = sanitize(latex, self.figures)
        self.problems += [f"{name}: {p}" for p in removed]
        for r in range(self.fix_rounds if rounds is None else rounds):
            problems = self.issues(latex)
            if not problems:
                return latex
            self.progress(f"{name}: {len(problems)} problem(s) sent back to the writer")
            latex, removed = sanitize(self.fix(name, latex, problems, f"check{r + 1}"), self.figures)
            self.problems += [f"{name}: {p}" for p in removed]
        return self.enforce(name, latex)

    def enforce(self, name: str, latex: str) -> str:
        """Never let an unknown \\cite or an untraced number reach the PDF."""
        dangling = [label for label in _REF.findall(latex) if label not in self.labels]
        if dangling:
            self.problems.append(f"{name}: reference(s) to missing table/figure {', '.join(dangling)}")
        bad = unknown_cites(latex, set(self.keys))
        if bad:
            self.problems.append(f"{name}: removed unknown citation key(s) {', '.join(bad)}")
            latex = drop_unknown_cites(latex, set(self.keys))
        found = [f for f in find_numbers(latex) if source_of(f, self.sources) is None]
        untraced = [f.text + ("%" if f.percent else "") for f in found]
        self.removed.setdefault(name, []).extend([
            {"number": u, "source": "", "status": "untraced", "section": name,
             "context": " ".join(latex[max(0, f.start - 40): f.end + 30].split()) + " [removed from the PDF]"}
            for u, f in zip(untraced, found)])
        if untraced:
            self.problems.append(f"{name}: removed untraced number(s) {', '.join(untraced)}")
            latex = redact(latex, self.sources)
        return latex
