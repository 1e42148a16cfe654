"""The ``prune`` family of the evaluation harness: unstructured pruning criteria (``@prune_method``) at a sparsity.

Every method is one score per decoder-layer Linear (``family_methods.PruneContext`` in, a tensor shaped like the
weight out, higher = keep); the shared core here masks the lowest ``sparsity`` share of each output row (as
Wanda does, ``prune._mask_rows``) on a deep copy of the model. Input norms come from one calibration pass of
the dense copy (``prune.input_norms``) on a seeded window of the calibration text.

Items: seeded windows of ``context_tokens + target_tokens`` tokens of the split; ``ppl`` and ``accuracy`` are
measured on the last ``target_tokens`` of each window (each predicted from everything before it in one pass).
"""

from __future__ import annotations

import copy
import math

import torch

from agentlab.modules import prune
from agentlab.modules.family_methods import PruneContext, draw_starts, get_method, method_names, spec_check, spec_params
from agentlab.modules.harness.family import Family, Items, MetricInfo
from agentlab.modules.models import count_params

__api__ = False


def _device(model) -> torch.device:
    return next(model.parameters()).device


def draw_windows(tokens: torch.Tensor, length: int, n: int, seed: int, salt: str) -> list[torch.Tensor]:
    """`n` seeded ``[1, length]`` windows of the 1-D token ids `tokens` (same seed and salt: same windows)."""
    tokens = tokens.reshape(-1)
    return [tokens[s : s + length].reshape(1, -1).clone() for s in draw_starts(len(tokens), length, n, seed, salt)]


@torch.no_grad()
def score_window(model, ids: torch.Tensor, n_context: int) -> tuple[float, float]:
    """(perplexity, next-token top-1 accuracy) of the tokens after the first `n_context` of ``ids [1, L]``, one pass."""
    start = max(1, min(n_context, ids.shape[1] - 1))
    ids = ids.to(_device(model))
    logits = model(input_ids=ids, logits_to_keep=ids.shape[1] - start + 1).logits[0, :-1].float()
    target = ids[0, start:]
    nll = torch.nn.functional.cross_entropy(logits, target).item()
    return math.exp(nll), (logits.argmax(-1) == target).float().mean().item()


def _linears(model) -> list[tuple[int, str, torch.nn.Linear]]:
    return [(i, name, lin) for i, layer in enumerate(model.model.layers) for name, lin in prune._linears(layer)]


@torch.no_grad()
def apply_prune_method(model, method: str, calib_ids: torch.Tensor, sparsity: float = 0.5, **params):
    """Prune ``model`` in place with the registered method: per decoder-layer Linear, zero the lowest-scoring
    ``sparsity`` share of each output row. Returns the model."""
    m = get_method("prune", method)
    lins = _linears(model)
    sq = prune.input_norms(model, calib_ids, [lin for *_, lin in lins])
    for i, name, lin in lins:
        ctx = PruneContext(lin.weight.detach(), sq[lin].sqrt(), i, name, model, sparsity, lin)
        score = torch.as_tensor(m.call(ctx, sparsity, params), device=lin.weight.device)
        try:
            score = torch.broadcast_to(score, lin.weight.shape)
        except RuntimeError:
            raise ValueError(f"prune method {method!r} returned a score of shape {tuple(score.shape)} for "
                             f"layer {i} {name} (weight {tuple(lin.weight.shape)})") from None
        lin.weight.mul_(prune._mask_rows(score.float(), sparsity).to(lin.weight.dtype))
    return model


def linear_sparsity(model) -> float:
    """Share of zeros among the weights of every decoder-layer Linear."""
    zeros = total = 0
    for *_, lin in _linears(model):
        zeros += int((lin.weight == 0).sum())
        total += lin.weight.numel()
    return zeros / total if total else 0.0


class PruneFamily(Family):
    """Unstructured pruning: a ``@prune_method`` score per Linear, rows masked to ``sparsity``."""

    name = "prune"
    knob = "sparsity"
    knob_default = 0.5
    sweep = (0.3, 0.5, 0.7)
    reference = "dense"
    primary = "ppl"
    metrics = {
        "ppl": MetricInfo("lower", "", "perplexity of the last target_tokens of each window, one causal pass"),
        "accuracy": MetricInfo("higher", "", "next-token top-1 accuracy on the same tokens"),
        "params": MetricInfo("lower", "", "non-zero parameters of the whole model (tied weights once)",
                             per_item=False),
        "sparsity": MetricInfo("higher", "", "measured share of zeros in the decoder layers' Linear weights",
                               per_item=False),
    }
    context_tokens = 128
    target_tokens = 256
    calib_tokens = 512  # calibration window (clipped to the calibration text)

    def method_names(self) -> list[str]:
        return [self.reference, *(n for n in method_names(self.name) if n != self.reference)]

    def method_params(self, method: str) -> dict:
        return spec_params(self, method)

    @staticmethod
    def check_knob(value) -> float:
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value < 1:
            raise ValueError(f"sparsity must be a number in [0, 1), got {value!r}")
        return float(value)

    def check(self, method: str, params: dict, where: str) -> dict:
        return spec_check(self, method, params, where)

    def prepare(self, model, tokens, calib, spec, seed: int) -> Items:
        n_ctx, n_tgt = int(spec.context_tokens), int(spec.target_tokens)
        windows = draw_windows(tokens, n_ctx + n_tgt, int(spec.items), seed, "prune")
        n_calib = min(int(getattr(spec, "calib_tokens", None) or self.calib_tokens), calib.numel())
        calib_ids = draw_windows(calib, n_calib, 1, seed, "prune-calib")[0]
        return Items(seed, windows, {"calib": calib_ids, "context_tokens": n_ctx})

    def evaluate(self, model, items: Items, method: str, params: dict) -> dict[str, list[float]]:
        bound = self.check(method, params, "params")
        pruned = model
        if method != self.reference:
            own = {k: v for k, v in bound.items() if k != self.knob}
            pruned = apply_prune_method(copy.deepcopy(model), method, items.extra["calib"], bound[self.knob], **own)
        scores = [score_window(pruned, w, items.extra["context_tokens"]) for w in items.items]
        return {"ppl": [s[0] for s in scores], "accuracy": [s[1] for s in scores],
                "params": [float(count_params(pruned, nonzero=True))], "sparsity": [linear_sparsity(pruned)]}
