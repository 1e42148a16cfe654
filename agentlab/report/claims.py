"""Source-level claim checks of one report section, sentence splitting and sentence dropping (docs/integrity.md §2).

A section is read through same-length views of its source (`claim_words.prose_view`: comments, escapes, `\\val`,
`\\quoted`, `\\cite` and name arguments such as `\\ref{..}` blanked; `bare_view`: control words blanked too), so a
position in a view is a position in the source: each `Issue` points at the source, and its `sentence` is the span
`drop_sentences` removes when the writer cannot fix the claim.
"""

from __future__ import annotations

import bisect
import re
from dataclasses import dataclass

from agentlab.report import claim_words as w
from agentlab.report import tex_scan as ts
from agentlab.report.evidence import Evidence
from agentlab.report.values import Value, ValueRefError, find_quoted, find_vals


@dataclass
class Issue:
    kind: str
    message: str
    start: int
    end: int
    sentence: tuple[int, int]


@dataclass
class _V:
    start: int
    end: int
    ref: str
    decimals: int | None
    value: Value | None = None
    error: str = ""
    error_kind: str = ""


_WRITE_VAL = "write \\val{...} with a name from the value list (or \\quoted{KEY}{...} for a paper's number)"
_RESULT = ("result", "derived")


class _Doc:
    """One section's source, its views, values, citations and sentences."""

    def __init__(self, latex: str, ev: Evidence | None = None):
        self.src = src = ts.decomment(latex)
        self.n = len(src)
        self.vals = [_V(*t) for t in find_vals(src)]
        self.quoted = find_quoted(src)
        self.cites = [(m.start(), m.end(), [k.strip() for k in m.group(3).split(",") if k.strip()])
                      for m in w.CITE_RE.finditer(src)]
        self.envs = ts.env_pairs(src)
        protected = [(v.start, v.end) for v in self.vals] + [(t[0], t[1]) for t in [*self.quoted, *self.cites]]
        self.prose = ts.prose_view(src, protected)
        self.bare = ts.bare_view(self.prose)
        self.math = ts.math_mask(self.prose, self.envs)
        self.depth = ts.depths(self.prose)
        self.spans = ts.sentence_spans(self.prose, self.envs, self.math, self.depth)
        self.starts = [a for a, _ in self.spans]
        for v in self.vals if ev is not None else ():
            _resolve(v, ev)

    def sentence(self, pos: int) -> tuple[int, int]:
        return _span_at(self.spans, self.starts, pos, self.n)

    def issue(self, kind: str, message: str, a: int, b: int) -> Issue:
        return Issue(kind, message, a, b, self.sentence(a))

    def cited(self, span: tuple[int, int]) -> set[str]:
        return {k for a, _, keys in self.cites if span[0] <= a < span[1] for k in keys}

    def clause(self, pos: int) -> tuple[int, int]:
        """The clause around pos: between separators (, ; : but while ...) of its sentence."""
        a, b = self.sentence(pos)
        seps = [(m.start() + a, m.end() + a) for m in w.CLAUSE_SEP_RE.finditer(self.bare[a:b])]
        return max([e for s, e in seps if e <= pos], default=a), min([s for s, e in seps if s >= pos], default=b)

    def paragraph(self, a: int, b: int) -> tuple[int, int]:
        return ts.paragraph_at(self.prose, self.envs, self.math, self.depth, a, b)

    def sents(self):
        for span in self.spans:
            yield span, [v for v in self.vals if span[0] <= v.start < span[1]], self.cited(span)


def _resolves(ev: Evidence, ref: str) -> bool:
    try:
        return bool(ev.ledger.resolve(ref))
    except ValueRefError:
        return False


def _resolve(v: _V, ev: Evidence) -> None:
    """Resolve a \\val; an unresolvable derived value whose operands both exist is a `derived` problem."""
    try:
        v.value = ev.ledger.resolve(v.ref, v.decimals)
    except ValueRefError as exc:
        v.error, v.error_kind = str(exc), getattr(exc, "kind", "") or "value_ref"
    m = w.DERIVED_RE.match(v.ref) if v.error_kind == "value_ref" else None
    if m and all(_resolves(ev, part) for part in w.split_operands(m.group(1))):
        v.error_kind = "derived"


