"""The seam every literature source plugs into: the `PaperSource` protocol, a base class with the
defaults, and the `paper_sources` registry.

A source is one class, registered under a name (built-in: `PAPER_SOURCES.register(name, lazy=...)`
below; plugin: an entry point in group `agentlab.paper_sources`). The literature step builds each
configured source as `cls(SourceContext)` and then only calls the protocol:

    search(queries, limit)   -> candidate paper dicts (ids qualified by this source, see ids.py)
    fetch_text(paper)        -> (full text, None) or (None, why not)
    bibtex(paper, key)       -> one BibTeX entry under the cite key `key`
    normalize_id(ref)        -> the canonical paper id of a reference this source understands, or None

Which sources run comes from the settings (`configured_sources`); each source reads its own options
from `ctx.options` (the nested per-source settings) or from the existing flat fields.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, Protocol, runtime_checkable

from agentlab.literature.bibtex import entry_from_metadata
from agentlab.literature.ids import qualify, split_id
from agentlab.literature.store import PaperStore
from agentlab.registry import Registry

if TYPE_CHECKING:
    from agentlab.config import Settings


class SourceSkipped(RuntimeError):
    """A source had nothing to offer this time (an empty cache, a rate limit); recorded as a search
    failure and the review goes on with the other sources. `LiteratureUnavailable` instead stops the
    phase (resumably)."""


@dataclass
class SourceContext:
    """What a source is built with: the run's settings, the shared paper cache, its registry name and
    its own options (`paper_source_options[name]`)."""

    settings: Settings
    cache: PaperStore
    name: str
    options: dict[str, Any] = field(default_factory=dict)
    progress: Callable[[str], None] = lambda msg: None


@runtime_checkable
class PaperSource(Protocol):
    """A place papers come from. Ids: see `agentlab.literature.ids` (`<name>:<native>`, bare arXiv)."""

    name: str
    #: True: `search` uses the queries (refined queries go to it too); False: it lists a collection
    query_driven: bool
    #: True: text it fetched is worth keeping in the shared cache (network sources)
    cache_text: bool

    def search(self, queries: Sequence[str], limit: int) -> list[dict]:
        """Papers for the queries, at most `limit` per query; a paper found by several queries may be
        returned once per query (it counts as a ranking bonus). Raises SourceSkipped or
        LiteratureUnavailable."""
        ...

    def fetch_text(self, paper: dict) -> tuple[str | None, str | None]:
        """(full text, None), or (None, a reason for the failures list). Never raises for one paper."""
        ...

    def bibtex(self, paper: dict, key: str) -> str:
        """One BibTeX entry for the paper under cite key `key` (see agentlab.literature.bibtex)."""
        ...

    def normalize_id(self, ref: str) -> str | None:
        """The canonical paper id for `ref` (a native id, URL or qualified id), None if not understood."""
        ...


class BaseSource:
    """Defaults for a source: subclass it, set the class attributes and override `search` (and
    `fetch_text` when the source can get full text)."""

    name: str = ""
    query_driven: ClassVar[bool] = True
    cache_text: ClassVar[bool] = True
    #: needs the network: left out in offline mode
    network: ClassVar[bool] = True

    def __init__(self, ctx: SourceContext):
        self.ctx = ctx
        self.settings = ctx.settings
        self.options = ctx.options
        self.name = ctx.name or type(self).name

    def search(self, queries: Sequence[str], limit: int) -> list[dict]:
        return []

    def fetch_text(self, paper: dict) -> tuple[str | None, str | None]:
        return None, f"{self.name} has no full text for {paper.get('id')}"

    def bibtex(self, paper: dict, key: str) -> str:
        return entry_from_metadata(paper, key)

    def normalize_id(self, ref: str) -> str | None:
        source, native = split_id(ref)
        if not native:
            return None
        return qualify(source or self.name, native)

    def paper(self, native_id: str, **meta: Any) -> dict:
        """A paper dict with every key the review keeps, its id qualified by this source."""
        base = {"title": "", "authors": [], "year": None, "primary_category": None, "abstract": "", "url": "",
                "pdf_url": "", "bibkey": ""}
        return {**base, **meta, "id": self.normalize_id(native_id) or qualify(self.name, native_id)}


PAPER_SOURCES: Registry[type] = Registry("paper_sources", "paper source")
PAPER_SOURCES.register("arxiv", lazy="agentlab.literature.arxiv_source:ArxivSource")
PAPER_SOURCES.register("local", lazy="agentlab.literature.local:LocalSource")
PAPER_SOURCES.register("cache", lazy="agentlab.literature.cache_source:CacheSource")


def configured_sources(settings: Settings) -> list[str]:
    """The sources to search, in order. `paper_sources` (a list of registry names) when the settings
    have it; otherwise the existing fields: `papers_dir` -> local, `offline` -> cache, else arXiv.
    Offline, network sources are left out (and the cache searched instead if nothing is left)."""
    names = list(getattr(settings, "paper_sources", None) or [])
    if not names:
        return ["local"] if settings.papers_dir else ["cache"] if settings.offline else ["arxiv"]
    if settings.offline:
        names = [n for n in names if not getattr(PAPER_SOURCES.get(n), "network", True)] or ["cache"]
    return list(dict.fromkeys(names))


class Sources:
    """The sources of one literature step: the configured ones (searched, in order) plus any other
    registered source built on demand when it owns a paper's id (e.g. arXiv for a BibTeX eprint)."""

    def __init__(self, settings: Settings, cache: PaperStore, progress: Callable[[str], None] = lambda m: None,
                 names: Sequence[str] | None = None):
        self.settings, self.cache, self.progress = settings, cache, progress
        self._built: dict[str, Any] = {}
        self.configured = [self.get(n) for n in (names if names is not None else configured_sources(settings))]

    def get(self, name: str) -> PaperSource:
        if name not in self._built:
            cls = PAPER_SOURCES.get(name)  # UnknownName lists the registered names
            options = dict((getattr(self.settings, "paper_source_options", None) or {}).get(name) or {})
            self._built[name] = cls(SourceContext(self.settings, self.cache, name, options, self.progress))
        return self._built[name]

    def owner(self, pid: str) -> PaperSource | None:
        """The source whose id scheme `pid` is in (built on demand), or None."""
        source, _ = split_id(pid)
        return self.get(source) if source and source in PAPER_SOURCES else None
