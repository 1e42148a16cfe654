"""Real long-document QA samples: L-Eval's Qasper jsonl (full paper text, questions, gold answers)
and the original Qasper JSON (with evidence paragraphs, which give gold chunks)."""

from __future__ import annotations

import json
import re
from collections import Counter
from pathlib import Path

from agentlab.eval.synthetic import Item
from agentlab.literature.pdftext import chunk_text


def load_qa(path: str | Path, n: int, chunk_tokens: int = 256) -> list[Item]:
    """Up to `n` questions per document from a .jsonl (L-Eval) or .json (Qasper) file."""
    p = Path(path)
    if p.suffix == ".jsonl":
        return _leval(p, n)
    return _qasper(p, n, chunk_tokens)


def _leval(p: Path, n: int) -> list[Item]:
    items = []
    for d, line in enumerate(p.read_text().splitlines()):
        if not line.strip():
            continue
        row = json.loads(line)
        for q, (question, answer) in enumerate(zip(row["instructions"], row["outputs"])):
            if q >= n:
                break
            items.append(Item(f"leval-{d}-{q}", "qa", len(row["input"]) // 4, question, answer, [], row["input"]))
    return items


def _qasper(p: Path, n: int, chunk_tokens: int) -> list[Item]:
    items = []
    for pid, paper in json.loads(p.read_text()).items():
        paras = [paper.get("title", ""), paper.get("abstract", "")]
        for sec in paper.get("full_text", []):
            paras.append(sec.get("section_name") or "")
            paras.extend(sec.get("paragraphs") or [])
        text = "\n\n".join(x for x in paras if x and x.strip())
        chunks = chunk_text(text, chunk_tokens)
        k = 0
        for qa in paper.get("qas", []):
            ans = (qa.get("answers") or [{}])[0].get("answer", {})
            if ans.get("unanswerable") or k >= n:
                continue
            gold = ans.get("free_form_answer") or "; ".join(ans.get("extractive_spans") or []) or \
                {True: "Yes", False: "No"}.get(ans.get("yes_no"), "")
            if not gold:
                continue
            ev = [e[:80] for e in ans.get("evidence") or [] if e and not e.startswith("FLOAT")]
            gold_ids = sorted({c.id for c in chunks for e in ev if e in c.text})
            items.append(Item(f"qasper-{pid}-{k}", "qa", len(text) // 4, qa["question"], gold, gold_ids, text))
            k += 1
    return items


def _tokens(s: str) -> list[str]:
    s = re.sub(r"\b(a|an|the)\b", " ", s.lower())
    return re.findall(r"\w+", s)


def f1(pred: str, gold: str) -> float:
    p, g = _tokens(pred), _tokens(gold)
    common = sum((Counter(p) & Counter(g)).values())
    if not p or not g or not common:
        return 0.0
    prec, rec = common / len(p), common / len(g)
    return 2 * prec * rec / (prec + rec)


def contains(pred: str, gold: str) -> bool:
    norm = lambda s: " ".join(_tokens(s))  # noqa: E731
    return bool(gold.strip()) and norm(gold) in norm(pred)
