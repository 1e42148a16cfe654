"""review_report: an ensemble of automated reviewers (NeurIPS form) and a meta-review, per revision."""

from __future__ import annotations

import json
import shutil
import subprocess
from typing import Callable

from agentlab.config import Settings
from agentlab.llm.client import LLM
from agentlab.prompts import render_messages
from agentlab.report.schemas import SECTIONS, MetaReview
from agentlab.report.writer import load_state, report_dir
from agentlab.runs import RunDir
from agentlab.schemas import Review

PHASE = "review"
#: each reviewer of the ensemble looks at the paper from a different side
FOCUS = (
    "Focus on soundness: do the claims follow from the numbers shown, are baselines and metrics adequate?",
    "Focus on presentation: is the paper clear, are tables and figures referenced and explained?",
    "Focus on contribution: is the idea novel relative to the cited work, does it matter for LLM efficiency?",
)


def paper_text(run: RunDir, limit: int) -> str:
    """What a reader sees: pdftotext of the PDF (the LaTeX source if pdftotext is missing)."""
    pdf = report_dir(run) / "main.pdf"
    if pdf.exists() and shutil.which("pdftotext"):
        try:
            text = subprocess.run(["pdftotext", "-layout", str(pdf), "-"], capture_output=True, text=True,
                                  timeout=60, errors="replace").stdout
            if text.strip():
                return text[:limit]
        except subprocess.TimeoutExpired:
            pass
    tex = report_dir(run) / "main.tex"
    return tex.read_text()[:limit] if tex.exists() else ""


def review_report(report: dict, ctx: dict, settings: Settings, llm: LLM, run: RunDir,
                  progress: Callable[[str], None]) -> dict:
    """Review the current revision with `settings.n_reviewers` reviewers; store reviews/rev-N.json."""
    rev = int(report.get("revision") or ctx.get("revision") or 1)
    prefix = ctx.get("memo_prefix") or f"review/rev{rev}"
    text = paper_text(run, settings.review_max_chars)
    open_ = list((report.get("integrity") or {}).get("open") or [])
    n = max(1, settings.n_reviewers)
    reviews: list[dict] = []
    for i in range(n):
        progress(f"reviewer {i + 1}/{n}")
        msgs = render_messages("review_reviewer", index=i + 1, total=n, focus=FOCUS[i % len(FOCUS)], paper=text,
                               open_problems=open_[:20])
        r = llm.structured(msgs, Review, phase=PHASE, purpose=f"reviewer {i + 1}", memo_key=f"{prefix}/reviewer/{i + 1}")
        reviews.append(r.model_dump(mode="json"))
    mean = round(sum(r["overall"] for r in reviews) / len(reviews), 2)
    state = load_state(run) or {}
    title = (state.get("outline") or {}).get("title", "")
    progress("meta-review")
    meta = llm.structured(
        render_messages("review_meta", title=title, reviews=reviews, mean=mean, threshold=settings.accept_score,
                        sections=list(SECTIONS)),
        MetaReview, phase=PHASE, purpose="meta-review", memo_key=f"{prefix}/meta").model_dump(mode="json")
    meta["sections_to_revise"] = [s for s in meta.get("sections_to_revise", []) if s in SECTIONS]
    # a report with open integrity problems (claims code could not verify) is never accepted
    decision = "accept" if mean >= settings.accept_score and not open_ else "revise"
    if open_:
        meta["weaknesses"] = [f"integrity check (must be fixed): {p}" for p in open_[:20]] + meta.get("weaknesses", [])
    scores = {k: round(sum(r[k] for r in reviews) / len(reviews), 2)
              for k in ("soundness", "presentation", "contribution", "overall", "confidence")}
    result = {"revision": rev, "reviews": reviews, "meta": meta, "overall": mean, "decision": decision,
              "scores": scores, "commit": report.get("commit", ""), "integrity_open": open_}
    out = report_dir(run) / "reviews"
    out.mkdir(parents=True, exist_ok=True)
    (out / f"rev-{rev}.json").write_text(json.dumps(result, indent=2))
    run.commit(["report/reviews"], f"reviews of report revision {rev}")
    run.log(f"report revision {rev} reviewed: mean overall {mean} -> {decision}")
    return result


def load_reviews(run: RunDir) -> list[dict]:
    """Every stored review round, by revision."""
    d = report_dir(run) / "reviews"
    files = sorted(d.glob("rev-*.json"), key=lambda p: int(p.stem.split("-")[1])) if d.exists() else []
    return [json.loads(p.read_text()) for p in files]
