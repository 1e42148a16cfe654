"""Wanda (Sun et al. 2023) as a pruning score."""

from __future__ import annotations

import torch

from agentlab.modules.family_methods import PruneContext, prune_method


@prune_method("wanda")
def wanda(ctx: PruneContext) -> torch.Tensor:
    """Wanda (Sun et al. 2023): keep the weights with the largest |W_ij| * ||X_j||_2 of each output row, X the
    Linear's inputs on the calibration tokens (the same masks as ``prune.wanda_prune``).

    Args:
        ctx: the Linear being pruned (``ctx.weight``, ``ctx.input_norm``).
    Returns:
        ``|W| * ||X||[None, :]``, shaped like the weight (higher = keep).
    Example:
        >>> {"family": "prune", "methods": [{"name": "wanda", "params": {"sparsity": [0.3, 0.5, 0.7]}}]}
    """
    return ctx.weight.abs().float() * ctx.input_norm.float()[None, :]
