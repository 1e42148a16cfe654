"""The ``attention`` family of the evaluation harness: window-attention schedules (``@attention_method``).

A method returns one window per layer and query head (``family_methods.AttentionContext`` in); the family applies
them with the toolkit's window attention (``attention._apply``: the ``agentlab_window`` attention function, a
query at i sees keys j with i - w < j <= i, 0 = full) for the duration of the measurement and restores the
model's own attention afterwards. The reference ``full`` runs through the same attention function with every
window 0, so the two differ only by the windows.

Items: seeded windows of ``context_tokens + target_tokens`` tokens of the split; ``ppl`` is measured on the last
``target_tokens`` of each. ``kv_bytes`` is what a window cache holds at that length (``attention`` module doc):
a window at least as long as the sequence is full attention and costs the full cache.
"""

from __future__ import annotations

from agentlab.modules import attention
from agentlab.modules.family_methods import AttentionContext, get_method, method_names, spec_check, spec_params
from agentlab.modules.harness.family import Family, Items, MetricInfo
from agentlab.modules.harness.prune_family import draw_windows, score_window
from agentlab.modules.models import kv_geometry

__api__ = False


def method_windows(model, method: str, window: int, seq_len: int, params: dict) -> list[list[int]]:
    """The per-layer, per-query-head windows of a registered method, checked against the model's geometry."""
    g = kv_geometry(model)
    ctx = AttentionContext(model, window, g.n_layers, g.n_heads, g.n_kv_heads, g.head_dim, seq_len)
    out = get_method("attention", method).call(ctx, window, params)
    try:
        windows = [[int(w) for w in layer] for layer in out]
    except TypeError:
        raise ValueError(f"attention method {method!r} must return a list (per layer) of lists (per query head) "
                         f"of ints, got {type(out).__name__}") from None
    shape_ok = len(windows) == g.n_layers and all(len(layer) == g.n_heads for layer in windows)
    if not shape_ok or any(w < 0 for layer in windows for w in layer):
        raise ValueError(f"attention method {method!r} must return {g.n_layers} lists of {g.n_heads} windows >= 0 "
                         f"(0 = full), got {[len(layer) for layer in windows]} lists")
    return windows


class AttentionFamily(Family):
    """Window attention: a ``@attention_method`` window per layer and query head, base ``window``."""

    name = "attention"
    knob = "window"
    knob_default = 128
    sweep = (32, 64, 128, 256)
    reference = "full"
    primary = "ppl"
    metrics = {
        "ppl": MetricInfo("lower", "", "perplexity of the last target_tokens of each window, one causal pass"),
        "kv_bytes": MetricInfo("lower", "bytes", "bytes a window cache holds at context_tokens + target_tokens "
                               "(per layer and KV head: min(T, largest window of its query heads))", per_item=False),
    }
    context_tokens = 512
    target_tokens = 128

    def method_names(self) -> list[str]:
        return [self.reference, *(n for n in method_names(self.name) if n != self.reference)]

    def method_params(self, method: str) -> dict:
        return spec_params(self, method)

    @staticmethod
    def check_knob(value) -> int:
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"window must be an int >= 1 (tokens each query sees), got {value!r}")
        return value

    def check(self, method: str, params: dict, where: str) -> dict:
        return spec_check(self, method, params, where)

    def prepare(self, model, tokens, calib, spec, seed: int) -> Items:
        n_ctx, n_tgt = int(spec.context_tokens), int(spec.target_tokens)
        windows = draw_windows(tokens, n_ctx + n_tgt, int(spec.items), seed, "attention")
        return Items(seed, windows, {"context_tokens": n_ctx, "seq_len": n_ctx + n_tgt})

    def evaluate(self, model, items: Items, method: str, params: dict) -> dict[str, list[float]]:
        bound = self.check(method, params, "params")
        seq_len = items.extra["seq_len"]
        if method == self.reference:
            g = kv_geometry(model)
            windows = [[0] * g.n_heads for _ in range(g.n_layers)]
        else:
            own = {k: v for k, v in bound.items() if k != self.knob}
            windows = method_windows(model, method, bound[self.knob], seq_len, own)
        old = model.config._attn_implementation
        try:
            _, stats = attention._apply(model, windows, method, seq_len)
            ppl = [score_window(model, w, items.extra["context_tokens"])[0] for w in items.items]
        finally:
            attention.full_attention(model, impl=old)
        return {"ppl": ppl, "kv_bytes": [float(stats.kv_bytes)]}