def _span_at(spans: list[tuple[int, int]], starts: list[int], pos: int, n: int) -> tuple[int, int]:
    """The sentence holding pos (between two sentences: the one before)."""
    return spans[max(0, bisect.bisect_right(starts, pos) - 1)] if spans else (0, n)


# ---- the checks ---------------------------------------------------------------------------------------------
def _digits(doc: _Doc, ev: Evidence):
    for m in w.TOKEN_RE.finditer(doc.bare):
        if m.group("num"):
            extra = "; in math too: use a letter for an index or a constant" if doc.math[m.start()] else ""
            yield doc.issue("digit", f"number {m.group('num')} is typed; {_WRITE_VAL}{extra}", m.start(), m.end())


def _number_words(doc: _Doc, ev: Evidence):
    ends = {v.end for v in doc.vals}

    def val_before(pos: int) -> bool:
        return any(e in ends for e in range(pos, max(-1, pos - 8), -1)
                   if not doc.bare[e:pos].strip(" \t\n~" + ts.FILL))

    yield from w.number_word_issues(doc.bare, val_before, doc.issue)


def _value_refs(doc: _Doc, ev: Evidence):
    for v in doc.vals:
        if v.error:
            yield doc.issue(v.error_kind, v.error, v.start, v.end)
    starts = {v.start for v in doc.vals} | {q[0] for q in doc.quoted}
    for m in re.finditer(r"\\(val|quoted)(?![A-Za-z])", doc.src):
        if m.start() not in starts:
            how = ("\\val{NAME} or \\val[D]{NAME} with a name from the value list" if m.group(1) == "val" else
                   "\\quoted{KEY}{TEXT} with the paper's exact words")
            yield doc.issue("value_ref" if m.group(1) == "val" else "paper_number",
                            f"a malformed \\{m.group(1)}: write {how}", m.start(), m.end() + 1)


def _p_refs(ev: Evidence) -> list[str]:
    names = [n for n, v in getattr(ev.ledger, "values", {}).items() if v.stat == "p"]
    return sorted(names) or [f"cmp:{b}:p" for b in sorted(ev.tests)]


def _significance(doc: _Doc, ev: Evidence):
    for span, vals, _ in doc.sents():
        text = doc.prose[span[0]:span[1]]
        trig = list(w.SIGNIFICANCE_RE.finditer(text))
        if not trig:
            continue
        pv = [v for v in vals if v.value and v.value.stat == "p"]
        described = all(w.DESCRIPTIVE_RE.match(text, t.start()) for t in trig) and any(
            v.value and v.value.stat in ("lo", "hi", "stat") for v in vals)
        if not pv and not described:
            refs = _p_refs(ev)
            how = (f"give the paired test's p-value in the same sentence: p = \\val{{{refs[0]}}} (available: "
                   f"{', '.join(refs)})" if refs else "no paired test ran in this run (no \\val{cmp:X:p} exists): "
                   "remove the claim, or report the interval with \\val{seeds:ROW:METRIC_lo} and ..._hi")
            yield doc.issue("significance", f"'{trig[0].group(0)}' claims statistical evidence; {how}",
                            span[0] + trig[0].start(), span[0] + trig[0].end())
        for v in pv:
            yield from _polarity(doc, ev, v, span, text)


def _polarity(doc: _Doc, ev: Evidence, v: _V, span: tuple[int, int], text: str):
    base = v.value.name.split(":")[1] if v.value.name.count(":") >= 2 else ""
    tests = {k.lower() for k in ev.tests}
    if tests and base.lower() not in tests:
        yield doc.issue("significance", f"\\val{{{v.ref}}}: no paired test against '{base}' ran (tests: "
                        f"{', '.join(_p_refs(ev))})", v.start, v.end)
        return
    if not w.SIG_CLAIM_RE.search(text):
        return
    c0, c1 = doc.clause(v.start)
    clause = doc.prose[c0:c1] if w.SIG_CLAIM_RE.search(doc.prose[c0:c1]) else text
    negated, p = bool(w.NEGATION_RE.search(clause)), float(v.value.value)
    if negated and p < ev.alpha:
        yield doc.issue("significance", f"the sentence says the difference is not significant, but \\val{{{v.ref}}} "
                        f"is p = {v.value.text} < alpha = {ev.alpha:g}: it is significant; say so", v.start, v.end)
    elif not negated and p >= ev.alpha:
        yield doc.issue("significance", f"the sentence claims significance, but \\val{{{v.ref}}} is p = "
                        f"{v.value.text} >= alpha = {ev.alpha:g}: write that the difference is not statistically "
                        "significant", v.start, v.end)


