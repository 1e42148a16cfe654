"""Key-norm eviction (Devoto et al. 2024) as a KV score."""

from __future__ import annotations

import torch

from agentlab.modules.kv import ScoreContext
from agentlab.modules.methods import kv_method


@kv_method("key_norm")
def key_norm(ctx: ScoreContext, sink: int = 0) -> torch.Tensor:
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
    return ctx.protect(-ctx.keys.float().norm(dim=-1), first=min(sink, ctx.budget))
