"""SnapKV (Li et al. 2024) as a KV score."""

from __future__ import annotations

import torch

from agentlab.modules.kv import ScoreContext
from agentlab.modules.methods import kv_method


@kv_method("snapkv", attention=True)
def snapkv(ctx: ScoreContext, window: int = 32, kernel: int = 7) -> torch.Tensor:
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
    probs = ctx.attentions
    w = min(window, probs.shape[2])
    s = ctx.group_reduce(probs[:, :, -w:, :].sum(2))
    if kernel > 1:
        b, h, k = s.shape
        s = torch.nn.functional.avg_pool1d(s.reshape(b * h, 1, k), kernel, 1, kernel // 2,
                                           count_include_pad=False).reshape(b, h, k)
    kept = ctx.budget
    return ctx.protect(s, last=min(window, kept - 1) if kept > 1 else 0)
