"""The ``kv`` harness family: KV-cache compression methods (``@kv_method`` hooks) against the full cache.

An item is a window of the split: ``context_tokens`` of context, then ``target_tokens`` scored. A method
compresses the context's cache (``kv.compress``); the reference ``full`` keeps it whole (``kv.prefill``);
then the targets are scored against that cache (``kv.score_continuation``). Listing and validating methods
is torch-free until a method's hook has to be read (``check`` imports it to read its signature).
"""

from __future__ import annotations

import inspect
import random
from typing import Any

from agentlab.modules.family_methods import value_fits
from agentlab.modules.harness.family import Family, Items, MetricInfo, SpecError
from agentlab.modules.harness.spec import suggest
from agentlab.modules.methods import get_kv_method, kv_method_names

__api__ = False

DEFAULT_BUDGET = 0.25  # kv.compress's default


def _kind(default: Any) -> str:
    return {bool: "a boolean", int: "an int", float: "a number", str: "a string"}.get(type(default), "a value")


def _check_budget(budget: Any, where: str) -> None:
    ok = (isinstance(budget, float) and 0.0 < budget <= 1.0) or (
        isinstance(budget, int) and not isinstance(budget, bool) and budget >= 1)
    if not ok:
        raise SpecError(where, f"budget must be a fraction of the context in (0, 1] (float) or a token count >= 1 "
                        f"(int), not {budget!r}")


class KVFamily(Family):
    """KV-cache compression: evict (score methods, under a ``budget``) or rewrite (transforms) the context cache."""

    name = "kv"
    what = "KV method"  # for messages: "unknown KV method 'h20'"
    knob = "budget"
    sweep = (0.125, 0.25, 0.5, 0.75)
    reference = "full"
    primary = "ppl"
    metrics = {
        "ppl": MetricInfo("lower", "", "perplexity of the target tokens after the (compressed) context cache "
                          "(kv.score_continuation)"),
        "kv_bytes": MetricInfo("lower", "bytes", "bytes of the compressed context cache, mean over the seed's items",
                               per_item=False),
        "compression": MetricInfo("higher", "x", "dense context KV bytes / compressed KV bytes over the seed's items",
                                  per_item=False),
    }
    context_tokens = 256
    target_tokens = 64

    def method_names(self) -> list[str]:
        return [self.reference, *(n for n in kv_method_names() if n != self.reference)]

    def method_params(self, method: str) -> dict[str, Any]:
        if method == self.reference:
            return {}
        m = get_kv_method(method)
        return m.defaults() if m.kind == "transform" else {"budget": DEFAULT_BUDGET, **m.defaults()}

    def check(self, method: str, params: dict[str, Any], where: str) -> dict[str, Any]:
        if method == self.reference:
            if params:
                raise SpecError(f"{where}.{next(iter(params))}", f"the reference {method!r} (the uncompressed cache) "
                                "takes no parameters")
            return {}
        try:
            m = get_kv_method(method)
        except Exception as exc:  # a plugin that does not import
            raise SpecError(where, f"KV method {method!r} cannot be loaded ({type(exc).__name__}: {exc})") from None
        own = {k: v for k, v in params.items() if k != "budget"}
        if m.kind == "transform" and "budget" in params:
            raise SpecError(f"{where}.budget", f"KV method {method!r} is a transform (it rewrites every cached token "
                            f"instead of evicting): it takes no budget; its parameters: {m.defaults()}")
        self._check_own(m, own, where)
        try:
            bound = m.bind(own)
        except TypeError as exc:
            raise SpecError(where, str(exc)) from None
        if m.kind == "transform":
            return bound
        budget = params.get("budget", DEFAULT_BUDGET)
        _check_budget(budget, f"{where}.budget")
        return {"budget": budget, **bound}

    def _check_own(self, m, own: dict[str, Any], where: str) -> None:
        sig = list(inspect.signature(m.fn).parameters.values())[1:]
        accepted = {p.name: p.default for p in sig if p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)}
        open_kw = any(p.kind == p.VAR_KEYWORD for p in sig)
        names = list(accepted) if m.kind == "transform" else ["budget", *accepted]
        for k, v in own.items():
            if k not in accepted and not open_kw:
                raise SpecError(f"{where}.{k}", f"unknown parameter of KV method {m.name!r}{suggest(k, names)}; "
                                f"its parameters: {', '.join(names) or 'none'}")
            if k in accepted and not value_fits(accepted[k], v):
                raise SpecError(f"{where}.{k}", f"expects {_kind(accepted[k])} like its default "
                                f"{accepted[k]!r}, not {v!r}")

    def prepare(self, model, tokens, calib, spec, seed: int) -> Items:
        ctx_n, tgt_n = spec.context_tokens, spec.target_tokens
        window = ctx_n + tgt_n
        n = int(tokens.shape[-1])
        if n < window:
            raise ValueError(f"the split has {n} tokens, fewer than one item's {window} (context + target)")
        rng = random.Random(seed)
        dev = next(model.parameters()).device
        flat = tokens.reshape(-1)
        offsets = [rng.randrange(0, n - window + 1) for _ in range(spec.items)]
        items = []
        for start in offsets:
            w = flat[start:start + window].to(dev)[None]
            items.append((w[:, :ctx_n], w[:, ctx_n:]))
        return Items(seed, items, {"offsets": offsets})

    def evaluate(self, model, items: Items, method: str, params: dict[str, Any]) -> dict[str, list[float]]:
        from agentlab.modules import kv, metrics

        ppl, kept_bytes, dense = [], [], []
        for ctx, tgt in items.items:
            if method == self.reference:
                state = kv.prefill(model, ctx)
                nbytes = metrics.cache_bytes(state.cache)
            else:
                state, st = kv.compress(model, ctx, method, **params)
                nbytes = st.kv_bytes
            kept_bytes.append(float(nbytes))
            dense.append(float(metrics.dense_kv_bytes(model, ctx.shape[1])))
            ppl.append(kv.score_continuation(model, state, tgt))
        return {"ppl": ppl, "kv_bytes": [sum(kept_bytes) / len(kept_bytes)],
                "compression": [sum(dense) / sum(kept_bytes) if sum(kept_bytes) else float("inf")]}
