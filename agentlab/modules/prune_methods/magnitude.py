"""Magnitude pruning as a pruning score."""

from __future__ import annotations

import torch

from agentlab.modules.family_methods import PruneContext, prune_method


@prune_method("magnitude")
def magnitude(ctx: PruneContext) -> torch.Tensor:
    """Unstructured magnitude pruning: keep the largest |W_ij| of each output row (no calibration data used).

    Args:
        ctx: the Linear being pruned (``ctx.weight``).
    Returns:
        ``|W|``, shaped like the weight (higher = keep).
    Example:
        >>> {"family": "prune", "methods": [{"name": "magnitude", "params": {"sparsity": 0.5}}]}
    """
    return ctx.weight.abs().float()
