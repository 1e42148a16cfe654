"""Prompt-lookup decoding (Saxena 2023) as a drafter."""

from __future__ import annotations

from agentlab.modules.family_methods import DraftContext, draft_method
from agentlab.modules.speculative import _lookup


@draft_method("prompt_lookup")
def prompt_lookup(ctx: DraftContext, k: int, ngram: int = 3) -> list[int]:
    """Prompt-lookup decoding (Saxena 2023): draft the tokens that followed the earliest earlier occurrence of
    the last ``ngram`` (down to 1) tokens in prompt + output (HF's rule, as ``speculative.prompt_lookup_generate``).

    Args:
        ctx: the sequence so far (``ctx.seq``).
        k: most draft tokens.
        ngram: longest n-gram matched.
    Returns:
        Up to ``k`` token ids (none when the tail never occurred before).
    Example:
        >>> {"family": "speculative", "methods": [{"name": "prompt_lookup", "params": {"k": 8, "ngram": 2}}]}
    """
    return _lookup(ctx.seq, ngram, k)
