"""KV-cache compression of a prefilled context: StreamingLLM, H2O, SnapKV, key-norm, int8/int4 quantization.

All ours (kvpress does not install beside transformers 5.23: kvpress 0.5.5 pins transformers<5.3).
Protocol (the kvpress one): prefill the context with full attention, compress each layer's cache once,
then score or generate the continuation against the compressed cache. Evicted caches keep the true
RoPE positions: keys are cached after rotation and new tokens get ``position_ids`` from ``KVState.position``.

Eviction keeps the same number of tokens in every layer and KV head (which tokens may differ per head):
KV bytes = n_layers * 2 * n_kv_heads * head_dim * kept_tokens * bytes_per_elt. Quantization stores each
group of ``group_size`` channels of one token as ``bits``-bit codes plus a float16 scale and zero:
bytes = n_layers * 2 * n_kv_heads * tokens * (head_dim * bits / 8 + (head_dim / group_size) * 4).
The packing itself is in ``kv_quant``; the low-rank latent (MLA-style) method is in ``kv_latent``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from agentlab.modules import attention as _attn
from agentlab.modules.kv_quant import dequantize_tensor, quantize_tensor
from agentlab.modules.metrics import cache_bytes, dense_kv_bytes
from agentlab.modules.models import kv_geometry

__all__ = [
    "KVState",
    "KVStats",
    "prefill",
    "streaming_llm",
    "h2o",
    "snapkv",
    "key_norm",
    "quantize_kv",
    "compress",
    "score_continuation",
    "greedy_continue",
    "mask_reference_perplexity",
]

METHODS = ("streaming_llm", "h2o", "snapkv", "key_norm", "quantize")


@dataclass
class KVState:
    """A (possibly compressed) cache and where the sequence stands."""

    cache: object  # transformers DynamicCache
    position: int  # position id of the next token (= context tokens seen, whatever was evicted)
    last_logits: torch.Tensor  # [1, vocab] logits for the token at ``position``
    kept: list | None = None  # after an eviction: per layer, LongTensor [1, H_kv, kept] of kept positions


@dataclass
class KVStats:
    """What a compression did to the context's cache."""

    method: str
    tokens: int  # context tokens prefilled
    kept_tokens: int  # tokens kept per layer and KV head (== tokens when quantizing)
    kv_bytes: int  # bytes of the compressed context cache (formulas in the module doc)
    dense_kv_bytes: int  # n_layers * 2 * n_kv_heads * head_dim * tokens * bytes_per_elt
    compression_ratio: float  # dense_kv_bytes / kv_bytes
    bits: int  # bits per cached element (model dtype bits unless quantized)


def _device(model):
    return next(model.parameters()).device


@torch.no_grad()
def prefill(model, input_ids: torch.Tensor, observer=None) -> KVState:
    """Run the context through the model with a fresh ``DynamicCache``.

    Args:
        model: a HF Llama-family causal LM.
        input_ids: ``[1, T]`` context tokens.
        observer: optional ``fn(module, probs)`` called per layer with attention probabilities
            ``[B, H_q, T, T]`` (then the eager ``agentlab_window`` attention is used for this pass).
    Returns:
        ``KVState(cache, position=T, last_logits)``.
    Example:
        >>> from agentlab.modules import kv
        >>> state = kv.prefill(model, ids[:, :256])
        >>> state.position
        256
    """
    from transformers import DynamicCache

    ids = input_ids.to(_device(model))
    cache = DynamicCache()
    if observer is None:
        out = model(input_ids=ids, past_key_values=cache, use_cache=True)
    else:
        attns = [layer.self_attn for layer in model.model.layers]
        for a in attns:
            a.agentlab_observer = observer
        try:
            with _attn.use_impl(model):
                out = model(input_ids=ids, past_key_values=cache, use_cache=True)
        finally:
            for a in attns:
                del a.agentlab_observer
    return KVState(cache, ids.shape[1], out.logits[:, -1].float())


def _budget(tokens: int, budget) -> int:
    kept = int(budget) if isinstance(budget, int) and not isinstance(budget, bool) else round(budget * tokens)
    return max(1, min(tokens, kept))


