"""Sliding-window attention (SWA) as a window schedule."""

from __future__ import annotations

from agentlab.modules.family_methods import AttentionContext, attention_method


@attention_method("swa")
def swa(ctx: AttentionContext) -> list[list[int]]:
    """Sliding-window attention: every query head of every layer sees the last ``window`` tokens (itself
    included), as ``attention.sliding_window_attention``.

    Args:
        ctx: the model's geometry and the swept ``ctx.window``.
    Returns:
        ``[[window] * n_heads] * n_layers``.
    Example:
        >>> {"family": "attention", "methods": [{"name": "swa", "params": {"window": [64, 128]}}]}
    """
    return [[ctx.window] * ctx.n_heads for _ in range(ctx.n_layers)]
