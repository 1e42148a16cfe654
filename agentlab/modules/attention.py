"""Window attention: sliding window (SWA) and multi-scale window attention (MSWA), ours.

Both register one attention function with ``transformers``' ``AttentionInterface`` (name
``"agentlab_window"``) that computes softmax attention with a causal mask and, per query head, a window
``w``: a query at position i sees keys j with ``i - w < j <= i`` (``w`` tokens including itself; the
same convention as HF's ``sliding_window_overlay``). Windows are set per layer and per query head, so
MSWA (Xu et al. 2025: window sizes varying across heads and layers) is the same code with a schedule.
The KV observers of ``kv.py`` (H2O, SnapKV scores) hook into the same function.

In-run reference: ``hf_sliding_window_reference`` builds HF's own sliding-window model (Mistral, the same
architecture as Llama plus ``sliding_window``) over the same weights; perplexities must agree.

KV bytes for a window cache of T tokens: ``sum over layers and KV heads of min(T, w_kvhead) * head_dim * 2
* bytes_per_elt`` where ``w_kvhead`` is the largest window among the query heads sharing that KV head.
The HF cache object here still holds every token (the saving is what a window cache would hold).
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field

import torch

from agentlab.modules.models import kv_geometry

__all__ = [
    "window_mask",
    "sliding_window_attention",
    "multi_scale_window_attention",
    "mswa_windows",
    "full_attention",
    "hf_sliding_window_reference",
    "AttnStats",
]

IMPL_NAME = "agentlab_window"


def window_mask(q_len: int, kv_len: int, windows=None, device=None) -> torch.Tensor:
    """Boolean attention mask (True = may attend) for the last ``q_len`` of ``kv_len`` positions.

    Args:
        q_len: number of queries (the last ``q_len`` positions of the sequence).
        kv_len: number of keys (positions ``0 .. kv_len-1``).
        windows: None for plain causal, an int for one window, or a list of ints (one per head; 0 = full).
    Returns:
        ``BoolTensor`` ``[H, q_len, kv_len]`` (H = 1 when ``windows`` is None or an int).
    Example:
        >>> from agentlab.modules.attention import window_mask
        >>> window_mask(4, 4, [2])[0].int().tolist()
        [[1, 0, 0, 0], [1, 1, 0, 0], [0, 1, 1, 0], [0, 0, 1, 1]]
    """
    q_pos = torch.arange(kv_len - q_len, kv_len, device=device)[:, None]
    k_pos = torch.arange(kv_len, device=device)[None, :]
    causal = (k_pos <= q_pos)[None]
    if windows is None:
        return causal
    if isinstance(windows, int):
        windows = [windows]
    w = torch.as_tensor(windows, device=device).view(-1, 1, 1)
    w = torch.where(w <= 0, torch.full_like(w, kv_len + 1), w)
    return causal & ((q_pos - k_pos)[None] < w)


def _attention(module, query, key, value, attention_mask, scaling, dropout=0.0, **kwargs):
    """The registered attention function: eager softmax attention with causal + per-head window mask."""
    groups = query.shape[1] // key.shape[1]
    if groups > 1:
        key = key.repeat_interleave(groups, dim=1)
        value = value.repeat_interleave(groups, dim=1)
    scores = torch.matmul(query, key.transpose(2, 3)) * scaling
    q_len, kv_len = query.shape[-2], key.shape[-2]
    windows = getattr(module, "agentlab_windows", None)
    allowed = window_mask(q_len, kv_len, windows, device=query.device)
    keep = getattr(module, "agentlab_key_keep", None)  # [H_kv, T_ctx] bool: kv.mask_reference_perplexity
    if keep is not None:
        keep = keep.to(query.device).repeat_interleave(groups, dim=0)
        pad = torch.ones(keep.shape[0], kv_len - keep.shape[1], dtype=torch.bool, device=query.device)
        t_ctx = keep.shape[1]
        context_query = (torch.arange(kv_len - q_len, kv_len, device=query.device) < t_ctx)[None, :, None]
        allowed = allowed & (torch.cat([keep, pad], dim=1)[:, None, :] | context_query)
    if attention_mask is not None:
        if attention_mask.dim() == 2:  # [B, kv] padding mask passed through unchanged
            pad = attention_mask[:, -kv_len:].bool()[:, None, None, :]
            allowed = allowed[None] & pad
        elif attention_mask.dtype == torch.bool:
            allowed = allowed & attention_mask[..., -kv_len:]
        else:
            scores = scores + attention_mask[..., -kv_len:]
    scores = scores.masked_fill(~allowed, torch.finfo(scores.dtype).min)
    probs = torch.softmax(scores, dim=-1, dtype=torch.float32)
    observer = getattr(module, "agentlab_observer", None)
    if observer is not None:
        observer(module, probs)
    out = torch.matmul(probs.to(value.dtype), value)
    return out.transpose(1, 2).contiguous(), None


def _register() -> None:
    from transformers import AttentionInterface

    AttentionInterface.register(IMPL_NAME, _attention)


_register()


@contextlib.contextmanager
def use_impl(model, impl: str = IMPL_NAME):
    """Temporarily switch a model's attention implementation (restored on exit)."""
    old = model.config._attn_implementation
    model.config._attn_implementation = impl
    try:
        yield model
    finally:
        model.config._attn_implementation = old


