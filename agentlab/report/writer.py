"""write_report: outline -> sections (checked) -> tables/figures from data -> LaTeX -> compile (repaired)."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path
from typing import Callable

from agentlab.config import Settings
from agentlab.errors import Resumable
from agentlab.llm.client import LLM
from agentlab.paths import templates_dir
from agentlab.prompts import render_messages
from agentlab.report.bib import build_bib, cited_keys
from agentlab.report.figures import build_figure, build_table, datasets, describe, has_results, results_exhibits
from agentlab.report.latex import compile_pdf, render, sanitize, template_names, tex_escape, unicode_to_tex
from agentlab.report.schemas import SECTION_TITLES, SECTIONS, ReportOutline, RevisionPlan
from agentlab.report.sections import PHASE, Writer
from agentlab.report.trace import collect_sources, sources_for_prompt, trace_latex
from agentlab.runs import RunDir


class ReportFailed(Resumable, RuntimeError):
    """The report could not be produced; the message says exactly why (the run stops, resumable)."""


def report_dir(run: RunDir) -> Path:
    return run.repo_dir / "report"


def load_state(run: RunDir) -> dict | None:
    p = report_dir(run) / "sections.json"
    return json.loads(p.read_text()) if p.exists() else None


def write_report(ctx: dict, settings: Settings, llm: LLM, run: RunDir, progress: Callable[[str], None]) -> dict:
    """Write, check, compile and commit one revision of the report (see docs/report.md)."""
    rev = int(ctx.get("revision") or 1)
    prefix = ctx.get("memo_prefix") or f"write_report/rev{rev}"
    ctx = {"run_repo": str(run.repo_dir), **ctx, "memo_prefix": prefix}
    if settings.template not in template_names():
        raise ReportFailed(f"unknown report template {settings.template!r} (have: {', '.join(template_names())})")
    out = report_dir(run)
    for sub in ("tables", "figures"):
        shutil.rmtree(out / sub, ignore_errors=True)
        (out / sub).mkdir(parents=True)
    sources = collect_sources(ctx)
    chars = max(4000, 2 * settings.context_budget_tokens)  # what data may take of one prompt
    numbers = sources_for_prompt(sources, limit=max(24, min(120, chars // 200)))
    bib, keys = build_bib(ctx.get("papers") or [])
    data = datasets(ctx)
    previous = load_state(run) if rev > 1 else None

    # 1. outline: title, and what the tables and figures show (kept across revisions)
    if previous:
        outline = ReportOutline.model_validate(previous["outline"])
    else:
        progress("planning the report")
        outline = llm.structured(
            render_messages("report_outline", idea=ctx.get("idea", ""), plan=ctx.get("plan") or {},
                            interpretation=ctx.get("interpretation") or {}, datasets=describe(data, chars=chars),
                            has_results=has_results(data)),
            ReportOutline, phase=PHASE, purpose="outline", memo_key=f"{prefix}/outline")
    auto = results_exhibits(ctx, data, out)  # one table per stage and the figures: always, by code
    problems: list[str] = list(auto.problems)
    tables, figures, labels, table_trace = _tables_and_figures(outline, data, out, problems, auto.sources)
    tables, figures, labels, table_trace = (auto.tables + tables, auto.figures + figures, auto.labels + labels,
                                            auto.trace + table_trace)
    figure_files = sorted(f"figures/{p.name}" for p in (out / "figures").iterdir() if p.is_file())

    # 2. sections (a revision rewrites only the sections the reviews/feedback concern)
    writer = Writer(ctx, llm, sources, numbers, keys, describe(data, chars=chars), labels, settings.report_fix_rounds,
                    progress,
                    figures=figure_files)
    title = outline.title
    if previous:
        sections, rewritten = _revise_sections(ctx, llm, writer, title, previous, prefix)
    else:
        rewritten = set(SECTIONS)
        sections = {name: writer.write(name, title) for name in SECTIONS}
    title_tex = writer.enforce("title", unicode_to_tex(tex_escape(title)))
    rewritten.add("title")
    for name in SECTIONS:  # every section passes the allowlist, also one kept from an earlier revision
        sections[name], removed_tex = sanitize(sections.get(name, ""), figure_files)
        writer.problems += [f"{name}: {p}" for p in removed_tex if f"{name}: {p}" not in writer.problems]

    # 3. LaTeX, compiled; errors go back to the writer a bounded number of times
    (out / "references.bib").write_text(bib)
    sections, isolation = _compile(out, settings, writer, title_tex, sections, tables, figures, rev, progress,
                                   problems)
    problems += writer.problems

    # 4. traceability, state for the next revision, commit and tag
    removed = _removed_rows(previous, rewritten, writer)
    trace = _trace_all(removed, title_tex, sections, sources, table_trace)
    (out / f"trace-rev-{rev}.json").write_text(json.dumps(trace, indent=2))
    (out / "sections.json").write_text(json.dumps(
        {"revision": rev, "outline": outline.model_dump(mode="json"), "sections": sections,
         "removed": removed, "problems": problems}, indent=2))
    sha = run.commit(["report"], f"report revision {rev}")
    repo = run.repo()
    repo.create_tag(f"report-rev-{rev}", ref=sha, force=True)
    untraced = sum(1 for t in trace if t["status"] != "ok")
    run.log(f"report revision {rev}: compiled, {len(trace)} numbers traced ({untraced} untraced), "
            f"{len(problems)} problem(s), commit {sha[:8]}; LaTeX compiled with {isolation}")
    progress(f"revision {rev} compiled ({len(problems)} problem(s))")
    return {"revision": rev, "tex": "report/main.tex", "pdf": "report/main.pdf", "compiled": True,
            "problems": problems, "trace": trace, "commit": sha, "latex_isolation": isolation}


def _tables_and_figures(outline: ReportOutline, data: dict, out: Path, problems: list[str],
                        shown: set[str] = frozenset()) -> tuple[list, list, list, list[dict]]:
    """Build the outline's tables and figures from data: (tables, figures, labels, table trace); failures go to problems.
    A table of a dataset already `shown` by code is not repeated."""
    table_trace: list[dict] = []
    tables, figures, labels = [], [], []
    for i, spec in enumerate(outline.tables, 1):
        if spec.source in shown:
            continue
        built = build_table(spec, data, i)
        if isinstance(built, str):
            problems.append(built)
            continue
        (out / "tables" / f"table-{i}.tex").write_text(built[0])
        tables.append(f"table-{i}")
        table_trace += built[1]
        labels.append(f"tab:t{i}")
    for i, spec in enumerate(outline.figures, 1):
        tex = build_figure(spec, data, i, out / "figures")
        if tex.startswith("figure "):
            problems.append(tex)
            continue
        figures.append(tex)
        labels.append(f"fig:f{i}")
    return tables, figures, labels, table_trace


def _revise_sections(ctx: dict, llm: LLM, writer: Writer, title: str, previous: dict,
                     prefix: str) -> tuple[dict, set]:
    """A revision: rewrite the sections the plan chose, re-check the rest; (sections, names rewritten)."""
    sections = dict(previous["sections"])
    plan = llm.structured(
        render_messages("report_revise_plan", title=title, sections=list(SECTIONS),
                        reviews=ctx.get("prior_reviews") or [], feedback=ctx.get("feedback") or []),
        RevisionPlan, phase=PHASE, purpose="revision plan", memo_key=f"{prefix}/revision_plan")
    weak = [w for r in ctx.get("prior_reviews") or [] for w in r.get("weaknesses", [])]
    rewritten = {s for s in SECTIONS if s in plan.sections}
    for name in [s for s in SECTIONS if s in rewritten]:
        sections[name] = writer.write(name, title, current=sections.get(name, ""),
                                      instructions=plan.instructions.get(name, ""), reviews=weak)
    if not plan.sections:
        writer.problems.append("the revision plan chose no section to rewrite; the text is unchanged")
    for name in [s for s in SECTIONS if s not in plan.sections and writer.issues(sections.get(s, ""))]:
        sections[name] = writer.check_and_fix(name, sections[name])  # the data changed under it
    return sections, rewritten


def _removed_rows(previous: dict | None, rewritten: set, writer: Writer) -> dict:
    """Trace rows of numbers removed per section, kept from earlier revisions unless the section was rewritten."""
    removed = dict((previous or {}).get("removed", {}))
    removed.update({name: [] for name in rewritten})  # a rewritten section starts afresh
    for name, rows in writer.removed.items():
        removed[name] = removed.get(name, []) + rows
    return removed


def _trace_all(removed: dict, title_tex: str, sections: dict, sources: list, table_trace: list[dict]) -> list[dict]:
    """The trace of every number: title, each section (removed ones first), then the tables."""
    trace = removed.get("title", []) + trace_latex(title_tex, sources, "title")
    for name in SECTIONS:
        trace += removed.get(name, []) + trace_latex(sections.get(name, ""), sources, name)
    trace += table_trace
    return trace


def _render(out: Path, settings: Settings, title: str, sections: dict, tables: list, figures: list,
            rev: int) -> str:
    cited = any(cited_keys(s) for s in sections.values())
    body = [{"name": n, "title": SECTION_TITLES[n], "latex": sections.get(n, "")} for n in SECTIONS]
    tex = render(f"{settings.template}/main.tex.j2", title=title, revision=rev, abstract=sections.get("abstract", ""),
                 sections=body, tables=tables, figures=figures, cited=cited)
    for extra in (templates_dir() / settings.template).glob("*.sty"):
        shutil.copy(extra, out / extra.name)
    (out / "main.tex").write_text(tex)
    return tex


def section_at(tex: str, line: int | None) -> str | None:
    """Which section of the rendered main.tex a (1-based) line belongs to."""
    if line is None:
        return None
    current = None
    for i, text in enumerate(tex.splitlines(), 1):
        m = re.match(r"% agentlab-section-(begin|end): (\w+)", text)
        if m:
            current = m.group(2) if m.group(1) == "begin" else None
        if i == line:
            return current
    return None


def plain_text(latex: str) -> str:
    """Last resort for a section that will not compile: its words as escaped plain text."""
    text = re.sub(r"\\(?:cite[a-z]*|ref|eqref|label|includegraphics)\*?(\[[^\]]*\])*\{[^}]*\}", " ", latex)
    text = re.sub(r"\\[a-zA-Z]+\*?(\[[^\]]*\])?", " ", text)
    text = text.replace("{", " ").replace("}", " ").replace("\\", " ").replace("$", " ")
    return tex_escape(" ".join(text.split()))


def _compile(out: Path, settings: Settings, writer: Writer, title: str, sections: dict, tables: list,
             figures: list, rev: int, progress, problems: list[str]) -> tuple[dict, str]:
    """Compile, sending errors back to the writer; (the sections that compiled, the isolation used)."""
    repairs = 0
    flattened: set[str] = set()
    while True:
        tex = _render(out, settings, title, sections, tables, figures, rev)
        progress("compiling LaTeX" if not repairs else f"compiling LaTeX (repair {repairs})")
        res = compile_pdf(out, settings.latex_timeout)
        if res.ok:
            return sections, res.isolation
        name = section_at(tex, res.error_line)
        if res.log_excerpt.startswith("latexmk is not installed"):
            raise ReportFailed(res.log_excerpt)
        if name and repairs < settings.latex_repairs:
            repairs += 1
            progress(f"LaTeX error in {name}: sent back to the writer")
            fixed = writer.fix(name, sections[name], [f"pdflatex failed in this section:\n{res.log_excerpt}"],
                               f"latex{repairs}")
            sections[name] = writer.check_and_fix(name, fixed, rounds=0)
            continue
        if name and name not in flattened:
            flattened.add(name)
            problems.append(f"{name}: LaTeX still failed after {repairs} repair(s); the section is shown as plain text")
            sections[name] = plain_text(sections[name])
            continue
        todo = [n for n in SECTIONS if n not in flattened and sections.get(n)]
        if name is None and todo:  # error outside a known line: flatten everything the model wrote
            flattened.update(todo)
            problems.append("LaTeX failed outside any section; all sections are shown as plain text: "
                            + res.log_excerpt[:300])
            sections = {n: plain_text(s) for n, s in sections.items()}
            continue
        raise ReportFailed(f"the report does not compile (revision {rev}, template {settings.template}); "
                           f"LaTeX log:\n{res.log_excerpt[:1500]}")