def _evict(state: KVState, scores: list[torch.Tensor], kept: int) -> list[torch.Tensor]:
    """Keep the top-``kept`` tokens of each layer/KV head by score ([B, H_kv, T]); returns the indices."""
    chosen = []
    for layer, s in zip(state.cache.layers, scores):
        idx = s.topk(kept, dim=-1).indices.sort(dim=-1).values  # [B, H, kept], in position order
        gather = idx[..., None].expand(-1, -1, -1, layer.keys.shape[-1])
        layer.keys = layer.keys.gather(2, gather).contiguous()
        layer.values = layer.values.gather(2, gather).contiguous()
        chosen.append(idx)
    state.kept = chosen
    return chosen


def _stats(model, method: str, state: KVState, tokens: int, kept: int, kv_bytes=None, bits=None) -> KVStats:
    dense = dense_kv_bytes(model, tokens)
    kvb = cache_bytes(state.cache) if kv_bytes is None else kv_bytes
    elt_bits = 8 * kv_geometry(model).bytes_per_elt
    return KVStats(method, tokens, kept, kvb, dense, dense / kvb if kvb else float("inf"), bits or elt_bits)


def _protect(scores: torch.Tensor, first: int = 0, last: int = 0) -> torch.Tensor:
    s = scores.clone()
    if first:
        s[..., :first] = float("inf")
    if last:
        s[..., s.shape[-1] - last :] = float("inf")
    return s


def streaming_llm(model, input_ids: torch.Tensor, budget=0.25, sink: int = 4):
    """StreamingLLM (Xiao et al. 2023): keep ``sink`` first tokens + the most recent ones, drop the middle.

    Args:
        model: a HF Llama-family causal LM.
        input_ids: ``[1, T]`` context.
        budget: tokens kept per layer/head, as a fraction of T (float) or a count (int).
        sink: attention-sink tokens always kept at the start.
    Returns:
        ``(KVState, KVStats)``.
    Example:
        >>> from agentlab.modules import kv
        >>> state, st = kv.streaming_llm(model, ids[:, :256], budget=64, sink=4)
        >>> st.kept_tokens, st.compression_ratio
        (64, 4.0)
    """
    state = prefill(model, input_ids)
    t = state.position
    kept = _budget(t, budget)
    g = kv_geometry(model)
    pos = torch.arange(t, device=_device(model), dtype=torch.float32)
    base = _protect(pos, first=min(sink, kept)).expand(1, g.n_kv_heads, t)  # recency, sinks on top
    _evict(state, [base] * g.n_layers, kept)
    return state, _stats(model, "streaming_llm", state, t, kept)