def _seeds(doc: _Doc, ev: Evidence):
    n = ev.n_seeds
    fix = f"write \\val{{count:seeds}} (this run used {n} seed{'s' if n != 1 else ''})"
    for v in doc.vals:
        m = w.COUNT_BEFORE_SEEDS_RE.match(doc.bare, v.end)
        ok = v.value is None or v.value.name == "count:seeds" or (v.value.stat == "n" and v.value.value == n)
        if m and not ok:
            yield doc.issue("seeds", f"\\val{{{v.ref}}} is not the seed count but stands before "
                            f"'{m.group(0).strip()}'; {fix}", v.start, m.end())
    for m in w.SEED_N_RE.finditer(doc.bare):
        yield doc.issue("seeds", f"'{m.group(0)}' types a seed count; {fix}", m.start(), m.end())
    for rx, bad in ((w.SINGLE_SEED_RE, n != 1), (w.MANY_SEEDS_RE, n < 2)):
        for m in rx.finditer(doc.bare) if bad else ():
            yield doc.issue("seeds", f"'{m.group(0)}' does not hold; {fix}, or drop the claim", m.start(), m.end())


def _hardware_models(doc: _Doc, ev: Evidence):
    for span, _, keys in doc.sents():
        if not keys:
            text = doc.bare[span[0]:span[1]]
            yield from w.hardware_issues(text, ev.devices, span[0], doc.issue)
            yield from w.model_issues(text, ev.models, span[0], doc.issue)


def _mentions(doc: _Doc, ev: Evidence) -> list[tuple[int, int, str]]:
    return w.mentions(doc.bare, ev.methods | ev.known_methods | w.FIELD_METHODS)


def _baselines(doc: _Doc, ev: Evidence):
    ran = {w.norm_name(m) for m in ev.methods}
    known = {w.norm_name(m) for m in ev.known_methods | w.FIELD_METHODS | w.FIELD_METHODS_CASED}
    ments = [m for m in _mentions(doc, ev) if m[2] in known and m[2] not in ran]
    for s, e, name in ments:
        span = doc.sentence(s)
        if not doc.cited(span) and w.COMPARISON_RE.search(doc.bare[span[0]:span[1]]):
            yield doc.issue("baseline", f"'{doc.src[s:e]}' is compared but has no results row in this run; compare "
                            f"only with methods that ran ({', '.join(sorted(ev.methods))}), or cite the paper when "
                            "you describe its own claim", s, e)


def _listed(doc: _Doc, ments: list, v: _V, own: set[str]) -> str | None:
    """"A and B reach X and Y": values of different methods after a list of as many names, in order. None when the
    sentence is not such a list; else the name that does not fit ("" when it fits)."""
    s0, s1 = doc.sentence(v.start)
    prev = [m for m in ments if s0 <= m[0] < v.start and m[2] != "we"]
    nxt = min([m[0] for m in ments if v.end <= m[0] < s1], default=s1)
    group = [x for x in doc.vals if (prev[-1][1] if prev else s0) <= x.start < nxt and x.value]
    k = len(group)
    if (k < 2 or len(prev) < k or any(x.value.kind != "result" or len(x.value.methods) != 1 for x in group)
            or len({x.value.methods for x in group}) < k):
        return None
    names = prev[-k:]
    if not all(w.LIST_SEP_RE.fullmatch(doc.bare, a[1], b[0]) for a, b in zip(names, names[1:])):
        return None
    m = names[group.index(v)]
    return "" if m[2] in own else doc.src[m[0]:m[1]]


