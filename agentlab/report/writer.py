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
from agentlab.report import claims, evidence, integrity, pdf_check, values
from agentlab.report.bib import build_bib, cited_keys
from agentlab.report.figures import build_figure, build_table, datasets, describe, has_results, results_exhibits
from agentlab.report.latex import compile_pdf, render, sanitize, template_names, tex_escape
from agentlab.report.schemas import SECTION_TITLES, SECTIONS, ReportOutline, RevisionPlan
from agentlab.report.sections import PHASE, Writer
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
    ctx = {"run_repo": str(run.repo_dir), "run_path": str(run.path), **ctx, "memo_prefix": prefix}
    if settings.template not in template_names():
        raise ReportFailed(f"unknown report template {settings.template!r} (have: {', '.join(template_names())})")
    out = report_dir(run)
    for sub in ("tables", "figures"):
        shutil.rmtree(out / sub, ignore_errors=True)
        (out / sub).mkdir(parents=True)
    chars = max(4000, 2 * settings.context_budget_tokens)  # what data may take of one prompt
    bib, keys = build_bib(ctx.get("papers") or [])
    data = datasets(ctx)
    ledger = values.build_ledger(ctx, data)
    ev = evidence.evidence(ctx, data, ledger, set(keys))
    ledger.paper_text = ev.paper_text
    numbers = ledger.listing(limit=max(24, min(160, chars // 100)))
    trail = integrity.Trail(out / "integrity.jsonl", rev)
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
    outline = _checked_captions(outline, ev, trail, problems, data)
    tables, figures, labels, table_trace = _tables_and_figures(outline, data, out, problems, auto.sources)
    tables, figures, labels, table_trace = (auto.tables + tables, auto.figures + figures, auto.labels + labels,
                                            auto.trace + table_trace)
    figure_files = sorted(f"figures/{p.name}" for p in (out / "figures").iterdir() if p.is_file())

    # 2. sections (a revision rewrites only the sections the reviews/feedback concern)
    writer = Writer(ctx, llm, ev, numbers, keys, describe(data, chars=chars), labels, settings.report_fix_rounds,
                    progress, trail, figures=figure_files)
    title = outline.title
    if previous:
        sections, rewritten = _revise_sections(ctx, llm, writer, title, previous, prefix)
    else:
        rewritten = set(SECTIONS)
        sections = {name: writer.write(name, title) for name in SECTIONS}
    title_tex = writer.title(title)
    rewritten.add("title")
    for name in SECTIONS:  # every section passes the allowlist, also one kept from an earlier revision
        sections[name], removed_tex = sanitize(sections.get(name, ""), figure_files)
        writer.problems += [f"{name}: {p}" for p in removed_tex if f"{name}: {p}" not in writer.problems]

    # 3. LaTeX, compiled; errors go back to the writer a bounded number of times; then the checks on the PDF
    (out / "references.bib").write_text(bib)
    pdf_check.write_check_bib(out)
    exhibits = (tables, figures, ledger)
    sections, res = _compile(out, settings, writer, title_tex, sections, exhibits, rev, progress, problems)
    sections, res = _check_pdf(out, settings, writer, title_tex, sections, exhibits, rev, progress, problems, res)
    cited = {k for s in sections.values() for k in cited_keys(s)}
    for p in pdf_check.verify_bibliography(res.bbl, cited, set(keys), bib, res.bib_after):
        trail.decided("references", "bibliography", "", "open", p)
    problems += writer.problems

    # 4. traceability, state for the next revision, commit and tag
    removed = _removed_rows(previous, rewritten, writer)
    trace = _trace_all(removed, sections, ledger, table_trace)
    (out / f"trace-rev-{rev}.json").write_text(json.dumps(trace, indent=2))
    (out / "sections.json").write_text(json.dumps(
        {"revision": rev, "outline": outline.model_dump(mode="json"), "sections": sections,
         "removed": removed, "problems": problems}, indent=2))
    summary = integrity.summary(integrity.read(out / "integrity.jsonl"), rev)
    sha = run.commit(["report"], f"report revision {rev}")
    repo = run.repo()
    repo.create_tag(f"report-rev-{rev}", ref=sha, force=True)
    run.log(f"report revision {rev}: compiled, {len(trace)} numbers rendered by code, {summary['flagged']} claim(s) "
            f"flagged, {summary['dropped']} sentence(s) removed, {len(summary['open'])} open problem(s), "
            f"commit {sha[:8]}; LaTeX compiled with {res.isolation}")
    progress(f"revision {rev} compiled ({len(problems)} problem(s), {len(summary['open'])} open)")
    return {"revision": rev, "tex": "report/main.tex", "pdf": "report/main.pdf", "compiled": True,
            "problems": problems, "trace": trace, "commit": sha, "latex_isolation": res.isolation,
            "integrity": summary}


def _checked_captions(outline: ReportOutline, ev: evidence.Evidence, trail: integrity.Trail, problems: list[str],
                      data: dict) -> ReportOutline:
    """The captions the model chose are prose too: one with a flagged claim, or naming a metric its table or figure
    does not show, is replaced by the dataset's name."""
    specs = {"tables": [], "figures": []}
    for kind in specs:
        for spec in getattr(outline, kind):
            found = [(i.kind, i.message) for i in claims.check(tex_escape(spec.caption), ev, "caption")] \
                if spec.caption else []
            shown = _caption_metric(spec, data)
            if shown:
                found.append(("metric", shown))
            for k, message in found:
                trail.decided("caption", k, spec.caption, "replaced", message)
                problems.append(f"caption of {spec.source}: {message}; replaced by the dataset's name")
            specs[kind].append(spec.model_copy(update={"caption": f"Data: {spec.source}."}) if found else spec)
    return outline.model_copy(update=specs)


def _caption_metric(spec, data: dict) -> str:
    """Why a caption's metric words do not fit the columns it shows ("" when they do or it names none)."""
    from agentlab.report import claim_words as w

    ds = data.get(spec.source) or {}
    res = ds.get("results") or (data.get(f"stage.{ds.get('stage')}") or {}).get("results") or {}
    cols = list(getattr(spec, "y", None) or getattr(spec, "columns", None) or
                {k for r in ds.get("rows") or [] for k in r if not str(k).startswith("_")})
    primary = w.metric_family(str(res.get("primary") or ""))  # the comparisons' columns are of the primary metric
    fams = {w.metric_family(str(c)) or (primary if c in ("diff", "diff_lo", "diff_hi", "proposed", "baseline_mean")
                                        else "") for c in cols} - {""}
    said = [(word, f) for _, word, f in w.metric_words(spec.caption, 0, len(spec.caption))]
    wrong = [word for word, f in said if fams and not f & fams]
    return (f"the caption speaks of '{wrong[0]}', but the {spec.source} columns shown are "
            f"{', '.join(map(str, cols[:6]))}") if wrong and not any(f & fams for _, f in said) else ""


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


def _trace_all(removed: dict, sections: dict, ledger: values.Ledger, table_trace: list[dict]) -> list[dict]:
    """The trace of every number: each section's values rendered by code (removed sentences first), then the tables."""
    trace = list(removed.get("title", []))
    for name in SECTIONS:
        trace += removed.get(name, []) + values.render(sections.get(name, ""), ledger, name)[1]
    return trace + table_trace


def _render(out: Path, settings: Settings, title: str, sections: dict, exhibits: tuple, rev: int,
            check: bool = False) -> str:
    """main.tex (or, with `check`, the check build check.tex: every number code rendered as a placeholder)."""
    tables, figures, ledger = exhibits
    shown = {n: values.render(s, ledger, n)[0] for n, s in sections.items()}
    cited = any(cited_keys(s) for s in sections.values())
    body = [{"name": n, "title": SECTION_TITLES[n], "latex": shown.get(n, "")} for n in SECTIONS]
    tex = render(f"{settings.template}/main.tex.j2", title=title, revision=rev, abstract=shown.get("abstract", ""),
                 sections=body, tables=tables, figures=figures, cited=cited, check=check)
    for extra in (templates_dir() / settings.template).glob("*.sty"):
        shutil.copy(extra, out / extra.name)
    (out / ("check.tex" if check else "main.tex")).write_text(tex)
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
    """Last resort for a section that will not compile: its words as escaped plain text (comments dropped;
    its \\val and \\quoted references kept, so code still renders their numbers)."""
    held: list[str] = []

    def hold(m: re.Match) -> str:
        held.append(m.group(0))
        return f"\x00{len(held) - 1}\x00"

    text = re.sub(r"(?<!\\)%[^\n]*", " ", latex)
    text = values.QUOTED_RE.sub(hold, values.VAL_RE.sub(hold, text))
    text = re.sub(r"\\(?:cite[a-z]*|ref|eqref|label|includegraphics)\*?(\[[^\]]*\])*\{[^}]*\}", " ", text)
    text = re.sub(r"\\[a-zA-Z]+\*?(\[[^\]]*\])?", " ", text)
    text = text.replace("{", " ").replace("}", " ").replace("\\", " ").replace("$", " ")
    text = tex_escape(" ".join(text.split()))
    return re.sub(r"\x00(\d+)\x00", lambda m: held[int(m.group(1))], text)


def _check_pdf(out: Path, settings: Settings, writer: Writer, title: str, sections: dict, exhibits: tuple, rev: int,
               progress, problems: list[str], res):
    """The check on what the reader sees: compile the check build, where every number code rendered is a
    placeholder, and read its text. A number or number word left there was typed: its section goes back to the
    writer (bounded), then its sentences are removed; what cannot be traced to a sentence stays open."""
    titles = {n: SECTION_TITLES[n] for n in SECTIONS}
    for round_ in range(settings.report_fix_rounds + 1):
        _render(out, settings, title, sections, exhibits, rev, check=True)
        progress("checking the PDF text" if not round_ else f"checking the PDF text (round {round_ + 1})")
        cb = pdf_check.check_build(out, settings.latex_timeout)
        if not cb.ok:
            writer.trail.decided("pdf", "check_build", "", "open", f"the check build failed: {cb.log_excerpt[:300]}")
            return sections, res
        found = _pdf_findings(cb, writer.ev, titles)
        if not found:
            return sections, res
        by_section: dict[str, list] = {}
        for sec, token, context, message in found:
            writer.trail.flagged(sec or "pdf", round_ + 1, "pdf", context, message)
            by_section.setdefault(sec if sec in sections else "", []).append((token, context, message))
        last = round_ == settings.report_fix_rounds
        for name, items in by_section.items():
            if not name:
                for token, context, message in items:
                    writer.trail.decided("pdf", "pdf", context, "open", message)
                continue
            if not last:
                progress(f"{name}: {len(items)} number(s) in the PDF text no code rendered: sent back to the writer")
                fixed = writer.fix(name, sections[name], [f"{m} (the PDF shows: \"{c}\")" for _, c, m in items],
                                   f"pdf{round_ + 1}")
                sections[name] = writer.check_and_fix(name, fixed, rounds=0)
            else:
                sections[name] = _drop_found(writer, name, sections[name], items)
        sections, res = _compile(out, settings, writer, title, sections, exhibits, rev, progress, problems)
    return sections, res


def _pdf_findings(cb, ev: evidence.Evidence, titles: dict) -> list[tuple[str | None, str, str, str]]:
    """(section, token, context, message) for every typed number and unbacked claim in the check build's text."""
    out = [(f.section, f.token, f.context, f"the number {f.token} in the PDF was not rendered by code: write "
            f"\\val{{NAME}} instead") for f in cb.findings]
    body = cb.text[: cb.text.rfind("References")] if "References" in cb.text else cb.text
    for i in claims.check_text(body, ev):
        ctx = " ".join(body[max(0, i.start - 40): i.end + 40].split())
        out.append((pdf_check.section_of(cb.text, i.start, titles), body[i.start:i.end], ctx, i.message))
    return out


def _drop_found(writer: Writer, name: str, latex: str, items: list) -> str:
    """Remove the sentences of a section that hold what the PDF check found; what is not found stays open."""
    spans = claims.sentences(latex)
    drop = set()
    for token, context, message in items:
        hit = [sp for sp in spans if token and token in latex[sp[0]:sp[1]]]
        for sp in hit:
            drop.add(sp)
            writer.trail.decided(name, "pdf", " ".join(latex[sp[0]:sp[1]].split())[:300], "dropped", message)
            writer.problems.append(f"{name}: removed a sentence the PDF check flagged ({message})")
        if not hit:
            writer.trail.decided(name, "pdf", context, "open", message)
    return claims.drop_sentences(latex, sorted(drop))[0] if drop else latex


def _compile(out: Path, settings: Settings, writer: Writer, title: str, sections: dict, exhibits: tuple,
             rev: int, progress, problems: list[str]):
    """Compile, sending errors back to the writer; (the sections that compiled, the CompileResult)."""
    repairs = 0
    flattened: set[str] = set()
    while True:
        tex = _render(out, settings, title, sections, exhibits, rev)
        progress("compiling LaTeX" if not repairs else f"compiling LaTeX (repair {repairs})")
        res = compile_pdf(out, settings.latex_timeout)
        if res.ok:
            return sections, res
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
