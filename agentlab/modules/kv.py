"""KV-cache compression of a prefilled context: one shared core, one registered hook per method.

Built-in methods (each one file in ``agentlab/modules/kv_methods/``, listed below with their parameters):
StreamingLLM, H2O, SnapKV, key-norm eviction and int8/int4 quantization; installed plugins add more
(``method_names()``). All ours (kvpress does not install beside transformers 5.23: kvpress 0.5.5 pins
transformers<5.3), in kvpress's design: ``compress`` prefills the context with full attention, asks the
method's ``score`` hook for per-token scores of each layer (``ScoreContext`` in, ``[B, H_kv, T]`` out), keeps
the top-``budget`` tokens of each layer and KV head, and counts the bytes; then score or generate the
continuation against the compressed cache. Evicted caches keep the true RoPE positions: keys are cached
after rotation and new tokens get ``position_ids`` from ``KVState.position``.

Eviction keeps the same number of tokens in every layer and KV head (which tokens may differ per head):
KV bytes = n_layers * 2 * n_kv_heads * head_dim * kept_tokens * bytes_per_elt. Quantization stores each
group of ``group_size`` channels of one token as ``bits``-bit codes plus a float16 scale and zero:
bytes = n_layers * 2 * n_kv_heads * tokens * (head_dim * bits / 8 + (head_dim / group_size) * 4).
The packing itself is in ``kv_quant``; the low-rank latent (MLA-style) method is in ``kv_latent``.
A new method is one file: ``@kv_method("name") def score(ctx: ScoreContext, my_param=1) -> Tensor``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from agentlab.modules import attention as _attn
from agentlab.modules.kv_quant import dequantize_tensor, quantize_tensor  # noqa: F401 - re-exported (kv_quant docs)
from agentlab.modules.methods import KV_METHODS, get_kv_method, kv_method, kv_method_names  # noqa: F401 - kv.kv_method
from agentlab.modules.metrics import cache_bytes, dense_kv_bytes
from agentlab.modules.models import KVGeometry, kv_geometry

__all__ = [
    "KVState",
    "KVStats",
    "ScoreContext",
    "Transformed",
    "prefill",
    "compress",
    "method_names",
    "score_continuation",
    "greedy_continue",
    "mask_reference_perplexity",
]
# every registered method is also ``kv.<name>(model, input_ids, ...)`` (module ``__getattr__`` below);
# ``kv.kv_method`` is the decorator a new method (or a plugin) registers with.


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
    return _prefill(model, input_ids, observer, _new_cache())


def _new_cache():
    from transformers import DynamicCache

    return DynamicCache()


@torch.no_grad()
def _prefill(model, input_ids: torch.Tensor, observer, cache) -> KVState:
    ids = input_ids.to(_device(model))
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


@dataclass
class ScoreContext:
    """What a KV method's hook sees for one layer (kvpress's ``score(module, hidden, keys, values, attentions)``)."""

    layer: int  # layer index
    keys: torch.Tensor  # [B, H_kv, T, head_dim] cached keys of the context (after RoPE)
    values: torch.Tensor  # [B, H_kv, T, head_dim] cached values
    attentions: torch.Tensor | None  # [B, H_q, T, T] prefill attention probabilities (methods with attention=True)
    tokens: int  # T, context tokens prefilled
    budget: int  # tokens the core keeps per layer and KV head (== tokens for a transform)
    geometry: KVGeometry  # n_layers, n_kv_heads, n_heads, head_dim, bytes_per_elt
    model: object  # the model being compressed

    def protect(self, scores: torch.Tensor, first: int = 0, last: int = 0) -> torch.Tensor:
        """A copy of ``scores`` with the ``first`` and ``last`` tokens set to +inf (always kept: sinks, windows)."""
        return _protect(scores, first, last)

    def share(self, part: float | int) -> int:
        """Tokens of the budget that ``part`` names: a fraction of it (float) or a count (int), 1..budget."""
        return _budget(self.budget, part)

    def group_reduce(self, probs: torch.Tensor) -> torch.Tensor:
        """Sum ``[B, H_q, T]`` over the query heads that share each KV head: ``[B, H_kv, T]``."""
        return _group_reduce(probs, self.geometry.n_kv_heads)


@dataclass
class Transformed:
    """What a ``kind="transform"`` KV method returns for one layer."""

    keys: torch.Tensor  # the layer's new keys (same shape; e.g. dequantized codes)
    values: torch.Tensor  # the layer's new values
    nbytes: int  # bytes this layer's compressed K and V hold
    bits: int | None = None  # bits per cached element, when not the model dtype's


def _group_reduce(probs: torch.Tensor, n_kv: int) -> torch.Tensor:
    b, hq, k = probs.shape
    return probs.view(b, n_kv, hq // n_kv, k).sum(2)


@torch.no_grad()
def compress(model, input_ids: torch.Tensor, method: str, budget: float | int | None = None, **params):
    """Compress the context's cache with a registered KV method (``method_names()``; plugins included).

    The shared core of every method: prefill the context (observing attention when the method needs it),
    call the method's ``score`` hook per layer and keep the top-``budget`` tokens of each layer and KV head
    (in position order), or call its ``transform`` hook per layer; then count the bytes.
    Args:
        model: a HF Llama-family causal LM.
        input_ids: ``[1, T]`` context.
        method: a KV method name, e.g. "streaming_llm", "h2o", "snapkv", "key_norm", "quantize".
        budget: score methods: tokens kept per layer/head, a fraction of T (float, default 0.25) or a count
            (int). Transforms take none.
        **params: the method's own parameters (see each method below).
    Returns:
        ``(KVState, KVStats)``.
    Example:
        >>> from agentlab.modules import kv
        >>> state, st = kv.compress(model, ids[:, :256], "snapkv", budget=0.25, window=16)
        >>> st.kept_tokens, st.method
        (64, 'snapkv')
    """
    m = get_kv_method(method)
    params = m.bind(params)
    if m.kind == "transform":
        if budget is not None:
            raise TypeError(f"KV method {method!r} transforms the whole cache: it takes no budget")
        return _transform(model, input_ids, m, params)
    g = kv_geometry(model)
    t = input_ids.shape[1]
    kept = _budget(t, 0.25 if budget is None else budget)
    scores: dict[int, torch.Tensor] = {}
    cache = _new_cache()

    def score(layer: int, keys, values, probs=None) -> None:
        ctx = ScoreContext(layer, keys, values, probs, t, kept, g, model)
        s = m.fn(ctx, **params)
        scores[layer] = s if s.shape == (keys.shape[0], keys.shape[1], t) else s.expand(keys.shape[0], keys.shape[1], t)

    def observe(module, probs) -> None:
        layer = cache.layers[module.layer_idx]
        score(module.layer_idx, layer.keys, layer.values, probs)

    state = _prefill(model, input_ids, observe if m.attention else None, cache)
    if not m.attention:
        for i, layer in enumerate(state.cache.layers):
            score(i, layer.keys, layer.values)
    _evict(state, [scores[a.self_attn.layer_idx] for a in model.model.layers], kept)
    return state, _stats(model, m.stats_label(params), state, t, kept)


def _transform(model, input_ids: torch.Tensor, m, params: dict):
    state = prefill(model, input_ids)
    g = kv_geometry(model)
    t = state.position
    total, bits = 0, None
    for i, layer in enumerate(state.cache.layers):
        out = m.fn(ScoreContext(i, layer.keys, layer.values, None, t, t, g, model), **params)
        layer.keys, layer.values = out.keys, out.values
        total += out.nbytes
        bits = out.bits if out.bits is not None else bits
    return state, _stats(model, m.stats_label(params), state, t, t, kv_bytes=total, bits=bits)


def method_names() -> list[str]:
    """Every registered KV method: built-ins (``agentlab/modules/kv_methods/``) and installed plugins.

    Returns:
        A list of names for ``compress(..., method=name)``; each is also callable as ``kv.<name>(...)``.
    Example:
        >>> from agentlab.modules import kv
        >>> "snapkv" in kv.method_names()
        True
    """
    return kv_method_names()


_ALIASES = {"quantize_kv": "quantize"}  # the name it had before it was a registered method


def __getattr__(name: str):
    """``kv.snapkv(model, ids, budget=0.25)``: every registered method is callable by name."""
    target = _ALIASES.get(name, name)
    if not name.startswith("_") and target in KV_METHODS:
        return get_kv_method(target)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


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
