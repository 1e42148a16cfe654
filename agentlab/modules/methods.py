"""The toolkit's method registries (torch-free): KV-cache methods, one decorated hook per method.

A KV method is one function in one file, kvpress style: ``@kv_method("snapkv", attention=True)`` over
``score(ctx: kv.ScoreContext, **params) -> Tensor`` returning per-token scores ``[B, H_kv, T]`` (or anything
broadcastable to it); ``kv.compress`` owns the shared skeleton (prefill, score every layer, keep the top
``budget`` tokens per layer and KV head, stats). Methods that rewrite the cache instead of evicting it
register ``kind="transform"``: ``transform(ctx, **params) -> kv.Transformed`` per layer.

Built-ins live in ``agentlab/modules/kv_methods/`` (one file each; found by reading their source, so a new
file is a new method). Third-party methods come from the entry-point group ``agentlab.kv_methods``:

    [project.entry-points."agentlab.kv_methods"]
    my_press = "my_pkg.press:my_press"    # a @kv_method-decorated function, or a bare score function
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from agentlab.registry import Registry

__api__ = False  # not part of the experiment API doc (the methods themselves are, under `kv`)

KV_METHODS: Registry = Registry("kv_methods", "KV-cache method")
KV_METHODS.discover("agentlab.modules.kv_methods", "kv_method")

Kind = Literal["score", "transform"]


@dataclass(frozen=True)
class KVMethod:
    """A registered KV-cache method: its hook and how the shared core must drive it."""

    name: str  # registry name, the ``method=`` of ``kv.compress``
    fn: Callable[..., Any]  # score(ctx, **params) -> Tensor, or transform(ctx, **params) -> kv.Transformed
    kind: Kind = "score"  # "score": evict by score under a budget; "transform": rewrite each layer's K/V
    attention: bool = False  # the score needs the prefill's attention probabilities (``ctx.attentions``)
    label: str = ""  # KVStats.method, formatted with the params, e.g. "int{bits}" (default: the name)

    def defaults(self) -> dict[str, Any]:
        """The method's own parameters (everything after ``ctx``) with their defaults."""
        params = list(inspect.signature(self.fn).parameters.values())[1:]
        return {p.name: p.default for p in params if p.default is not inspect.Parameter.empty}

    def bind(self, params: dict[str, Any]) -> dict[str, Any]:
        """Defaults overlaid with `params`; a TypeError naming the method for an unknown or missing one."""
        try:
            bound = inspect.signature(self.fn).bind(None, **params)
        except TypeError as exc:
            raise TypeError(f"KV method {self.name!r}: {exc}; its parameters: {self.defaults()}") from None
        bound.apply_defaults()
        return dict(list(bound.arguments.items())[1:])

    def stats_label(self, params: dict[str, Any]) -> str:
        return self.label.format(**params) if self.label else self.name

    def __call__(self, model, input_ids, budget=None, **params):
        """``kv.<name>(model, input_ids, budget=..., **params)`` = ``kv.compress(model, input_ids, name, ...)``."""
        from agentlab.modules import kv

        return kv.compress(model, input_ids, self.name, budget=budget, **params)


def kv_method(name: str, *, kind: Kind = "score", attention: bool = False,
              label: str = "") -> Callable[[Callable[..., Any]], KVMethod]:
    """Register the decorated hook as KV method `name` (see the module doc); returns the ``KVMethod``."""
    if kind not in ("score", "transform"):
        raise ValueError(f"kind must be 'score' or 'transform', not {kind!r}")

    def deco(fn: Callable[..., Any]) -> KVMethod:
        method = KVMethod(name, fn, kind, attention, label)
        KV_METHODS.register(name, method)
        return method

    return deco


def get_kv_method(name: str) -> KVMethod:
    """The ``KVMethod`` registered as `name`; a plugin's bare function becomes a score method of that name."""
    obj = KV_METHODS.get(name)
    if isinstance(obj, KVMethod):
        return obj
    if callable(obj):
        return KVMethod(name, obj)
    raise TypeError(f"KV method {name!r} is a {type(obj).__name__}, not a function or a @kv_method")


def kv_method_names() -> list[str]:
    """Every KV method name: built-ins, then plugins (nothing imported)."""
    return KV_METHODS.names()