def _group_reduce(probs: torch.Tensor, n_kv: int) -> torch.Tensor:
    b, hq, k = probs.shape
    return probs.view(b, n_kv, hq // n_kv, k).sum(2)


def h2o(model, input_ids: torch.Tensor, budget=0.25, recent=0.5):
    """Heavy-hitter eviction (H2O, Zhang et al. 2023): keep the tokens with the largest accumulated
    attention (summed over all context queries and the query heads of each KV head) plus recent ones.

    Args:
        model, input_ids: as in ``streaming_llm``.
        budget: tokens kept per layer/head (fraction of T or count).
        recent: share of the budget (float) or count (int) reserved for the most recent tokens.
    Returns:
        ``(KVState, KVStats)``.
    Example:
        >>> from agentlab.modules import kv
        >>> state, st = kv.h2o(model, ids[:, :256], budget=0.25)
    """
    g = kv_geometry(model)
    scores: dict[int, torch.Tensor] = {}

    def observe(module, probs):
        scores[module.layer_idx] = _group_reduce(probs.sum(2), g.n_kv_heads)

    state = prefill(model, input_ids, observer=observe)
    t = state.position
    kept = _budget(t, budget)
    n_recent = _budget(kept, recent) if recent else 0
    n_recent = min(n_recent, kept - 1) if kept > 1 else 0
    layers = [_protect(scores[a.self_attn.layer_idx], last=n_recent) for a in model.model.layers]
    _evict(state, layers, kept)
    return state, _stats(model, "h2o", state, t, kept)


def snapkv(model, input_ids: torch.Tensor, budget=0.25, window: int = 32, kernel: int = 7):
    """SnapKV (Li et al. 2024): score context tokens by the attention of the last ``window`` queries
    (summed over the query heads of each KV head, smoothed by 1-D average pooling of width ``kernel``),
    keep the top ones and always the observation window itself.

    Args:
        model, input_ids: as in ``streaming_llm``.
        budget: tokens kept per layer/head (fraction of T or count), window included.
        window: observation window (last tokens of the context).
        kernel: pooling width (odd).
    Returns:
        ``(KVState, KVStats)``.
    Example:
        >>> from agentlab.modules import kv
        >>> state, st = kv.snapkv(model, ids[:, :256], budget=0.25, window=16)
    """
    g = kv_geometry(model)
    scores: dict[int, torch.Tensor] = {}

    def observe(module, probs):
        w = min(window, probs.shape[2])
        s = _group_reduce(probs[:, :, -w:, :].sum(2), g.n_kv_heads)
        if kernel > 1:
            b, h, k = s.shape
            s = torch.nn.functional.avg_pool1d(s.reshape(b * h, 1, k), kernel, 1, kernel // 2,
                                               count_include_pad=False).reshape(b, h, k)
        scores[module.layer_idx] = s

    state = prefill(model, input_ids, observer=observe)
    t = state.position
    kept = _budget(t, budget)
    w = min(window, kept - 1) if kept > 1 else 0
    layers = [_protect(scores[a.self_attn.layer_idx], last=w) for a in model.model.layers]
    _evict(state, layers, kept)
    return state, _stats(model, "snapkv", state, t, kept)


def key_norm(model, input_ids: torch.Tensor, budget=0.25, sink: int = 0):
    """Key-norm eviction (Devoto et al. 2024): keep the tokens whose cached keys have the smallest L2 norm
    (low-norm keys draw the most attention); no attention weights needed.

    Args:
        model, input_ids: as in ``streaming_llm``.
        budget: tokens kept per layer/head (fraction of T or count).
        sink: first tokens always kept (0 = pure key-norm).
    Returns:
        ``(KVState, KVStats)``.
    Example:
        >>> from agentlab.modules import kv
        >>> state, st = kv.key_norm(model, ids[:, :256], budget=0.5)
    """
    state = prefill(model, input_ids)
    t = state.position
    kept = _budget(t, budget)
    scores = [_protect(-layer.keys.float().norm(dim=-1), first=min(sink, kept)) for layer in state.cache.layers]
    _evict(state, scores, kept)
    return state, _stats(model, "key_norm", state, t, kept)


def quantize_kv(model, input_ids: torch.Tensor, bits: int = 8, group_size: int = 32):
    """KV quantization (int8 / int4): the context cache is packed to ``bits`` per value with a float16 scale
    and zero per ``group_size`` channels of each token, then dequantized for attention (simulated kernels:
    quality is that of the packed cache; KV bytes are counted from the packed tensors).

    Args:
        model, input_ids: as in ``streaming_llm``.
        bits: 8 or 4.
        group_size: channels per scale/zero pair (must divide head_dim).
    Returns:
        ``(KVState, KVStats)`` with ``kept_tokens == tokens`` and ``bits`` set.
    Example:
        >>> from agentlab.modules import kv
        >>> state, st = kv.quantize_kv(model, ids[:, :256], bits=4)
        >>> round(st.compression_ratio, 2)   # float32 model, head_dim 64, group 32
        6.4
    """
    state = prefill(model, input_ids)
    total = 0
    for layer in state.cache.layers:
        for name in ("keys", "values"):
            t = getattr(layer, name)
            qt = quantize_tensor(t, bits, group_size)
            total += qt.nbytes
            setattr(layer, name, dequantize_tensor(qt, t.dtype))
    t = state.position
    return state, _stats(model, f"int{bits}", state, t, t, kv_bytes=total, bits=bits)


def compress(model, input_ids: torch.Tensor, method: str, **kwargs):
    """Dispatch by name: "streaming_llm", "h2o", "snapkv", "key_norm", "quantize" (kwargs go through).

    Returns:
        ``(KVState, KVStats)``.
    Example:
        >>> from agentlab.modules import kv
        >>> state, st = kv.compress(model, ids[:, :256], "snapkv", budget=0.25)
    """
    fns = {"streaming_llm": streaming_llm, "h2o": h2o, "snapkv": snapkv, "key_norm": key_norm,
           "quantize": quantize_kv}
    if method not in fns:
        raise ValueError(f"unknown method {method!r}; one of {sorted(fns)}")
    return fns[method](model, input_ids, **kwargs)


@torch.no_grad()
def score_continuation(model, state: KVState, target_ids: torch.Tensor) -> float:
    """Perplexity of ``target_ids`` ([1, n]) following a (compressed) context held in ``state``.

    The first target token is scored by ``state.last_logits``; the rest by one forward over the targets
    against the cache, with true positions. The cache grows by n - 1 tokens (full precision).
    Returns:
        A float perplexity.
    Example:
        >>> from agentlab.modules import kv
        >>> state, st = kv.snapkv(model, ids[:, :384], budget=0.25)
        >>> ppl = kv.score_continuation(model, state, ids[:, 384:512])
    """
    dev = _device(model)
    tgt = target_ids.to(dev)
    nll = -torch.log_softmax(state.last_logits, -1)[0, tgt[0, 0]].item()
    n = tgt.shape[1]
    if n > 1:
        pos = torch.arange(state.position, state.position + n - 1, device=dev)[None]
        logits = model(input_ids=tgt[:, :-1], past_key_values=state.cache, position_ids=pos, use_cache=True).logits
        lp = torch.log_softmax(logits[0].float(), -1)
        nll += -lp.gather(1, tgt[0, 1:, None]).sum().item()
        state.position += n - 1
        state.last_logits = logits[:, -1].float()
    return math.exp(nll / n)


@torch.no_grad()
def greedy_continue(model, state: KVState, max_new_tokens: int = 32, eos_token_id=None) -> torch.Tensor:
    """Greedy decoding from a (compressed) ``KVState``; new tokens' KV is kept in full.

    Returns:
        ``LongTensor [1, n]`` of the new tokens.
    Example:
        >>> from agentlab.modules import kv
        >>> state, st = kv.streaming_llm(model, ids, budget=128)
        >>> new = kv.greedy_continue(model, state, max_new_tokens=32)
    """
    dev = _device(model)
    out = []
    logits = state.last_logits
    for _ in range(max_new_tokens):
        tok = logits.argmax(-1, keepdim=True)
        out.append(tok)
        if eos_token_id is not None and tok.item() == eos_token_id:
            break
        pos = torch.tensor([[state.position]], device=dev)
        logits = model(input_ids=tok, past_key_values=state.cache, position_ids=pos, use_cache=True).logits[:, -1]
        state.position += 1
        state.last_logits = logits.float()
    return torch.cat(out, dim=1)


@torch.no_grad()
def mask_reference_perplexity(model, context_ids: torch.Tensor, target_ids: torch.Tensor, state: KVState) -> float:
    """Independent check of an eviction: score the targets in ONE pass over context + targets with no
    cache surgery, masking for the target queries exactly the context keys the eviction dropped.

    Reads which tokens were kept from ``state.kept`` (set by every eviction method).
    Returns:
        A float perplexity; equals ``score_continuation`` up to float rounding when the eviction is right.
    Example:
        >>> from agentlab.modules import kv
        >>> state, _ = kv.h2o(model, ctx, budget=0.25)
        >>> ref = kv.mask_reference_perplexity(model, ctx, tgt, state)
        >>> ours = kv.score_continuation(model, state, tgt)
    """
    if state.kept is None:
        raise ValueError("state has no eviction record (quantized or uncompressed cache)")
    dev = _device(model)
    t = context_ids.shape[1]
    attns = [layer.self_attn for layer in model.model.layers]
    for a, idx in zip(attns, state.kept):
        keep = torch.zeros(idx.shape[1], t, dtype=torch.bool, device=dev)
        keep.scatter_(1, idx[0].to(dev), True)
        a.agentlab_key_keep = keep
    ids = torch.cat([context_ids.to(dev), target_ids.to(dev)], dim=1)
    try:
        with _attn.use_impl(model):
            logits = model(input_ids=ids).logits[0].float()
    finally:
        for a in attns:
            del a.agentlab_key_keep
    lp = torch.log_softmax(logits[t - 1 : -1], -1)
    nll = -lp.gather(1, target_ids.to(dev)[0, :, None]).mean().item()
    return math.exp(nll)
