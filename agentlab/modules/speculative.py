"""Speculative decoding, ours, with HF's assisted generation as the in-run reference.

One verification loop serves every drafter: the target scores ``[pending] + drafts`` in one pass, keeps
the longest agreeing prefix and adds one token of its own. Greedy: a draft is kept iff it equals the
target's argmax, so the output equals plain greedy decoding token for token. Sampling (Leviathan et al.
2023 / Chen et al. 2023): draft x ~ q is kept with probability min(1, p(x)/q(x)), else the token is
resampled from norm(max(0, p - q)); the output is distributed exactly as sampling from the target.

Drafters: a separate draft model (``speculative_generate``), the prompt's own n-grams
(``prompt_lookup_generate``), the target's first layers with its head (``self_speculative_generate``,
LayerSkip-style early exit, weights shared), and trained heads (``draft_heads.heads_generate``).
Reference: ``hf_generate`` runs ``model.generate(assistant_model=..., prompt_lookup_num_tokens=...,
assistant_early_exit=...)`` and counts the target's full passes the same way.

Numbers (``SpecStats``): the first new token comes from the prefill; every later pass is a verification.
tau (acceptance length) = (new_tokens - 1) / verify_passes, i.e. accepted drafts + 1 per pass;
acceptance_rate = accepted drafts / proposed drafts; tokens_per_s = new_tokens / wall seconds (prefill
included).
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import torch
from torch import nn

__all__ = [
    "SpecStats",
    "greedy_generate",
    "speculative_generate",
    "prompt_lookup_generate",
    "layer_skip_draft",
    "self_speculative_generate",
    "hf_generate",
    "residual_distribution",
]


@dataclass
class SpecStats:
    """What a decoding run did."""

    method: str
    new_tokens: int  # tokens generated
    verify_passes: int  # target forward passes after the prefill
    drafted: int  # draft tokens proposed
    accepted: int  # draft tokens accepted
    tau: float  # (new_tokens - 1) / verify_passes: tokens per target pass (1.0 = no speed-up possible)
    acceptance_rate: float  # accepted / drafted (0 when nothing was drafted)
    seconds: float  # wall time, prefill included
    tokens_per_s: float  # new_tokens / seconds
    lossless: bool | None = None  # set by callers who compared with plain greedy output


def _dev(model):
    return next(model.parameters()).device


def _crop(cache, length: int) -> None:
    for layer in cache.layers:
        if getattr(layer, "keys", None) is not None and layer.keys.numel():
            layer.keys = layer.keys[:, :, :length]
            layer.values = layer.values[:, :, :length]


def residual_distribution(p: torch.Tensor, q: torch.Tensor) -> torch.Tensor:
    """norm(max(0, p - q)): what a rejected draft token is resampled from (falls back to p if p == q).

    Returns:
        A probability vector like ``p``.
    Example:
        >>> import torch
        >>> from agentlab.modules.speculative import residual_distribution
        >>> residual_distribution(torch.tensor([0.5, 0.5]), torch.tensor([1.0, 0.0])).tolist()
        [0.0, 1.0]
    """
    r = (p - q).clamp(min=0)
    s = r.sum()
    return r / s if s > 0 else p


def _probs(logits: torch.Tensor, temperature: float) -> torch.Tensor:
    return torch.softmax(logits.float() / max(temperature, 1e-6), dim=-1)


class _Target:
    """The target side of the loop: cache, pending token, last hidden state."""

    def __init__(self, model):
        from transformers import DynamicCache

        self.model, self.cache = model, DynamicCache()

    def forward(self, ids: list[int] | torch.Tensor):
        ids = torch.as_tensor(ids, device=_dev(self.model)).view(1, -1)
        h = self.model.model(input_ids=ids, past_key_values=self.cache, use_cache=True).last_hidden_state
        return self.model.lm_head(h)[0].float(), h[0]


@torch.no_grad()
def _loop(target, input_ids, max_new_tokens, propose, method, do_sample=False, temperature=1.0, seed=0,
          eos_token_id=None):
    gen = torch.Generator(device="cpu").manual_seed(seed)

    def pick(p):
        return int(torch.multinomial(p.cpu(), 1, generator=gen)) if do_sample else int(p.argmax())

    start = time.perf_counter()
    tgt = _Target(target)
    seq = input_ids[0].tolist()
    n_prompt = len(seq)
    logits, hidden = tgt.forward(seq)
    seq.append(pick(_probs(logits[-1], temperature)) if do_sample else int(logits[-1].argmax()))
    h_last = hidden[-1]
    passes = drafted = accepted = 0
    while len(seq) - n_prompt < max_new_tokens and not (eos_token_id is not None and seq[-1] == eos_token_id):
        budget = max_new_tokens - (len(seq) - n_prompt)
        drafts, q = propose(seq, h_last, budget)
        drafts = drafts[:budget]
        cached = len(seq) - 1
        logits, hidden = tgt.forward([seq[-1]] + drafts)
        passes += 1
        drafted += len(drafts)
        n_acc = 0
        bonus = None
        for i, d in enumerate(drafts):
            if do_sample:
                p = _probs(logits[i], temperature)
                qi = q[i].to(p.device)
                if torch.rand((), generator=gen).item() < min(1.0, (p[d] / qi[d].clamp(min=1e-20)).item()):
                    n_acc += 1
                    continue
                bonus = pick(residual_distribution(p, qi))
            else:
                if d == int(logits[i].argmax()):
                    n_acc += 1
                    continue
                bonus = int(logits[i].argmax())
            break
        if bonus is None:
            bonus = pick(_probs(logits[n_acc], temperature)) if do_sample else int(logits[n_acc].argmax())
        accepted += n_acc
        seq.extend(drafts[:n_acc] + [bonus])
        _crop(tgt.cache, cached + 1 + n_acc)
        h_last = hidden[n_acc]
    seconds = time.perf_counter() - start
    out = seq[: n_prompt + max_new_tokens]
    if eos_token_id is not None and eos_token_id in out[n_prompt:]:
        out = out[: n_prompt + out[n_prompt:].index(eos_token_id) + 1]
    new = len(out) - n_prompt
    stats = SpecStats(method, new, passes, drafted, accepted, (new - 1) / passes if passes else 1.0,
                      accepted / drafted if drafted else 0.0, seconds, new / seconds if seconds else 0.0)
    return torch.tensor([out], device=input_ids.device), stats


def greedy_generate(model, input_ids: torch.Tensor, max_new_tokens: int = 32, eos_token_id=None):
    """Plain greedy decoding with the same loop and timing as the speculative methods (the baseline).

    Returns:
        ``(ids [1, prompt + new], SpecStats)`` with tau == 1.
    Example:
        >>> from agentlab.modules import speculative
        >>> ids, st = speculative.greedy_generate(model, prompt_ids, max_new_tokens=32)
    """
    return _loop(model, input_ids, max_new_tokens, lambda seq, h, n: ([], None), "greedy",
                 eos_token_id=eos_token_id)


class _DraftModel:
    def __init__(self, model, k, do_sample, temperature, gen):
        from transformers import DynamicCache

        self.model, self.k, self.do_sample, self.t, self.gen = model, k, do_sample, temperature, gen
        self.cache, self.tokens = DynamicCache(), []

    @torch.no_grad()
    def __call__(self, seq, _h, budget):
        m = 0
        while m < min(len(self.tokens), len(seq) - 1) and self.tokens[m] == seq[m]:
            m += 1
        _crop(self.cache, m)
        self.tokens = self.tokens[:m]
        feed = seq[m:]
        drafts, qs = [], []
        for _ in range(min(self.k, budget)):
            ids = torch.tensor([feed], device=_dev(self.model))
            logits = self.model(input_ids=ids, past_key_values=self.cache, use_cache=True).logits[0, -1]
            self.tokens.extend(feed)
            q = _probs(logits, self.t)
            d = int(torch.multinomial(q.cpu(), 1, generator=self.gen)) if self.do_sample else int(logits.argmax())
            drafts.append(d)
            qs.append(q)
            feed = [d]
        return drafts, (torch.stack(qs) if qs else None)


def speculative_generate(target, draft, input_ids: torch.Tensor, max_new_tokens: int = 32, k: int = 4,
                         do_sample: bool = False, temperature: float = 1.0, seed: int = 0, eos_token_id=None):
    """Draft-model speculative decoding: ``draft`` proposes ``k`` tokens, ``target`` verifies them in one pass.

    Args:
        target, draft: HF causal LMs sharing a tokenizer (the draft may be a pruned copy of the target).
        input_ids: ``[1, T]`` prompt.
        max_new_tokens: tokens to generate.
        k: draft tokens per verification.
        do_sample: False = greedy (identical to plain greedy); True = sampling, distribution-preserving.
        temperature: sampling temperature of both models.
        seed: RNG seed (sampling).
    Returns:
        ``(ids [1, T + new], SpecStats)``.
    Example:
        >>> from agentlab.modules import speculative
        >>> ids, st = speculative.speculative_generate(model, draft, prompt_ids, max_new_tokens=32, k=4)
        >>> st.tau, st.acceptance_rate
    """
    gen = torch.Generator(device="cpu").manual_seed(seed + 1)
    drafter = _DraftModel(draft, k, do_sample, temperature, gen)
    return _loop(target, input_ids, max_new_tokens, drafter, "draft_model" + ("_sample" if do_sample else ""),
                 do_sample, temperature, seed, eos_token_id)


def _lookup(seq: list[int], ngram: int, k: int) -> list[int]:
    """Continuation of the earliest earlier occurrence of the last n tokens (n = ngram .. 1), as HF does."""
    for n in range(ngram, 0, -1):
        if len(seq) <= n:
            continue
        tail = seq[-n:]
        for start in range(0, len(seq) - n):
            if seq[start : start + n] == tail:
                return seq[start + n : min(start + n + k, len(seq))]
    return []


def prompt_lookup_generate(model, input_ids: torch.Tensor, max_new_tokens: int = 32, ngram: int = 3, k: int = 10,
                           eos_token_id=None):
    """Prompt-lookup decoding (Saxena 2023): draft the tokens that followed the earliest earlier occurrence
    of the last ``ngram`` (down to 1) tokens in prompt + output (HF's rule); greedy, identical to plain greedy.

    Args:
        model: a HF causal LM.
        input_ids: ``[1, T]`` prompt.
        max_new_tokens: tokens to generate.
        ngram: longest n-gram matched.
        k: most draft tokens per verification.
    Returns:
        ``(ids, SpecStats)``.
    Example:
        >>> from agentlab.modules import speculative
        >>> ids, st = speculative.prompt_lookup_generate(model, prompt_ids, max_new_tokens=32)
    """
    return _loop(model, input_ids, max_new_tokens, lambda seq, h, n: (_lookup(seq, ngram, min(k, n)), None),
                 "prompt_lookup", eos_token_id=eos_token_id)


def layer_skip_draft(model, keep_layers):
    """A draft that runs only ``keep_layers`` of ``model`` (then its final norm and head), sharing its weights.

    Args:
        model: a HF Llama-family causal LM.
        keep_layers: an int N (the first N layers: early exit) or a list of layer indices (layer 0 must be in it).
    Returns:
        A causal LM object usable as a draft (no weights copied; its own cache).
    Example:
        >>> from agentlab.modules import speculative
        >>> draft = speculative.layer_skip_draft(model, 10)
    """
    import copy

    idx = list(range(keep_layers)) if isinstance(keep_layers, int) else sorted(keep_layers)
    if not idx or idx[0] != 0:
        raise ValueError("keep_layers must include layer 0")
    inner = copy.copy(model.model)
    inner._modules = dict(model.model._modules)
    inner.layers = nn.ModuleList([model.model.layers[i] for i in idx])
    inner.config = copy.copy(model.config)
    inner.config.num_hidden_layers = len(idx)
    draft = copy.copy(model)
    draft._modules = dict(model._modules)
    draft.model = inner
    draft.config = inner.config
    return draft


def self_speculative_generate(model, input_ids: torch.Tensor, max_new_tokens: int = 32, keep_layers=None,
                              k: int = 4, eos_token_id=None):
    """Self-speculative decoding: the model's own first layers (early exit) or a layer subset draft for it.

    Args:
        model: a HF Llama-family causal LM.
        input_ids: ``[1, T]`` prompt.
        keep_layers: int N (first N layers) or list of indices; default: the first half.
        k: draft tokens per verification.
    Returns:
        ``(ids, SpecStats)``; greedy, identical to plain greedy.
    Example:
        >>> from agentlab.modules import speculative
        >>> ids, st = speculative.self_speculative_generate(model, prompt_ids, keep_layers=12, k=4)
    """
    keep = keep_layers if keep_layers is not None else max(1, len(model.model.layers) // 2)
    ids, st = speculative_generate(model, layer_skip_draft(model, keep), input_ids, max_new_tokens, k,
                                   eos_token_id=eos_token_id)
    st.method = "self_speculative"
    return ids, st


@torch.no_grad()
def hf_generate(model, input_ids: torch.Tensor, max_new_tokens: int = 32, method: str = "hf_greedy", **generate_kwargs):
    """Reference: HF ``model.generate`` (greedy) with any assisted-generation kwargs, measured like ours.

    Counts the target's full passes with a hook on its last decoder layer (early-exit drafts never reach
    it), so tau = (new_tokens - 1) / (passes - 1) is comparable with ours.
    Args:
        generate_kwargs: e.g. ``assistant_model=draft``, ``prompt_lookup_num_tokens=10``,
            ``assistant_early_exit=12``, ``num_assistant_tokens=4``.
    Returns:
        ``(ids, SpecStats)`` (drafted/accepted are 0: HF does not report them).
    Example:
        >>> from agentlab.modules import speculative
        >>> ids, st = speculative.hf_generate(model, prompt_ids, 32, prompt_lookup_num_tokens=10)
    """
    calls = [0]
    hook = model.model.layers[-1].register_forward_hook(lambda *a: calls.__setitem__(0, calls[0] + 1))
    try:
        start = time.perf_counter()
        out = model.generate(input_ids.to(_dev(model)), max_new_tokens=max_new_tokens, min_new_tokens=max_new_tokens,
                             do_sample=False, attention_mask=torch.ones_like(input_ids), **generate_kwargs)
        seconds = time.perf_counter() - start
    finally:
        hook.remove()
    new = out.shape[1] - input_ids.shape[1]
    passes = max(calls[0] - 1, 1)
    return out, SpecStats(method, new, passes, 0, 0, (new - 1) / passes, 0.0, seconds, new / seconds)
