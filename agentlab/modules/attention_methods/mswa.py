"""Multi-scale window attention (MSWA, Xu et al. 2025) as a window schedule."""

from __future__ import annotations

from agentlab.modules.attention import mswa_windows
from agentlab.modules.family_methods import AttentionContext, attention_method


@attention_method("mswa")
def mswa(ctx: AttentionContext, head_scales: tuple = (0.25, 0.5, 1.0, 2.0), layer_scales: tuple = (0.5, 1.0, 2.0),
         normalize: bool = True) -> list[list[int]]:
    """Multi-scale window attention (MSWA, Xu et al. 2025): window = window * head_scale(head group) *
    layer_scale(layer group), rescaled to mean ``window`` (the attention budget of SWA), as
    ``attention.mswa_windows``.

    Args:
        ctx: the model's geometry and the swept ``ctx.window`` (the mean window).
        head_scales: multipliers of contiguous query-head groups.
        layer_scales: multipliers of contiguous layer groups, shallow to deep.
        normalize: rescale so the mean window is ``window``.
    Returns:
        Per layer, per query head, the window (each at least 1).
    Example:
        >>> {"family": "attention", "methods": [{"name": "mswa", "params": {"window": 128,
        ...                                                                 "layer_scales": [1.0, 2.0]}}]}
    """
    return mswa_windows(ctx.n_layers, ctx.n_heads, ctx.window, tuple(head_scales), tuple(layer_scales), normalize)
