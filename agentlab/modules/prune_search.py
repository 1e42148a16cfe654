"""Global sparsity allocation search (Týr-the-Pruner style, simplified), ours.

Goal: a per-layer sparsity s_l for each decoder layer, meeting a global target (parameter-weighted mean
of s_l == target) while minimising the calibration loss. Týr-the-Pruner (Li et al. 2025) builds a
supernet of per-layer candidates and searches the allocation with evolution, coarse to fine. Here:
1. candidates: each layer pruned by Wanda at target + each offset (e.g. -0.2..+0.2);
2. sensitivity: calibration loss with only that layer pruned at that candidate (L x C forwards);
3. allocation: exchange search on the additive sensitivity model: move one step of sparsity from the
   layer where it costs least to the layer where removing it saves most, while that lowers the sum
   (layers of equal size, so the global target holds exactly after every move);
4. refinement: a few evolutionary moves (one step between two random layers) kept only if the real
   joint calibration loss drops; the uniform allocation is kept if the search does not beat it.
Report: per-layer sparsity and the calibration losses of uniform and searched allocations.
"""

from __future__ import annotations

import random

import torch

from agentlab.modules.models import count_params
from agentlab.modules.prune import _finish, _layer_nonzero, _linears, _mask_rows, wanda_scores

__all__ = ["calib_loss", "global_sparsity_search", "apply_layer_sparsity"]


@torch.no_grad()
def calib_loss(model, calib_ids: torch.Tensor) -> float:
    """Mean next-token cross-entropy (nats) of ``model`` on ``calib_ids`` in one pass.

    Returns:
        A float.
    Example:
        >>> from agentlab.modules.prune_search import calib_loss
        >>> calib_loss(model, calib_ids[:, :256])
    """
    dev = next(model.parameters()).device
    ids = calib_ids.to(dev)
    logits = model(input_ids=ids).logits[0, :-1].float()
    return torch.nn.functional.cross_entropy(logits, ids[0, 1:]).item()


@torch.no_grad()
def apply_layer_sparsity(model, scores: dict, sparsities: list[float], dense: dict | None = None) -> None:
    """Set each decoder layer's linears to Wanda masks at ``sparsities[l]`` (restoring dense weights first
    when ``dense`` = {linear: original weight} is given).

    Returns:
        None (in place).
    Example:
        >>> from agentlab.modules.prune_search import apply_layer_sparsity
        >>> apply_layer_sparsity(model, scores, [0.5] * len(model.model.layers))
    """
    for layer, s in zip(model.model.layers, sparsities):
        for _, lin in _linears(layer):
            if dense is not None:
                lin.weight.copy_(dense[lin])
            if s > 0:
                lin.weight.mul_(_mask_rows(scores[lin], s).to(lin.weight.dtype))


def _layer_sizes(model) -> list[int]:
    return [sum(lin.weight.numel() for _, lin in _linears(layer)) for layer in model.model.layers]


def _sensitivities(model, scores: dict, dense: dict, cands: list[float], loss_ids: torch.Tensor,
                   loss_dense: float) -> tuple[list[list[float]], int]:
    """Loss increase with only layer l pruned at candidate c, as (sens[l][c], forwards used)."""
    n = len(model.model.layers)
    forwards = 0
    sens = [[0.0] * len(cands) for _ in range(n)]
    for li in range(n):
        for ci, s in enumerate(cands):
            alloc = [0.0] * n
            alloc[li] = s
            apply_layer_sparsity(model, scores, alloc, dense)
            sens[li][ci] = calib_loss(model, loss_ids) - loss_dense
            forwards += 1
    return sens, forwards


def _best_exchange(sens: list[list[float]], pick: list[int], n_cands: int) -> tuple[int, int] | None:
    """The (up, down) layer pair whose one-step exchange lowers the summed sensitivity most, or None."""
    n = len(pick)
    best, move = 0.0, None
    for a in range(n):
        if pick[a] + 1 >= n_cands:
            continue
        up = sens[a][pick[a] + 1] - sens[a][pick[a]]
        for b in range(n):
            if b == a or pick[b] == 0:
                continue
            gain = up + sens[b][pick[b] - 1] - sens[b][pick[b]]
            if gain < best - 1e-12:
                best, move = gain, (a, b)
    return move


