"""Integer packing of KV tensors (int8 / int4, asymmetric min/max per group), ours; used by ``kv.quantize_kv``.

Bytes of a packed tensor with N values: N * bits / 8 (codes; two int4 codes per byte) + (N / group_size) * 4
(a float16 scale and a float16 zero per group).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

__all__ = ["QuantizedTensor", "quantize_tensor", "dequantize_tensor"]


@dataclass
class QuantizedTensor:
    """Packed asymmetric integer codes of a tensor, ``group_size`` consecutive last-dim values per group."""

    packed: torch.Tensor  # uint8 codes (two 4-bit codes per byte when bits == 4)
    scale: torch.Tensor  # float16, one per group
    zero: torch.Tensor  # float16 minimum, one per group
    bits: int
    shape: tuple
    group_size: int

    @property
    def nbytes(self) -> int:
        return sum(t.numel() * t.element_size() for t in (self.packed, self.scale, self.zero))


def quantize_tensor(x: torch.Tensor, bits: int = 8, group_size: int = 32) -> QuantizedTensor:
    """Quantize ``x`` to ``bits`` (8 or 4) per group of ``group_size`` values of the last dim (min/max, asymmetric).

    Returns:
        A ``QuantizedTensor``; ``.nbytes`` = numel * bits / 8 + (numel / group_size) * 4.
    Example:
        >>> import torch
        >>> from agentlab.modules.kv import quantize_tensor
        >>> quantize_tensor(torch.randn(2, 64), bits=4, group_size=32).nbytes
        80
    """
    if bits not in (4, 8):
        raise ValueError("bits must be 8 or 4")
    if x.shape[-1] % group_size:
        raise ValueError(f"last dim {x.shape[-1]} is not a multiple of group_size {group_size}")
    g = x.detach().float().reshape(-1, group_size)
    lo, hi = g.min(-1, keepdim=True).values, g.max(-1, keepdim=True).values
    scale = ((hi - lo) / (2**bits - 1)).clamp(min=1e-8).half()
    zero = lo.half()
    q = ((g - zero.float()) / scale.float()).round().clamp(0, 2**bits - 1).to(torch.uint8)
    if bits == 4:
        q = q[:, 0::2] | (q[:, 1::2] << 4)
    return QuantizedTensor(q.contiguous(), scale, zero, bits, tuple(x.shape), group_size)


def dequantize_tensor(qt: QuantizedTensor, dtype=torch.float32) -> torch.Tensor:
    """Inverse of ``quantize_tensor`` (up to rounding: error <= scale / 2 per value).

    Returns:
        A tensor of ``qt.shape`` and ``dtype``.
    Example:
        >>> from agentlab.modules.kv import quantize_tensor, dequantize_tensor
        >>> y = dequantize_tensor(quantize_tensor(x, bits=8))
    """
    q = qt.packed
    if qt.bits == 4:
        q = torch.stack([q & 0x0F, q >> 4], dim=-1).reshape(q.shape[0], -1)
    x = q.float() * qt.scale.float() + qt.zero.float()
    return x.reshape(qt.shape).to(dtype)
