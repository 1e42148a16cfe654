"""Writing sections with bounded context, and the checks that send a section back to the writer."""

from __future__ import annotations

import json
import re
from typing import Callable

from agentlab.llm.client import LLM
from agentlab.prompts import render_messages
from agentlab.report import claims
from agentlab.report.evidence import Evidence
from agentlab.report.integrity import Trail
from agentlab.report.latex import sanitize
from agentlab.report.schemas import SECTION_TITLES, SectionDraft

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

    def __init__(self, ctx: dict, llm: LLM, ev: Evidence, numbers: list[str], keys: dict[str, dict],
                 data_view: list[dict], labels: list[str], fix_rounds: int, progress: Callable[[str], None],
                 trail: Trail, figures: list[str] | None = None):
        self.ctx, self.llm, self.ev, self.numbers, self.trail = ctx, llm, ev, numbers, trail
        self.figures = list(figures or [])  # the figure files the host drew: all \includegraphics may name
        self.keys, self.data_view, self.labels = keys, data_view, labels
        self.fix_rounds, self.progress = fix_rounds, progress
        self.prefix = ctx.get("memo_prefix") or f"write_report/rev{ctx.get('revision', 1)}"
        self.problems: list[str] = []
        self.removed: dict[str, list[dict]] = {}  # section -> the sentences removed, as trace rows

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
        attempts = [{k: a.get(k) for k in ("n", "status", "reason", "metrics") if k != "metrics" or a.get("status") == "ok"}
                    for a in self.ctx.get("attempts") or []]  # a failed attempt's numbers are not results
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

    def found(self, name: str, latex: str) -> list[claims.Issue]:
        """What code rejects in a section (docs/integrity.md): typed numbers, unbacked claims, unknown cite keys,
        references to missing tables or figures."""
        out = claims.check(latex, self.ev, name)
        spans = claims.sentences(latex)
        for m in _REF.finditer(latex):
            if m.group(1) not in self.labels:
                out.append(claims.Issue("ref", f"\\ref{{{m.group(1)}}} points to no table or figure "
                                        f"(labels: {', '.join(self.labels) or 'none'})", m.start(), m.end(),
                                        _sentence_at(spans, m.start(), len(latex))))
        return out

    def issues(self, latex: str, name: str = "") -> list[str]:
        """The messages of `found`, each with the sentence it is about."""
        return [f"{i.message} (in: \"{_snippet(latex, i.sentence)}\")" for i in self.found(name, latex)]

    def check_and_fix(self, name: str, latex: str, rounds: int | None = None) -> str:
        """Send the section back while it has problems (bounded, each flagged claim in the audit trail);
        then remove every sentence that still has one."""
        latex, removed = sanitize(latex, self.figures)
        self.problems += [f"{name}: {p}" for p in removed]
        flagged: dict[str, str] = {}  # message -> claim
        for r in range(self.fix_rounds if rounds is None else rounds):
            found = self.found(name, latex)
            if not found:
                break
            for i in found:
                claim = _snippet(latex, i.sentence)
                flagged.setdefault(i.message, claim)
                self.trail.flagged(name, r + 1, i.kind, claim, i.message)
            self.progress(f"{name}: {len(found)} problem(s) sent back to the writer")
            problems = [f"{i.message} (in: \"{_snippet(latex, i.sentence)}\")" for i in found]
            latex, removed = sanitize(self.fix(name, latex, problems, f"check{r + 1}"), self.figures)
            self.problems += [f"{name}: {p}" for p in removed]
            self.trail.rewritten(name, r + 1, latex)
        left = {i.message for i in self.found(name, latex)}
        for message, claim in flagged.items():
            if message not in left:
                self.trail.decided(name, "fix", claim, "fixed", message)
        return self.enforce(name, latex)

    def enforce(self, name: str, latex: str) -> str:
        """Never let a flagged claim reach the PDF: every sentence that still has a problem is removed whole."""
        for _ in range(3):
            found = self.found(name, latex)
            if not found:
                return latex
            spans = sorted({i.sentence for i in found})
            for i in found:
                self.trail.decided(name, i.kind, _snippet(latex, i.sentence), "dropped", i.message)
                self.problems.append(f"{name}: removed the sentence \"{_snippet(latex, i.sentence, 120)}\" "
                                     f"({i.kind}: {i.message})")
            latex, texts = claims.drop_sentences(latex, spans)
            self.removed.setdefault(name, []).extend(
                {"number": "", "source": "", "status": "removed", "section": name, "context": " ".join(t.split())[:300]}
                for t in texts)
        for i in self.found(name, latex):  # could not be removed: it stays visible, and blocks acceptance
            self.trail.decided(name, i.kind, _snippet(latex, i.sentence), "open", i.message)
        return latex

    def title(self, title: str) -> str:
        """The title is checked like prose; when a claim in it fails, it keeps its first clause that passes."""
        from agentlab.report.latex import tex_escape, unicode_to_tex

        tex = unicode_to_tex(tex_escape(title))
        found = self.found("title", tex)
        if not found:
            return tex
        for i in found:
            self.trail.decided("title", i.kind, title, "replaced", i.message)
            self.problems.append(f"title: {i.message}")
        for part in re.split(r"\s*[:;,\u2014-]\s+", title):
            part_tex = unicode_to_tex(tex_escape(part.strip()))
            if part_tex and len(part_tex) > 8 and not self.found("title", part_tex):
                return part_tex
        return "Experimental Report"


def _sentence_at(spans: list[tuple[int, int]], pos: int, n: int) -> tuple[int, int]:
    return next((s for s in spans if s[0] <= pos < s[1]), (0, n))


def _snippet(latex: str, span: tuple[int, int], limit: int = 300) -> str:
    text = " ".join(latex[span[0]: span[1]].split())
    return text if len(text) <= limit else text[: limit - 3] + "..."
