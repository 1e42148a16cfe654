"""Low-rank latent KV (MLA-style, after MHA2MLA / X-EcoMLA), ours.

Activation-aware PCA of the K and V projections: on calibration text we collect the input covariance
C = sum x x^T of each layer's k_proj/v_proj, form the output covariance W C W^T, and keep its top-r
eigenvectors U (the directions holding the most key/value energy on real activations). Each projection
W (d_kv x d) becomes up(down(x)) with down = U^T W (r x d) and up = U (d_kv x r): a token's K (or V) is
then fully described by an r-dimensional latent, which is what an MLA cache stores.

KV bytes of the latent cache for T tokens: n_layers * (rank_k + rank_v) * T * bytes_per_elt, against
n_layers * 2 * n_kv_heads * head_dim * T * bytes_per_elt dense. This reference implementation computes
attention from the reconstructed K/V (the HF cache object holds them materialised); the quality is that
of the latent cache exactly, the byte figure is what a latent cache holds. Keys are compressed before
RoPE (as in MHA2MLA's low-rank part; we do not keep a separate uncompressed RoPE slice).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn

from agentlab.modules.models import count_params, kv_geometry

__all__ = ["low_rank_kv", "latent_kv_bytes", "LatentKVStats"]


@dataclass
class LatentKVStats:
    """What the low-rank KV conversion did."""

    rank_k: int  # latent size of keys per token per layer
    rank_v: int  # latent size of values per token per layer
    kv_bytes_per_token: int  # n_layers * (rank_k + rank_v) * bytes_per_elt
    dense_kv_bytes_per_token: int  # n_layers * 2 * n_kv_heads * head_dim * bytes_per_elt
    compression_ratio: float  # dense / latent
    energy_lost: list = field(default_factory=list)  # per layer, (K, V) share of output variance dropped
    params_before: int = 0
    params_after: int = 0


def latent_kv_bytes(stats: LatentKVStats, tokens: int) -> int:
    """Bytes a latent cache holds for ``tokens`` tokens (batch 1): ``stats.kv_bytes_per_token * tokens``.

    Returns:
        An int.
    Example:
        >>> from agentlab.modules.kv_latent import latent_kv_bytes
        >>> latent_kv_bytes(stats, tokens=512)
    """
    return stats.kv_bytes_per_token * tokens


def _factor(linear: nn.Linear, cov_in: torch.Tensor, rank: int):
    w = linear.weight.detach().double()
    cov_out = w @ cov_in @ w.T
    evals, evecs = torch.linalg.eigh(cov_out)
    order = evals.argsort(descending=True)
    evals, evecs = evals[order], evecs[:, order]
    u = evecs[:, :rank]
    lost = (evals[rank:].clamp(min=0).sum() / evals.clamp(min=0).sum().clamp(min=1e-30)).item()
    down = nn.Linear(w.shape[1], rank, bias=False)
    up = nn.Linear(rank, w.shape[0], bias=linear.bias is not None)
    dtype, dev = linear.weight.dtype, linear.weight.device
    down.weight.data = (u.T @ w).to(dtype=dtype, device=dev)
    up.weight.data = u.to(dtype=dtype, device=dev)
    if linear.bias is not None:
        up.bias.data = linear.bias.data.clone()
    return nn.Sequential(down, up), lost


@torch.no_grad()
def low_rank_kv(model, calib_ids: torch.Tensor, rank: int = 64, rank_v: int | None = None, chunk: int = 512):
    """Convert every layer's K and V projections to rank-``rank`` latents by activation-aware PCA (in place).

    Args:
        model: a HF Llama-family causal LM.
        calib_ids: ``[1, T]`` calibration tokens (keep them apart from the evaluation text).
        rank: latent size for keys (at most n_kv_heads * head_dim).
        rank_v: latent size for values (defaults to ``rank``).
        chunk: calibration tokens per forward.
    Returns:
        ``(model, LatentKVStats)``.
    Example:
        >>> from agentlab.modules import kv_latent
        >>> model, st = kv_latent.low_rank_kv(model, calib_ids, rank=96)
        >>> st.compression_ratio   # SmolLM2: 2*3*64 / (96+96)
        2.0
    """
    rank_v = rank if rank_v is None else rank_v
    g = kv_geometry(model)
    d_kv = g.n_kv_heads * g.head_dim
    if not (0 < rank <= d_kv and 0 < rank_v <= d_kv):
        raise ValueError(f"ranks must be in 1..{d_kv}")
    params_before = count_params(model)
    attns = [layer.self_attn for layer in model.model.layers]
    covs = [None] * len(attns)
    hooks = []
    for i, a in enumerate(attns):
        def hook(_mod, args, i=i):
            x = args[0].detach().reshape(-1, args[0].shape[-1]).double()
            c = x.T @ x
            covs[i] = c if covs[i] is None else covs[i] + c
        hooks.append(a.k_proj.register_forward_pre_hook(hook))
    dev = next(model.parameters()).device
    try:
        for s in range(0, calib_ids.shape[1], chunk):
            model(input_ids=calib_ids[:, s : s + chunk].to(dev))
    finally:
        for h in hooks:
            h.remove()
    lost = []
    for a, c in zip(attns, covs):
        a.k_proj, lk = _factor(a.k_proj, c, rank)
        a.v_proj, lv = _factor(a.v_proj, c, rank_v)
        lost.append((lk, lv))
    per_tok = g.n_layers * (rank + rank_v) * g.bytes_per_elt
    dense = g.n_layers * 2 * d_kv * g.bytes_per_elt
    return model, LatentKVStats(rank, rank_v, per_tok, dense, dense / per_tok, lost, params_before, count_params(model))
