"""Metrics every experiment reports: perplexity, accuracy retention, parameters, KV bytes, memory, speed.

All ours (plain torch). Definitions:
- perplexity = exp(mean over predicted tokens of -log p(true next token)), one causal pass over the text
  (chunked with a KV cache when longer than ``chunk``, which gives the same number as one pass).
- next-token accuracy = share of positions where argmax p equals the true next token; accuracy
  retention = method accuracy / dense accuracy.
- KV bytes (dense) = n_layers * 2 * n_kv_heads * head_dim * tokens * bytes_per_elt (batch 1).
- tokens/s = new tokens / wall seconds of the generation call; latency per token = its inverse in ms.
- peak memory: ``torch.cuda.max_memory_allocated`` on GPU; on CPU the growth of the process's peak
  resident set (``ru_maxrss``) during the call, which reads 0 when an earlier call already peaked higher.
"""

from __future__ import annotations

import math
import resource
import sys
import time
from dataclasses import dataclass

import torch

from agentlab.modules.models import count_params, kv_geometry

__all__ = [
    "perplexity",
    "next_token_accuracy",
    "accuracy_retention",
    "dense_kv_bytes",
    "cache_bytes",
    "param_count",
    "measure",
    "Timing",
]


@torch.no_grad()
def perplexity(model, input_ids: torch.Tensor, chunk: int = 1024) -> float:
    """Perplexity of ``model`` on ``input_ids`` (``[1, T]``), predicting tokens 1..T-1.

    Args:
        model: a HF causal LM.
        input_ids: ``[1, T]`` token ids (on the model's device or CPU).
        chunk: tokens per forward; longer texts go through in chunks with a KV cache (exact).
    Returns:
        A float, exp of the mean negative log-likelihood.
    Example:
        >>> from agentlab.modules import metrics
        >>> ppl = metrics.perplexity(model, ids)
    """
    from transformers import DynamicCache

    device = next(model.parameters()).device
    ids = input_ids.to(device)
    nll, count = 0.0, 0
    cache = DynamicCache()
    prev_last = None
    for start in range(0, ids.shape[1], chunk):
        piece = ids[:, start : start + chunk]
        pos = torch.arange(start, start + piece.shape[1], device=device)[None]
        logits = model(input_ids=piece, past_key_values=cache, position_ids=pos, use_cache=True).logits.float()
        if prev_last is not None:
            nll += -torch.log_softmax(prev_last, -1)[0, piece[0, 0]].item()
            count += 1
        if piece.shape[1] > 1:
            lp = torch.log_softmax(logits[0, :-1], -1)
            nll += -lp.gather(1, piece[0, 1:, None]).sum().item()
            count += piece.shape[1] - 1
        prev_last = logits[:, -1]
    return math.exp(nll / max(count, 1))


@torch.no_grad()
def next_token_accuracy(model, input_ids: torch.Tensor) -> float:
    """Share of positions where the model's top-1 next token equals the true one (one pass).

    Returns:
        A float in [0, 1].
    Example:
        >>> from agentlab.modules import metrics
        >>> acc = metrics.next_token_accuracy(model, ids)
    """
    device = next(model.parameters()).device
    ids = input_ids.to(device)
    pred = model(input_ids=ids).logits[0, :-1].argmax(-1)
    return (pred == ids[0, 1:]).float().mean().item()


def accuracy_retention(method_score: float, dense_score: float) -> float:
    """Accuracy retention = method score / dense score (1.0 = nothing lost).

    Returns:
        A float (may exceed 1 by noise).
    Example:
        >>> from agentlab.modules.metrics import accuracy_retention
        >>> accuracy_retention(0.45, 0.5)
        0.9
    """
    return method_score / dense_score if dense_score else float("nan")


def dense_kv_bytes(model, tokens: int, batch: int = 1) -> int:
    """Exact bytes of a full KV cache: n_layers * 2 * n_kv_heads * head_dim * tokens * bytes_per_elt * batch.

    Returns:
        An int.
    Example:
        >>> from agentlab.modules.models import tiny_llama
        >>> from agentlab.modules.metrics import dense_kv_bytes
        >>> dense_kv_bytes(tiny_llama(layers=2, hidden=64, heads=4, kv_heads=2), tokens=10)
        5120
    """
    g = kv_geometry(model)
    return g.n_layers * 2 * g.n_kv_heads * g.head_dim * tokens * g.bytes_per_elt * batch


def cache_bytes(cache) -> int:
    """Bytes actually held by the key/value tensors of a HF ``Cache`` (or a ``kv.KVState``).

    Returns:
        An int: the sum of ``numel * element_size`` over every layer's keys and values.
    Example:
        >>> from agentlab.modules.metrics import cache_bytes
        >>> cache_bytes(model(ids, use_cache=True).past_key_values)
    """
    cache = getattr(cache, "cache", cache)
    total = 0
    for layer in cache.layers:
        for t in (getattr(layer, "keys", None), getattr(layer, "values", None)):
            if isinstance(t, torch.Tensor):
                total += t.numel() * t.element_size()
    return total


def param_count(model, nonzero: bool = False) -> int:
    """Parameter count (tied weights once); ``nonzero=True`` counts only non-zero entries.

    Returns:
        An int.
    Example:
        >>> from agentlab.modules.metrics import param_count
        >>> n = param_count(model)
    """
    return count_params(model, nonzero=nonzero)


@dataclass
class Timing:
    """Speed and memory of one call."""

    seconds: float  # wall time of the call
    tokens: int  # new tokens it produced (as told by the caller)
    tokens_per_s: float  # tokens / seconds
    ms_per_token: float  # 1000 * seconds / tokens
    peak_mem_bytes: int  # GPU: max allocated; CPU: growth of peak RSS during the call


def _rss_peak() -> int:
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak if sys.platform == "darwin" else peak * 1024


def measure(fn, tokens_of=None, device=None):
    """Run ``fn()`` once and time it; ``tokens_of(result)`` says how many tokens it produced.

    Returns:
        ``(result, Timing)``.
    Example:
        >>> from agentlab.modules.metrics import measure
        >>> out, t = measure(lambda: model.generate(ids, max_new_tokens=32, do_sample=False),
        ...                  tokens_of=lambda o: o.shape[1] - ids.shape[1])
        >>> t.tokens_per_s
    """
    cuda = device is not None and torch.device(device).type == "cuda"
    if cuda:
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    before = _rss_peak()
    start = time.perf_counter()
    result = fn()
    if cuda:
        torch.cuda.synchronize()
    seconds = time.perf_counter() - start
    peak = torch.cuda.max_memory_allocated() if cuda else max(0, _rss_peak() - before)
    n = int(tokens_of(result)) if tokens_of else 0
    return result, Timing(seconds, n, n / seconds if seconds else 0.0, 1000 * seconds / n if n else 0.0, peak)