@dataclass
class AttnStats:
    """What a window-attention change did."""

    method: str  # "swa" or "mswa"
    windows: list = field(default_factory=list)  # per layer, per query head (0 = full)
    mean_window: float = 0.0  # mean over layers and query heads
    seq_len: int = 0  # T used for the byte figures
    kv_bytes: int = 0  # bytes a window cache holds at T tokens (formula in the module doc)
    dense_kv_bytes: int = 0  # n_layers * 2 * n_kv_heads * head_dim * T * bytes_per_elt
    compression_ratio: float = 1.0  # dense_kv_bytes / kv_bytes


def _window_kv_bytes(model, windows, seq_len: int) -> tuple[int, int]:
    g = kv_geometry(model)
    per_group = g.n_heads // g.n_kv_heads
    total = 0
    for layer_w in windows:
        for kvh in range(g.n_kv_heads):
            ws = layer_w[kvh * per_group : (kvh + 1) * per_group]
            w = seq_len if any(x <= 0 for x in ws) else max(ws)
            total += min(seq_len, w) * g.head_dim * 2 * g.bytes_per_elt
    dense = g.n_layers * 2 * g.n_kv_heads * g.head_dim * seq_len * g.bytes_per_elt
    return total, dense


def _apply(model, windows, method: str, seq_len: int):
    layers = model.model.layers
    if len(windows) != len(layers):
        raise ValueError(f"need one window list per layer ({len(layers)}), got {len(windows)}")
    for layer, w in zip(layers, windows):
        layer.self_attn.agentlab_windows = [int(x) for x in w]
    model.config._attn_implementation = IMPL_NAME
    kv_bytes, dense = _window_kv_bytes(model, windows, seq_len)
    flat = [x for w in windows for x in w]
    stats = AttnStats(method, [list(w) for w in windows], sum(flat) / len(flat), seq_len, kv_bytes, dense,
                      dense / kv_bytes if kv_bytes else float("inf"))
    return model, stats


def sliding_window_attention(model, window: int, seq_len: int = 1024):
    """Give every query head of every layer a sliding window of ``window`` tokens (in place).

    Args:
        model: a HF Llama-family causal LM.
        window: tokens each query sees, itself included.
        seq_len: the sequence length T used for the KV-byte figures in the stats.
    Returns:
        ``(model, AttnStats)``; the model now uses the ``agentlab_window`` attention function.
    Example:
        >>> from agentlab.modules import attention
        >>> model, st = attention.sliding_window_attention(model, window=128, seq_len=512)
        >>> st.compression_ratio
        4.0
    """
    g = kv_geometry(model)
    return _apply(model, [[window] * g.n_heads for _ in range(g.n_layers)], "swa", seq_len)


