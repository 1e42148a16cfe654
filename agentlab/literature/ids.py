"""Paper ids: the one place that knows arXiv's id formats, and the source-qualified id scheme.

A paper id names the source that owns the paper: `<source>:<native id>` (`local:vaswani`,
`semantic_scholar:649def34…`), where `<source>` is the name the source is registered under. arXiv ids
stay bare (`2202.12139v1`, `hep-th/9901001`) so the ids in saved runs, stores and cite keys keep
working; `arxiv:2202.12139v1` and arXiv URLs are accepted as input and normalised to the bare form.

    parse_arxiv("https://arxiv.org/pdf/2304.02623v1.pdf")  -> ArxivId("2304.02623", 1)
    find_arxiv("journal={arXiv preprint arXiv:2311.03658}") -> ArxivId("2311.03658", None)
    split_id("local:vaswani") -> ("local", "vaswani");  split_id("2202.12139v1") -> ("arxiv", "2202.12139v1")
    dedup_key("2202.12139v1") -> "2202.12139"  (the same paper, whatever its version or source)
"""

from __future__ import annotations

import re
from dataclasses import dataclass

ARXIV = "arxiv"

#: archives of the old (pre-2007) scheme, `archive[.SC]/YYMMNNN`
OLD_ARCHIVES = (
    "acc-phys adap-org alg-geom ao-sci astro-ph atom-ph bayes-an chao-dyn chem-ph cmp-lg comp-gas cond-mat cs "
    "dg-ga funct-an gr-qc hep-ex hep-lat hep-ph hep-th math math-ph mtrl-th nlin nucl-ex nucl-th patt-sol "
    "physics plasm-ph q-alg q-bio q-fin quant-ph solv-int stat supr-con").split()

_YYMM = r"\d{2}(?:0[1-9]|1[0-2])"
_ARCH = "|".join(re.escape(a) for a in sorted(OLD_ARCHIVES, key=len, reverse=True))
_CORE = rf"(?P<base>{_YYMM}\.\d{{4,5}}|(?:{_ARCH})(?:\.[A-Z]{{2}})?/{_YYMM}\d{{3}})(?:v(?P<version>\d+))?"
_WHOLE = re.compile(rf"{_CORE}")
_IN_TEXT = re.compile(rf"(?<!\w){_CORE}(?!\d)")
_URL = re.compile(r"^(?:https?://)?(?:www\.|export\.)?arxiv\.org/(?:abs|pdf|html)/(?P<id>.+?)(?:\.pdf)?/?$", re.I)
_DOI = re.compile(r"^(?:https?://(?:dx\.)?doi\.org/)?10\.48550/arxiv\.(?P<id>.+)$", re.I)
_QUALIFIED = re.compile(r"^(?P<source>[a-z][a-z0-9_\-]*):(?P<native>.+)$")


@dataclass(frozen=True)
class ArxivId:
    """An arXiv identifier: `base` (`2401.01234`, `hep-th/9901001`) and an optional version."""

    base: str
    version: int | None = None

    def __str__(self) -> str:
        return f"{self.base}v{self.version}" if self.version else self.base

    @property
    def abs_url(self) -> str:
        """The abstract page of the paper (any version)."""
        return f"https://arxiv.org/abs/{self.base}"


def _make(m: re.Match) -> ArxivId:
    v = m.group("version")
    return ArxivId(m.group("base"), int(v) if v else None)


def parse_arxiv(ref: str) -> ArxivId | None:
    """The arXiv id that `ref` is, as a whole: a bare or versioned id, `arXiv:<id>`, an arxiv.org
    abs/pdf URL or the arXiv DOI (10.48550/arXiv.<id>); None for anything else."""
    s = str(ref or "").strip()
    if s.lower().startswith("arxiv:"):
        s = s[6:].strip()
    for pattern in (_URL, _DOI):
        m = pattern.match(s)
        if m:
            s = m.group("id")
            break
    m = _WHOLE.fullmatch(s)
    return _make(m) if m else None


def find_arxiv(text: str) -> ArxivId | None:
    """The first arXiv id mentioned anywhere in `text` (a BibTeX field, a file name, a PDF's stamp)."""
    m = _IN_TEXT.search(str(text or ""))
    return _make(m) if m else None


def is_arxiv(ref: str) -> bool:
    return parse_arxiv(ref) is not None


def arxiv_base(ref: str) -> str:
    """The arXiv id without its version (2401.01234v2 -> 2401.01234); other strings unchanged."""
    a = parse_arxiv(ref)
    return a.base if a else ref


# ---- the source-qualified scheme -------------------------------------------------------------------
def qualify(source: str, native: str) -> str:
    """The paper id of `native` in `source`: bare for arXiv, `<source>:<native>` otherwise."""
    native = str(native).strip()
    if source == ARXIV:
        a = parse_arxiv(native)
        return str(a) if a else native
    return native if native.startswith(f"{source}:") else f"{source}:{native}"


def split_id(pid: str) -> tuple[str | None, str]:
    """(owning source, native id). arXiv ids (bare, prefixed or URLs) belong to "arxiv"; `x:y` to
    source `x`; anything else (a legacy or hand-made id) to no source (None)."""
    a = parse_arxiv(pid)
    if a is not None:
        return ARXIV, str(a)
    m = _QUALIFIED.match(str(pid or "").strip())
    if m:
        return m.group("source"), m.group("native")
    return None, str(pid or "").strip()


def normalize_id(pid: str) -> str:
    """The canonical form of a paper id (`arxiv:2401.1v2` and arXiv URLs -> `2401.1v2`)."""
    source, native = split_id(pid)
    return qualify(source, native) if source else native


def dedup_key(pid: str) -> str:
    """The key under which ids of one paper coincide: arXiv ids without version, others canonical."""
    a = parse_arxiv(pid)
    return a.base if a else normalize_id(pid)


def slug(text: str) -> str:
    """A native id from free text (a file stem, a BibTeX key): lower-case [a-z0-9_]."""
    return re.sub(r"[^A-Za-z0-9]+", "_", str(text)).strip("_").lower() or "paper"
