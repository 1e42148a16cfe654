"""StreamingLLM (Xiao et al. 2023) as a KV score."""

from __future__ import annotations

import torch

from agentlab.modules.kv import ScoreContext
from agentlab.modules.methods import kv_method


@kv_method("streaming_llm")
def streaming_llm(ctx: ScoreContext, sink: int = 4) -> torch.Tensor:
    """StreamingLLM (Xiao et al. 2023): keep ``sink`` first tokens + the most recent ones, drop the middle.

    Args:
        model: a HF Llama-family causal LM.
        input_ids: ``[1, T]`` context.
        budget: tokens kept per layer/head, as a fraction of T (float) or a count (int).
        sink: attention-sink tokens always kept at the start.
    Returns:
        ``(KVState, KVStats)``.
    Example:
        >>> from agentlab.modules import kv
        >>> state, st = kv.streaming_llm(model, ids[:, :256], budget=64, sink=4)
        >>> st.kept_tokens, st.compression_ratio
        (64, 4.0)
    """
    pos = torch.arange(ctx.tokens, device=ctx.keys.device, dtype=torch.float32)
    return ctx.protect(pos, first=min(sink, ctx.budget))  # recency, sinks on top (same for every head)
