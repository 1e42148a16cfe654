"""The shared paper cache as a source (`CacheSource`): offline search ranks what earlier runs read, and
every paper's full text is looked up here first, whichever source found it."""

from __future__ import annotations

from collections.abc import Sequence

from agentlab.literature.ids import dedup_key
from agentlab.literature.paper_source import BaseSource, SourceSkipped


class CacheSource(BaseSource):
    """`<cache_dir>/papers.sqlite`: the papers (and texts) earlier runs fetched. Its papers keep the ids
    of the sources that found them, so it owns no ids of its own."""

    name = "cache"
    query_driven = False
    cache_text = False  # it is the cache
    network = False

    def search(self, queries: Sequence[str], limit: int) -> list[dict]:
        cache = self.ctx.cache
        offline = "offline mode and " if self.settings.offline else ""
        self.ctx.progress("offline: searching the paper cache only" if offline else "searching the paper cache")
        found = [{k: v for k, v in meta.items() if k != "full_text"} for meta in cache.all_meta()]
        if not found:
            raise SourceSkipped(f"{offline}the paper cache {cache.path} is empty")
        return found

    def fetch_text(self, paper: dict) -> tuple[str | None, str | None]:
        cache = self.ctx.cache
        for key in dict.fromkeys((paper["id"], dedup_key(paper["id"]))):
            if cache.has(key, full_text=True):
                return cache.text(key), None
        return None, "not in the paper cache"

    def normalize_id(self, ref: str) -> str | None:
        return None
