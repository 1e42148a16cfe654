"""Pruning a HF Llama-family model, ours: magnitude and Wanda (unstructured, for reference), MLP-channel and
attention-head pruning with activation-aware saliency, and block removal by Block Influence.

Structured methods really shrink the matrices (new ``nn.Linear`` modules), so ``params_after`` drops and
the model runs faster without sparse kernels. Unstructured methods zero weights in place (shapes kept;
``nonzero_after`` drops). The global per-layer sparsity search is in ``prune_search``. The benchmark
compares MLP-channel pruning with torch-pruning (``torch_pruning``) at the same ratio when it is installed.

Saliency (activation-aware, from one calibration pass on the dense model):
- Wanda: |W_ij| * ||X_j||_2, pruned per output row (Sun et al. 2023).
- MLP channel j: ||a_j||_2 * ||W_down[:, j]||_2, a = act(gate(x)) * up(x) (the input of down_proj).
- Attention head h: ||o_h||_2 * ||W_o[:, h]||_F, o_h the head's output (the input slice of o_proj).
- Block Influence of layer l (ShortGPT, Men et al. 2024): 1 - mean_t cos(h_in_t, h_out_t).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn

from agentlab.modules.models import count_params

__all__ = [
    "PruneStats",
    "magnitude_prune",
    "wanda_prune",
    "prune_mlp_channels",
    "prune_mlp_channels_tp",
    "prune_attention_heads",
    "remove_layers",
    "block_influence",
    "input_norms",
]


@dataclass
class PruneStats:
    """What a pruning did."""

    method: str
    params_before: int  # parameter count before (tied weights once)
    params_after: int  # parameter count after (structured pruning lowers it)
    nonzero_after: int  # non-zero parameters after (unstructured pruning lowers it)
    params_removed: int  # params_before - nonzero_after
    sparsity: float  # params_removed / params_before (whole model, embeddings included)
    per_layer_sparsity: list = field(default_factory=list)  # per original decoder layer: removed share of its params
    removed_layers: list = field(default_factory=list)  # original indices of removed decoder layers
    notes: dict = field(default_factory=dict)  # method-specific numbers (e.g. search losses)


def _layer_nonzero(layers) -> list[int]:
    return [sum(int(torch.count_nonzero(p)) for p in layer.parameters()) for layer in layers]


def _finish(model, method, before, layer_before, layer_after, removed=(), notes=None) -> PruneStats:
    nz = count_params(model, nonzero=True)
    per = [1.0 - a / b if b else 0.0 for a, b in zip(layer_after, layer_before)]
    return PruneStats(method, before, count_params(model), nz, before - nz, (before - nz) / before, per,
                      list(removed), notes or {})


def _linears(layer) -> list[tuple[str, nn.Linear]]:
    return [(n, m) for n, m in layer.named_modules() if isinstance(m, nn.Linear)]


@torch.no_grad()
def _run(model, calib_ids, chunk=512):
    dev = next(model.parameters()).device
    for s in range(0, calib_ids.shape[1], chunk):
        model(input_ids=calib_ids[:, s : s + chunk].to(dev))


@torch.no_grad()
def input_norms(model, calib_ids: torch.Tensor, modules) -> dict:
    """Sum of squares of each input feature of each module over the calibration tokens.

    Args:
        model: the model to run.
        calib_ids: ``[1, T]`` calibration tokens.
        modules: iterable of ``nn.Module`` (usually ``nn.Linear``) to observe.
    Returns:
        ``{module: FloatTensor [in_features]}``; ``.sqrt()`` gives the per-feature L2 norms.
    Example:
        >>> from agentlab.modules import prune
        >>> sq = prune.input_norms(model, calib_ids, [model.model.layers[0].mlp.down_proj])
    """
    sums: dict = {}
    hooks = []
    for m in modules:
        def hook(mod, args):
            x = args[0].detach().float().reshape(-1, args[0].shape[-1])
            sums[mod] = sums.get(mod, 0) + (x * x).sum(0)
        hooks.append(m.register_forward_pre_hook(hook))
    try:
        _run(model, calib_ids)
    finally:
        for h in hooks:
            h.remove()
    return sums


def _mask_rows(score: torch.Tensor, sparsity: float) -> torch.Tensor:
    """True where kept: the lowest ``sparsity`` share of each row is dropped."""
    k = int(score.shape[1] * sparsity)
    if k <= 0:
        return torch.ones_like(score, dtype=torch.bool)
    drop = score.topk(k, dim=1, largest=False).indices
    keep = torch.ones_like(score, dtype=torch.bool)
    keep.scatter_(1, drop, False)
    return keep


@torch.no_grad()
def magnitude_prune(model, sparsity: float = 0.5):
    """Unstructured magnitude pruning: zero the smallest-|w| share of each decoder-layer linear's rows.

    Args:
        model: a HF Llama-family causal LM (changed in place).
        sparsity: share of weights zeroed in every linear of every decoder layer.
    Returns:
        ``(model, PruneStats)``.
    Example:
        >>> from agentlab.modules import prune
        >>> model, st = prune.magnitude_prune(model, sparsity=0.5)
        >>> round(st.per_layer_sparsity[0], 2)
        0.5
    """
    layers = model.model.layers
    before, lb = count_params(model), _layer_nonzero(layers)
    for layer in layers:
        for _, lin in _linears(layer):
            lin.weight.mul_(_mask_rows(lin.weight.abs(), sparsity))
    return model, _finish(model, "magnitude", before, lb, _layer_nonzero(layers))


def wanda_scores(model, calib_ids: torch.Tensor) -> dict:
    """Wanda saliency |W_ij| * ||X_j|| for every decoder-layer linear (one dense calibration pass).

    Returns:
        ``{linear: FloatTensor like its weight}``.
    Example:
        >>> from agentlab.modules.prune import wanda_scores
        >>> scores = wanda_scores(model, calib_ids)
    """
    lins = [lin for layer in model.model.layers for _, lin in _linears(layer)]
    sq = input_norms(model, calib_ids, lins)
    return {lin: lin.weight.detach().abs().float() * sq[lin].sqrt()[None, :] for lin in lins}


@torch.no_grad()
def wanda_prune(model, calib_ids: torch.Tensor, sparsity: float = 0.5, scores: dict | None = None):
    """Wanda (Sun et al. 2023): zero weights with the lowest |W_ij| * ||X_j||, per output row.

    Args:
        model: a HF Llama-family causal LM (changed in place).
        calib_ids: ``[1, T]`` calibration tokens.
        sparsity: share of each row zeroed, in every decoder-layer linear.
        scores: precomputed ``wanda_scores`` (optional).
    Returns:
        ``(model, PruneStats)``.
    Example:
        >>> from agentlab.modules import prune
        >>> model, st = prune.wanda_prune(model, calib_ids, sparsity=0.5)
    """
    layers = model.model.layers
    before, lb = count_params(model), _layer_nonzero(layers)
    scores = scores or wanda_scores(model, calib_ids)
    for lin, s in scores.items():
        lin.weight.mul_(_mask_rows(s, sparsity).to(lin.weight.dtype))
    return model, _finish(model, "wanda", before, lb, _layer_nonzero(layers))


def _new_linear(old: nn.Linear, rows=None, cols=None) -> nn.Linear:
    w = old.weight.data
    if rows is not None:
        w = w[rows]
    if cols is not None:
        w = w[:, cols]
    lin = nn.Linear(w.shape[1], w.shape[0], bias=old.bias is not None, device=w.device, dtype=w.dtype)
    lin.weight.data = w.clone()
    if old.bias is not None:
        lin.bias.data = (old.bias.data[rows] if rows is not None else old.bias.data).clone()
    return lin


@torch.no_grad()
def prune_mlp_channels(model, calib_ids: torch.Tensor, ratio: float = 0.25):
    """Remove the ``ratio`` share of MLP intermediate channels with the lowest ||a_j|| * ||W_down[:, j]||
    in every layer (gate/up rows and down columns are sliced away).

    Args:
        model: a HF Llama-family causal LM (changed in place).
        calib_ids: ``[1, T]`` calibration tokens.
        ratio: share of intermediate channels removed per layer.
    Returns:
        ``(model, PruneStats)``.
    Example:
        >>> from agentlab.modules import prune
        >>> model, st = prune.prune_mlp_channels(model, calib_ids, ratio=0.25)
        >>> model.model.layers[0].mlp.down_proj.in_features   # SmolLM2: 1536 * 0.75
        1152
    """
    layers = model.model.layers
    before, lb = count_params(model), _layer_nonzero(layers)
    sq = input_norms(model, calib_ids, [layer.mlp.down_proj for layer in layers])
    for layer in layers:
        mlp = layer.mlp
        sal = sq[mlp.down_proj].sqrt() * mlp.down_proj.weight.float().norm(dim=0)
        n = sal.numel()
        keep = sal.topk(n - int(n * ratio)).indices.sort().values
        mlp.gate_proj = _new_linear(mlp.gate_proj, rows=keep)
        mlp.up_proj = _new_linear(mlp.up_proj, rows=keep)
        mlp.down_proj = _new_linear(mlp.down_proj, cols=keep)
        if hasattr(mlp, "intermediate_size"):
            mlp.intermediate_size = keep.numel()
    return model, _finish(model, "mlp_channels", before, lb, _layer_nonzero(layers), notes={"ratio": ratio})


def prune_mlp_channels_tp(model, calib_ids: torch.Tensor, ratio: float = 0.25):
    """Reference: MLP-channel pruning by torch-pruning (its DependencyGraph finds the coupled gate/up rows
    and down columns; its ``GroupMagnitudeImportance(p=2)`` ranks channels by weight norm, not activations).

    Args:
        model: a HF Llama-family causal LM (changed in place).
        calib_ids: ``[1, T]`` tokens (only a short slice is used to trace the graph).
        ratio: share of intermediate channels removed per layer.
    Returns:
        ``(model, PruneStats)``. Raises ImportError when ``torch-pruning`` is not installed.
    Example:
        >>> from agentlab.modules import prune
        >>> model, st = prune.prune_mlp_channels_tp(model, calib_ids, ratio=0.25)
    """
    try:
        import torch_pruning as tp
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ImportError("torch-pruning is not installed: pip install torch-pruning==1.6.1") from exc
    import warnings

    layers = model.model.layers
    before, lb = count_params(model), _layer_nonzero(layers)
    dev = next(model.parameters()).device
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        graph = tp.DependencyGraph().build_dependency(
            model, example_inputs={"input_ids": calib_ids[:, :16].to(dev)}, output_transform=lambda o: o.logits)
    imp = tp.importance.GroupMagnitudeImportance(p=2)
    for layer in layers:
        gate = layer.mlp.gate_proj
        n = gate.out_features
        group = graph.get_pruning_group(gate, tp.prune_linear_out_channels, idxs=list(range(n)))
        drop = imp(group).argsort()[: int(n * ratio)].tolist()
        graph.get_pruning_group(gate, tp.prune_linear_out_channels, idxs=drop).prune()
    model.zero_grad(set_to_none=True)
    return model, _finish(model, "mlp_channels_torch_pruning", before, lb, _layer_nonzero(layers),
                          notes={"ratio": ratio})


@torch.no_grad()
def prune_attention_heads(model, calib_ids: torch.Tensor, ratio: float = 0.25, unit: str = "query"):
    """Remove attention heads with the lowest ||o_h|| * ||W_o[:, h]||_F in every layer.

    Args:
        model: a HF Llama-family causal LM (changed in place).
        calib_ids: ``[1, T]`` calibration tokens.
        ratio: share of heads removed per layer.
        unit: "query" removes the same number of query heads from every KV group (GQA stays uniform,
            KV cache unchanged); "kv_group" removes whole KV heads with their query heads (KV cache shrinks).
    Returns:
        ``(model, PruneStats)``; ``notes`` holds heads kept per layer.
    Example:
        >>> from agentlab.modules import prune
        >>> model, st = prune.prune_attention_heads(model, calib_ids, ratio=1/3)
        >>> model.model.layers[0].self_attn.q_proj.out_features // 64   # SmolLM2: 9 -> 6 query heads
        6
    """
    if unit not in ("query", "kv_group"):
        raise ValueError("unit must be 'query' or 'kv_group'")
    layers = model.model.layers
    before, lb = count_params(model), _layer_nonzero(layers)
    sq = input_norms(model, calib_ids, [layer.self_attn.o_proj for layer in layers])
    kept_heads = []
    for layer in layers:
        a = layer.self_attn
        d = a.head_dim
        n_q, n_kv = a.q_proj.out_features // d, a.k_proj.out_features // d
        groups = n_q // n_kv
        act = sq[a.o_proj].view(n_q, d).sum(1).sqrt()
        wn = a.o_proj.weight.float().view(-1, n_q, d).pow(2).sum((0, 2)).sqrt()
        sal = (act * wn).view(n_kv, groups)
        if unit == "query":
            per = groups - int(round(groups * ratio))
            per = max(1, per)
            keep_q = [g * groups + int(i) for g in range(n_kv) for i in sal[g].topk(per).indices.sort().values]
            keep_kv = list(range(n_kv))
        else:
            n_keep = max(1, n_kv - int(round(n_kv * ratio)))
            keep_kv = sal.sum(1).topk(n_keep).indices.sort().values.tolist()
            keep_q = [g * groups + i for g in keep_kv for i in range(groups)]
        qi = torch.tensor([h * d + j for h in keep_q for j in range(d)], device=a.q_proj.weight.device)
        ki = torch.tensor([h * d + j for h in keep_kv for j in range(d)], device=a.q_proj.weight.device)
        a.q_proj = _new_linear(a.q_proj, rows=qi)
        a.o_proj = _new_linear(a.o_proj, cols=qi)
        if unit == "kv_group":
            a.k_proj = _new_linear(a.k_proj, rows=ki)
            a.v_proj = _new_linear(a.v_proj, rows=ki)
        a.num_key_value_groups = len(keep_q) // len(keep_kv)
        kept_heads.append(len(keep_q))
    return model, _finish(model, f"heads_{unit}", before, lb, _layer_nonzero(layers),
                          notes={"ratio": ratio, "query_heads_kept": kept_heads})


@torch.no_grad()
def block_influence(model, calib_ids: torch.Tensor) -> list[float]:
    """Block Influence per decoder layer: 1 - mean cosine(input hidden state, output hidden state).

    Returns:
        A list of floats, one per layer (low = the layer changes little = cheap to remove).
    Example:
        >>> from agentlab.modules import prune
        >>> bi = prune.block_influence(model, calib_ids)
    """
    sims: dict[int, list] = {}
    hooks = []
    for i, layer in enumerate(model.model.layers):
        def hook(mod, args, kwargs, out, i=i):
            x = args[0] if args else kwargs["hidden_states"]
            y = out[0] if isinstance(out, tuple) else out
            cos = torch.nn.functional.cosine_similarity(x.float(), y.float(), dim=-1).flatten()
            sims.setdefault(i, []).append(cos)
        hooks.append(layer.register_forward_hook(hook, with_kwargs=True))
    try:
        _run(model, calib_ids)
    finally:
        for h in hooks:
            h.remove()
    return [1.0 - torch.cat(sims[i]).mean().item() for i in range(len(model.model.layers))]


@torch.no_grad()
def remove_layers(model, calib_ids: torch.Tensor | None = None, n_remove: int = 1, layers: list[int] | None = None):
    """Remove whole decoder layers: the ``n_remove`` with the lowest Block Influence, or the given ``layers``.

    Args:
        model: a HF Llama-family causal LM (changed in place).
        calib_ids: ``[1, T]`` calibration tokens (needed unless ``layers`` is given).
        n_remove: how many layers to drop by Block Influence.
        layers: explicit original indices to drop instead.
    Returns:
        ``(model, PruneStats)`` with ``removed_layers`` and ``notes['block_influence']``.
    Example:
        >>> from agentlab.modules import prune
        >>> model, st = prune.remove_layers(model, calib_ids, n_remove=6)
        >>> model.config.num_hidden_layers   # SmolLM2: 30 - 6
        24
    """
    old = model.model.layers
    before, lb = count_params(model), _layer_nonzero(old)
    notes = {}
    if layers is None:
        bi = block_influence(model, calib_ids)
        notes["block_influence"] = bi
        layers = sorted(range(len(old)), key=lambda i: bi[i])[:n_remove]
    drop = set(layers)
    kept = [layer for i, layer in enumerate(old) if i not in drop]
    for new_idx, layer in enumerate(kept):
        layer.self_attn.layer_idx = new_idx
        if hasattr(layer, "layer_idx"):
            layer.layer_idx = new_idx
    model.model.layers = nn.ModuleList(kept)
    model.config.num_hidden_layers = len(kept)
    if getattr(model.config, "layer_types", None):
        model.config.layer_types = [t for i, t in enumerate(model.config.layer_types) if i not in drop]
    after = [0 if i in drop else n for i, n in enumerate(lb)]
    return model, _finish(model, "remove_layers", before, lb, after, removed=sorted(drop), notes=notes)