def mswa_windows(n_layers: int, n_heads: int, base_window: int,
                 head_scales=(0.25, 0.5, 1.0, 2.0), layer_scales=(0.5, 1.0, 2.0), normalize: bool = True):
    """The MSWA schedule: window = base * head_scale(head group) * layer_scale(layer group).

    Heads are split into ``len(head_scales)`` contiguous groups and layers (shallow to deep) into
    ``len(layer_scales)`` groups. With ``normalize`` the windows are rescaled so their mean is
    ``base_window`` (the same attention budget as SWA with that window).
    Returns:
        A list (per layer) of lists (per query head) of int windows, each at least 1.
    Example:
        >>> from agentlab.modules.attention import mswa_windows
        >>> mswa_windows(2, 4, 8, head_scales=(0.5, 1.0), layer_scales=(1.0,), normalize=False)
        [[4, 4, 8, 8], [4, 4, 8, 8]]
    """
    raw = []
    for li in range(n_layers):
        ls = layer_scales[li * len(layer_scales) // n_layers]
        raw.append([base_window * ls * head_scales[h * len(head_scales) // n_heads] for h in range(n_heads)])
    if normalize:
        mean = sum(x for row in raw for x in row) / (n_layers * n_heads)
        raw = [[x * base_window / mean for x in row] for row in raw]
    return [[max(1, int(round(x))) for x in row] for row in raw]


def multi_scale_window_attention(model, base_window: int, head_scales=(0.25, 0.5, 1.0, 2.0),
                                 layer_scales=(0.5, 1.0, 2.0), seq_len: int = 1024):
    """Multi-scale window attention (MSWA): windows vary across heads and layers (in place).

    Args:
        model: a HF Llama-family causal LM.
        base_window: the mean window over all heads and layers (see ``mswa_windows``).
        head_scales, layer_scales: the multipliers of head groups and layer groups (shallow to deep).
        seq_len: T for the KV-byte figures.
    Returns:
        ``(model, AttnStats)`` with the per-layer, per-head windows.
    Example:
        >>> from agentlab.modules import attention
        >>> model, st = attention.multi_scale_window_attention(model, base_window=128, seq_len=512)
        >>> round(st.mean_window)
        128
    """
    g = kv_geometry(model)
    windows = mswa_windows(g.n_layers, g.n_heads, base_window, head_scales, layer_scales)
    return _apply(model, windows, "mswa", seq_len)


def full_attention(model, impl: str = "sdpa"):
    """Undo window attention: drop the per-head windows and go back to ``impl`` (sdpa by default).

    Returns:
        The model (changed in place).
    Example:
        >>> from agentlab.modules import attention
        >>> model = attention.full_attention(model)
    """
    for layer in model.model.layers:
        if hasattr(layer.self_attn, "agentlab_windows"):
            del layer.self_attn.agentlab_windows
    model.config._attn_implementation = impl
    return model


def hf_sliding_window_reference(model, window: int):
    """HF's own sliding-window attention over the same weights: a ``MistralForCausalLM`` sharing them.

    Mistral is Llama plus ``config.sliding_window``; HF builds its mask with ``sliding_window_overlay``
    (the same ``w`` tokens-including-self convention), so it is an independent check of ours.
    Returns:
        A ``MistralForCausalLM`` (eval mode) whose parameters are the model's own tensors (no copy).
    Example:
        >>> from agentlab.modules import attention
        >>> ref = attention.hf_sliding_window_reference(model, window=128)
    """
    from transformers import MistralConfig, MistralForCausalLM

    c = model.config
    cfg = MistralConfig(
        vocab_size=c.vocab_size, hidden_size=c.hidden_size, intermediate_size=c.intermediate_size,
        num_hidden_layers=c.num_hidden_layers, num_attention_heads=c.num_attention_heads,
        num_key_value_heads=c.num_key_value_heads, head_dim=kv_geometry(model).head_dim,
        max_position_embeddings=c.max_position_embeddings, rms_norm_eps=c.rms_norm_eps,
        rope_parameters=dict(c.rope_parameters), tie_word_embeddings=c.tie_word_embeddings,
        sliding_window=window, hidden_act=c.hidden_act,
    )
    cfg._attn_implementation = "sdpa"
    with torch.device("meta"):
        ref = MistralForCausalLM(cfg)
    ref.load_state_dict(model.state_dict(), assign=True, strict=False)
    if c.tie_word_embeddings:
        ref.lm_head.weight = ref.model.embed_tokens.weight
    ref.model.rotary_emb = model.model.rotary_emb
    return ref.eval()