def _nearest(doc: _Doc, ments: list, v: _V, own: set[str]) -> str:
    """The method named right after the value ("X for H2O", "X below SnapKV") when it is the value's, or when it
    says whose value it is; else the method named last before the value in its clause; the name that does not fit."""
    c0, c1 = doc.clause(v.start)
    before = [m for m in ments if c0 <= m[0] < v.start]
    after = [m for m in ments if v.end <= m[0] < c1][:1]
    post = w.POST_NAME_RE.fullmatch(doc.bare, v.end, after[0][0]) if after else None
    if post and (after[0][2] in own or post.group("attr")):
        return "" if after[0][2] in own else doc.src[after[0][0]:after[0][1]]
    if not before or before[-1][2] in own or (before[-1][2] == "we" and "proposed" in own):
        return ""
    return doc.src[before[-1][0]:before[-1][1]]


def _other_pair(doc: _Doc, ments: list, v: _V, own: set[str]) -> str:
    """A comparison value (two methods) in a sentence that names another method but not the one compared with."""
    need = {w.norm_name(x) for x in v.value.methods} - {"proposed"}
    if len(set(v.value.methods)) < 2 or not need:
        return ""
    s0, s1 = doc.sentence(v.start)
    named = [m for m in ments if s0 <= m[0] < s1 and m[2] not in ("we", "proposed")]
    wrong = [m for m in named if m[2] not in own]
    return doc.src[wrong[0][0]:wrong[0][1]] if wrong and not need & {m[2] for m in named} else ""


def _attribution(doc: _Doc, ev: Evidence):
    ments = _mentions(doc, ev)
    for v in doc.vals:
        if not v.value or v.value.kind not in (*_RESULT, "test") or not v.value.methods:
            continue
        own = {w.norm_name(x) for x in (*v.value.methods, *v.value.rows)}
        said = _listed(doc, ments, v, own)
        said = (_nearest(doc, ments, v, own) if said is None else said) or _other_pair(doc, ments, v, own)
        if said:
            yield doc.issue("attribution", f"\\val{{{v.ref}}} is a value of {' vs '.join(v.value.methods)}, but the "
                            f"sentence gives it to '{said}'; put each value right after the name of its own method "
                            "(a comparison names both methods)", v.start, v.end)


def _units(doc: _Doc, ev: Evidence):
    for v in doc.vals:
        m = w.UNIT_AFTER_RE.match(doc.src[v.end:v.end + 40])
        if not v.value or not m:
            continue
        word, val = m.group("u"), v.value
        got, has = w.unit_class(word), w.VALUE_UNIT_CLASS.get(val.unit, val.unit)
        fam = "" if val.kind not in (*_RESULT, "test") else "p" if val.stat == "p" else w.metric_family(val.metric)
        if val.unit:
            why = (f"already renders its unit ({val.unit})" if got == has else
                   f"renders in {val.unit}, and '{word}' is another unit")
        elif val.kind == "count" and word != "times":
            why = "is a count, which has no unit"
        elif fam and w.FAMILY_UNIT.get(fam) != got:
            why = f"is {'a p-value' if fam == 'p' else val.metric}, not measured in '{word}'"
        else:
            continue
        yield doc.issue("unit", f"\\val{{{v.ref}}} {why}; delete the '{word}' after it (code renders units)",
                        v.start, v.end + m.end())


def _metrics(doc: _Doc, ev: Evidence):
    """The metric word nearest before a result in its clause (else right after it) must name the result's metric;
    a count must not stand as a measured change ("by N", "N lower perplexity")."""
    for v in doc.vals:
        val = v.value
        c0, c1 = doc.clause(v.start)
        after = w.metric_words(doc.bare, v.end, min(c1, v.end + 40))
        near = w.metric_words(doc.bare, c0, v.start)[-1:] or [
            x for x in after if w.NEXT_TO_RE.fullmatch(doc.bare, v.end, x[0])][:1]
        if not near and not doc.bare[c0:v.start].strip(" ,;:~()\x01"):  # an apposition: "the memory, X,"
            near = w.metric_words(doc.bare, doc.sentence(v.start)[0], c0)[-1:]
        if val and val.kind in ("count", "stat") and (w.COUNT_AS_CHANGE_RE.search(doc.bare[c0:v.start]) or (
                near and near[0][0] > v.end)):
            yield doc.issue("metric", f"\\val{{{v.ref}}} is a count, not a measured change; state a change with "
                            "\\val{pct(A, B)} or \\val{ratio(A, B)} of two results of the same metric",
                            v.start, v.end)
        fam = w.metric_family(val.metric) if val and val.kind in _RESULT else ""
        if fam and near and fam not in near[0][2]:
            yield doc.issue("metric", f"\\val{{{v.ref}}} is {val.metric}, but the metric word next to it is "
                            f"'{near[0][1]}'; name the metric the value measures, or use the value of the metric "
                            "you mean", v.start, v.end)


