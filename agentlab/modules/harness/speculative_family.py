"""The ``speculative`` family of the evaluation harness: drafters (``@draft_method``) verified greedily.

A method proposes up to ``k`` draft tokens per step (``family_methods.DraftContext`` in); the toolkit's
verification loop (``speculative._loop``, the one every drafter of ``speculative`` uses) scores
``[pending] + drafts`` in one target pass, keeps the longest prefix equal to the target's argmax and adds one
token of its own, so the output is plain greedy decoding token for token (``lossless`` checks it against the
greedy output of ``prepare``). The reference ``greedy`` is plain greedy decoding through the same loop and timing.

Items: seeded prompts of ``context_tokens`` tokens of the split; each generates ``target_tokens`` new tokens (no
stop at EOS). Metrics per prompt (``speculative.SpecStats``): ``tokens_per_s`` (prefill included), ``tau`` = (new
tokens - 1) / verification passes, ``accept_rate`` = accepted / drafted (0 when nothing was drafted) and
``lossless`` (1.0 when the output equals plain greedy).
"""

from __future__ import annotations

import torch

from agentlab.modules import speculative
from agentlab.modules.family_methods import DraftContext, get_method, method_names, spec_check, spec_params
from agentlab.modules.harness.family import Family, Items, MetricInfo
from agentlab.modules.harness.prune_family import draw_windows

__api__ = False


def draft_generate(model, prompt: torch.Tensor, method: str, k: int, max_new_tokens: int, **params):
    """Greedy speculative decoding of ``prompt [1, T]`` with the registered drafter: ``(ids, SpecStats)``."""
    m = get_method("speculative", method)
    vocab = model.get_output_embeddings().out_features
    state: dict = {}
    n_prompt = prompt.shape[1]

    def propose(seq, hidden, budget):
        n = min(k, budget)
        ctx = DraftContext(model, seq, n_prompt, hidden, state)
        drafts = [int(t) for t in m.call(ctx, n, params)][:n]
        if any(not 0 <= d < vocab for d in drafts):
            raise ValueError(f"draft method {method!r} proposed token ids outside [0, {vocab}): {drafts}")
        return drafts, None

    return speculative._loop(model, prompt, max_new_tokens, propose, method)


class SpeculativeFamily(Family):
    """Speculative decoding: a ``@draft_method`` proposes up to ``k`` tokens, the target verifies greedily."""

    name = "speculative"
    knob = "k"
    knob_default = 4
    sweep = (2, 4, 8)
    reference = "greedy"
    primary = "tokens_per_s"
    metrics = {
        "tokens_per_s": MetricInfo("higher", "tokens/s", "new tokens / wall seconds of the generation, prefill "
                                   "included"),
        "tau": MetricInfo("higher", "", "(new tokens - 1) / target verification passes (1.0 for greedy)"),
        "accept_rate": MetricInfo("higher", "", "accepted / proposed draft tokens (0 when nothing was drafted)"),
        "lossless": MetricInfo("higher", "", "1.0 when the output equals plain greedy decoding token for token"),
    }
    context_tokens = 64
    target_tokens = 32

    def method_names(self) -> list[str]:
        return [self.reference, *(n for n in method_names(self.name) if n != self.reference)]

    def method_params(self, method: str) -> dict:
        return spec_params(self, method)

    @staticmethod
    def check_knob(value) -> int:
        if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 64:
            raise ValueError(f"k must be an int in [1, 64] (draft tokens per target pass), got {value!r}")
        return value

    def check(self, method: str, params: dict, where: str) -> dict:
        return spec_check(self, method, params, where)

    def prepare(self, model, tokens, calib, spec, seed: int) -> Items:
        prompts = draw_windows(tokens, int(spec.context_tokens), int(spec.items), seed, "speculative")
        n_new = int(spec.target_tokens)
        dev = next(model.parameters()).device
        speculative.greedy_generate(model, prompts[0].to(dev), min(n_new, 4))  # warm-up: first-call costs untimed
        greedy = [speculative.greedy_generate(model, p.to(dev), n_new)[0][0].tolist() for p in prompts]
        return Items(seed, prompts, {"target_tokens": n_new, "greedy": greedy})

    def evaluate(self, model, items: Items, method: str, params: dict) -> dict[str, list[float]]:
        bound = self.check(method, params, "params")
        own = {k: v for k, v in bound.items() if k != self.knob}
        n_new = items.extra["target_tokens"]
        dev = next(model.parameters()).device
        out: dict[str, list[float]] = {m: [] for m in self.metrics}
        for prompt, plain in zip(items.items, items.extra["greedy"]):
            if method == self.reference:
                ids, st = speculative.greedy_generate(model, prompt.to(dev), n_new)
            else:
                ids, st = draft_generate(model, prompt.to(dev), method, bound[self.knob], n_new, **own)
            out["tokens_per_s"].append(st.tokens_per_s)
            out["tau"].append(st.tau)
            out["accept_rate"].append(st.acceptance_rate)
            out["lossless"].append(float(ids[0].tolist() == plain))
        return out
