"""Self-speculative early exit (LayerSkip-style) as a drafter."""

from __future__ import annotations

from agentlab.modules.family_methods import DraftContext, draft_method
from agentlab.modules.speculative import _DraftModel, layer_skip_draft


@draft_method("early_exit")
def early_exit(ctx: DraftContext, k: int, layers: int = 0) -> list[int]:
    """Self-speculative decoding by early exit (LayerSkip-style): the target's own first ``layers`` decoder layers,
    then its final norm and head, draft ``k`` tokens greedily (weights shared, a draft KV cache of its own kept in
    ``ctx.state`` across steps), as ``speculative.self_speculative_generate``.

    Args:
        ctx: the target model and the sequence so far.
        k: draft tokens per verification.
        layers: decoder layers the draft runs (0 = the first half).
    Returns:
        ``k`` token ids.
    Example:
        >>> {"family": "speculative", "methods": [{"name": "early_exit", "params": {"k": 4, "layers": 12}}]}
    """
    drafter = ctx.state.get("early_exit")
    if drafter is None:
        n = layers if layers > 0 else max(1, len(ctx.model.model.layers) // 2)
        drafter = ctx.state["early_exit"] = _DraftModel(layer_skip_draft(ctx.model, n), k, False, 1.0, None)
    drafter.k = k
    return drafter(ctx.seq, ctx.hidden, k)[0]