def _unmeasured(doc: _Doc, ev: Evidence):
    """A claim about a metric no value of the run measures: "faster" with no latency; "ours uses less memory" (a
    method, a comparative and a metric word) with no memory value."""
    values = getattr(ev.ledger, "values", None)
    if not isinstance(values, dict):
        return
    have = {w.metric_family(v.metric) for v in values.values() if v.kind == "result"}
    ments = _mentions(doc, ev)
    for span, _, keys in doc.sents():
        comparative = bool(w.COMPARATIVE_RE.search(doc.bare, *span))
        named = any(span[0] <= m[0] < span[1] for m in ments)
        for pos, word, fams in w.metric_words(doc.bare, *span) if not keys else ():
            claim = w.SPEED_CLAIM_RE.fullmatch(word) or comparative and (named or "speed" in fams)
            if claim and not fams & have:
                yield doc.issue("metric", f"'{word}' claims a difference in {'/'.join(sorted(fams))}, which no value "
                                "of this run measures; remove the claim, or state only what the values show",
                                pos, pos + len(word))


def _cited_results(doc: _Doc, ev: Evidence):
    for span, vals, keys in doc.sents():
        if keys and not w.FIRST_PERSON_RE.search(doc.bare[span[0]:span[1]]):
            for v in vals:
                if v.value and v.value.kind in (*_RESULT, "test"):
                    yield doc.issue("cited_result", f"\\val{{{v.ref}}} was measured in this run, but the sentence "
                                    f"credits it to \\cite{{{', '.join(sorted(keys))}}}; say it is ours (\"in our "
                                    "runs, ...\") and keep the citation for the paper's own claim", v.start, v.end)


def _paper_numbers(doc: _Doc, ev: Evidence):
    for a, b, key, text in doc.quoted:
        chunks = ev.paper_text.get(key) or []
        norm = w.normalise_quote(text)
        if key not in ev.keys:
            yield doc.issue("paper_number", f"\\quoted{{{key}}}{{...}}: '{key}' is not a paper of this run (keys: "
                            f"{', '.join(sorted(ev.keys)) or 'none'})", a, b)
        elif not chunks:
            yield doc.issue("paper_number", f"\\quoted{{{key}}}{{{text}}}: no text of '{key}' was fetched, so none "
                            "of its numbers can be quoted; describe its finding without the number", a, b)
        elif not any(norm in w.normalise_quote(t) for _, t in chunks):
            yield doc.issue("paper_number", f"\\quoted{{{key}}}{{{text}}} is not verbatim in the fetched text of "
                            f"'{key}'; copy the exact words and digits from the paper" + w.quote_hint(norm, chunks),
                            a, b)
        if key not in doc.cited(doc.sentence(a)):
            yield doc.issue("paper_number", f"\\quoted{{{key}}}{{...}} needs \\cite{{{key}}} in the same sentence",
                            a, b)


def _unknown_cites(doc: _Doc, ev: Evidence):
    for a, b, keys in doc.cites:
        for k in keys:
            if k != "*" and k not in ev.keys:
                yield doc.issue("unknown_cite", f"citation key '{k}' is not in this run's bibliography; cite one of: "
                                f"{', '.join(sorted(ev.keys)[:30]) or 'none'} (or remove the citation)", a, b)