def _exchange_search(sens: list[list[float]], pick: list[int], n_cands: int) -> list[int]:
    """Apply best exchanges to ``pick`` (in place) until none lowers the additive loss; return it."""
    while True:
        move = _best_exchange(sens, pick, n_cands)
        if move is None:
            break
        pick[move[0]] += 1
        pick[move[1]] -= 1
    return pick


def _refine(joint, pick: list[int], loss_pick: float, n_cands: int, refine_steps: int,
            seed: int) -> tuple[list[int], float, int]:
    """Random one-step moves kept if the joint loss drops: (pick, its loss, forwards used)."""
    n = len(pick)
    forwards = 0
    rng = random.Random(seed)
    for _ in range(refine_steps):
        a, b = rng.sample(range(n), 2)
        if pick[a] + 1 >= n_cands or pick[b] == 0:
            continue
        trial = list(pick)
        trial[a] += 1
        trial[b] -= 1
        loss_trial = joint(trial)
        forwards += 1
        if loss_trial < loss_pick:
            pick, loss_pick = trial, loss_trial
    return pick, loss_pick, forwards


@torch.no_grad()
def global_sparsity_search(model, calib_ids: torch.Tensor, target: float = 0.5,
                           offsets=(-0.2, -0.1, 0.0, 0.1, 0.2), refine_steps: int = 4,
                           loss_tokens: int = 256, seed: int = 0):
    """Choose per-layer (Wanda) sparsities meeting a global ``target`` while minimising calibration loss.

    Args:
        model: a HF Llama-family causal LM (changed in place).
        calib_ids: ``[1, T]`` calibration tokens (Wanda norms use all; losses use the first ``loss_tokens``).
        target: global sparsity of the decoder-layer linears.
        offsets: candidate sparsities per layer are target + offset (clipped to [0, 0.95]).
        refine_steps: evolutionary moves checked with the real joint loss.
        seed: RNG seed of the refinement.
    Returns:
        ``(model, PruneStats)``; ``notes`` has ``loss_dense``, ``loss_uniform``, ``loss_searched``,
        ``allocation`` (per-layer sparsity of the linears) and ``forwards`` (calibration passes used).
    Example:
        >>> from agentlab.modules import prune_search
        >>> model, st = prune_search.global_sparsity_search(model, calib_ids, target=0.5)
        >>> st.notes["loss_searched"] <= st.notes["loss_uniform"]
        True
    """
    layers = model.model.layers
    before, lb = count_params(model), _layer_nonzero(layers)
    sizes = _layer_sizes(model)
    if len(set(sizes)) != 1:
        raise ValueError("global_sparsity_search needs decoder layers of equal size (run it before structured pruning)")
    n = len(layers)
    loss_ids = calib_ids[:, :loss_tokens]
    scores = wanda_scores(model, calib_ids)
    dense = {lin: lin.weight.detach().clone() for lin in scores}
    cands = sorted({round(min(0.95, max(0.0, target + o)), 4) for o in offsets})
    loss_dense = calib_loss(model, loss_ids)
    sens, passes = _sensitivities(model, scores, dense, cands, loss_ids, loss_dense)
    forwards = 1 + passes
    apply_layer_sparsity(model, scores, [0.0] * n, dense)
    # start uniform at the candidate nearest the target, then exchange steps (equal sizes keep the mean)
    start = min(range(len(cands)), key=lambda c: abs(cands[c] - target))
    pick = _exchange_search(sens, [start] * n, len(cands))

    def joint(p):
        apply_layer_sparsity(model, scores, [cands[c] for c in p], dense)
        return calib_loss(model, loss_ids)

    uniform = [start] * n
    loss_uniform = joint(uniform)
    loss_pick = joint(pick)
    forwards += 2
    pick, loss_pick, tried = _refine(joint, pick, loss_pick, len(cands), refine_steps, seed)
    forwards += tried
    if loss_uniform <= loss_pick:
        pick, loss_pick = uniform, loss_uniform
    alloc = [cands[c] for c in pick]
    apply_layer_sparsity(model, scores, alloc, dense)
    notes = {"target": target, "candidates": cands, "loss_dense": loss_dense, "loss_uniform": loss_uniform,
             "loss_searched": loss_pick, "allocation": alloc, "forwards": forwards}
    return model, _finish(model, "global_search", before, lb, _layer_nonzero(layers), notes=notes)


