"""KV quantization (int8 / int4) as a cache transform."""

from __future__ import annotations

from agentlab.modules.kv import ScoreContext, Transformed
from agentlab.modules.kv_quant import dequantize_tensor, quantize_tensor
from agentlab.modules.methods import kv_method


@kv_method("quantize", kind="transform", label="int{bits}")
def quantize(ctx: ScoreContext, bits: int = 8, group_size: int = 32) -> Transformed:
    """KV quantization (int8 / int4): the context cache is packed to ``bits`` per value with a float16 scale
    and zero per ``group_size`` channels of each token, then dequantized for attention (simulated kernels:
    quality is that of the packed cache; KV bytes are counted from the packed tensors). Also ``kv.quantize_kv``.

    Args:
        model, input_ids: as in ``streaming_llm`` (no budget: every token is kept).
        bits: 8 or 4.
        group_size: channels per scale/zero pair (must divide head_dim).
    Returns:
        ``(KVState, KVStats)`` with ``kept_tokens == tokens``, ``bits`` set and ``method`` "int8"/"int4".
    Example:
        >>> from agentlab.modules import kv
        >>> state, st = kv.quantize(model, ids[:, :256], bits=4)
        >>> round(st.compression_ratio, 2)   # float32 model, head_dim 64, group 32
        6.4
    """
    qk = quantize_tensor(ctx.keys, bits, group_size)
    qv = quantize_tensor(ctx.values, bits, group_size)
    return Transformed(dequantize_tensor(qk, ctx.keys.dtype), dequantize_tensor(qv, ctx.values.dtype),
                       qk.nbytes + qv.nbytes, bits)