def _text_citations(doc: _Doc, ev: Evidence):
    seen: list[tuple[int, int]] = []
    yield from w.text_citation_issues(doc.bare, 0, doc.issue, seen)
    for m in w.ET_AL_RE.finditer(doc.bare):
        if not doc.cited(doc.sentence(m.start())) and not any(s <= m.start() < e for s, e in seen):
            yield doc.issue("text_citation", "'et al.' without a citation: write Author et al.~\\cite{KEY} with a "
                            "key of the run's bibliography", m.start(), m.end())


SOURCE_CHECKS = (_digits, _number_words, _value_refs, _significance, _seeds, _hardware_models, _baselines,
                 _attribution, _units, _metrics, _unmeasured, _cited_results, _paper_numbers, _unknown_cites,
                 _text_citations)


# ---- public API -----------------------------------------------------------------------------------------------
def sentences(latex: str) -> list[tuple[int, int]]:
    """Sentence spans of a section's source, in order; together they hold every character that is neither white space
    nor in a comment.
    A float or table environment is one span; display math and braces never break a sentence; `\\item`, blank
    lines, headings and the `\\begin`/`\\end` of lists and other environments do."""
    return _Doc(latex).spans


def check(latex: str, ev: Evidence, section: str = "") -> list[Issue]:
    """Every claim problem of one section (`section` names it; all sections get the same checks)."""
    doc = _Doc(latex, ev)
    return w.unique([i for fn in SOURCE_CHECKS for i in fn(doc, ev)])


def text_sentences(text: str) -> list[tuple[int, int]]:
    """Sentence spans of plain text (the PDF's)."""
    cuts = {0, len(text)} | {m.end() for m in w.TEXT_END_RE.finditer(text)
                             if not w.ABBREV_RE.search(text[max(0, m.start() - 12): m.start() + 1])}
    return ts.trimmed(text, sorted(cuts))


def check_text(text: str, ev: Evidence) -> list[Issue]:
    """The checks that apply to text extracted from the compiled check build (no LaTeX, no \\val): any digit,
    number words, hardware and model names (not in a sentence with a rendered citation), typed citations.
    NUM, FIGURE and roman numerals are the build's placeholders and never match."""
    spans = text_sentences(text)
    starts = [a for a, _ in spans]

    def make(kind: str, message: str, a: int, b: int) -> Issue:
        return Issue(kind, message, a, b, _span_at(spans, starts, a, len(text)))

    out = [make("digit", f"'{m.group('num')}' in the PDF was not rendered by code: a typed number; {_WRITE_VAL}",
                m.start(), m.end()) for m in w.TEXT_TOKEN_RE.finditer(text) if m.group("num")]
    out += w.number_word_issues(text, lambda pos: text[max(0, pos - 5):pos].rstrip().endswith("NUM"), make)
    for a, b in spans:
        if not w.CITED_TEXT_RE.search(text[a:b]):
            out += [*w.hardware_issues(text[a:b], ev.devices, a, make), *w.model_issues(text[a:b], ev.models, a, make)]
    out += w.text_citation_issues(text, 0, make)
    return w.unique(out)


def drop_sentences(latex: str, spans: list[tuple[int, int]]) -> tuple[str, list[str]]:
    """Remove each span (a sentence) whole; a span whose braces, environments or math do not balance takes its
    paragraph with it instead. A list left without items goes too. Returns (new LaTeX, the removed texts)."""
    doc = _Doc(latex)
    cuts = []
    for a, b in spans:
        a, b = max(0, a), min(doc.n, b)
        if a < b and not ts.balanced(doc.prose[a:b], doc.src[a:b]):
            a, b = doc.paragraph(a, b)
        while a < b < doc.n and latex[b] in " \t":
            b += 1
        cuts += [(a, b)] if a < b else []
    merged = ts.merged(cuts)
    out = latex
    for a, b in reversed(merged):
        out = out[:a] + out[b:]
    for _ in range(4):
        out = re.sub(r"\\begin\{(" + "|".join(w.LIST_ENVS) + r")\}\s*\\end\{\1\}", "", out)
    out = re.sub(r"\n[ \t]*\n(?:[ \t]*\n)+", "\n\n", out)
    return out, [t for a, b in merged if (t := latex[a:b].strip())]
