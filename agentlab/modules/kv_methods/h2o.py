"""Heavy-hitter oracle (H2O, Zhang et al. 2023) as a KV score."""

from __future__ import annotations

import torch

from agentlab.modules.kv import ScoreContext
from agentlab.modules.methods import kv_method


@kv_method("h2o", attention=True)
def h2o(ctx: ScoreContext, recent=0.5) -> torch.Tensor:
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
    kept = ctx.budget
    n_recent = ctx.share(recent) if recent else 0
    n_recent = min(n_recent, kept - 1) if kept > 1 else 0
    return ctx.protect(ctx.group_reduce(ctx.attentions.sum(2)), last=n_recent)
