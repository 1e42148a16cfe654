"""Method registries of the pruning, window-attention and speculative-decoding families: a new method is one
decorated function (kvpress style), measured by the evaluation harness on the same items as every baseline.
``@prune_method("name")`` over ``score(ctx: PruneContext, **params) -> Tensor`` (same shape as the weight;
higher = keep; the family zeroes the lowest ``sparsity`` share of each output row of every decoder-layer Linear),
``@attention_method("name")`` over ``windows(ctx: AttentionContext, **params) -> list[list[int]]`` (per layer,
per query head: the window, 0 = full; ``ctx.window`` is the swept base) and ``@draft_method("name")`` over
``propose(ctx: DraftContext, k: int, **params) -> list[int]`` (up to ``k`` draft tokens continuing ``ctx.seq``,
verified greedily by the target, so the output equals plain greedy decoding). A method's own parameters are the
keyword arguments after ``ctx`` (and ``k``), with JSON-friendly defaults; the knob (sparsity, window, k) is the
family's. The harness specs name them: ``{"family": "prune", "methods": [{"name": "mine", "params": {...}}]}``.
Built-ins (references in brackets): prune [dense] ``magnitude``, ``wanda``; attention [full] ``swa``, ``mswa``;
speculative [greedy] ``prompt_lookup``, ``early_exit``; ``method_names(family)`` lists plugins too.

Torch-free (like ``methods``): nothing here imports torch. Built-ins live one file each in
``agentlab/modules/prune_methods/``, ``attention_methods/`` and ``draft_methods/`` (found by reading their
source, so a new file is a new method); third-party packages add entry points in the groups
``agentlab.prune_methods``, ``agentlab.attention_methods`` and ``agentlab.draft_methods``.
"""

from __future__ import annotations

import difflib
import inspect
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from agentlab.registry import Registry

__all__ = [
    "prune_method",
    "attention_method",
    "draft_method",
    "PruneContext",
    "AttentionContext",
    "DraftContext",
    "method_names",
]

PRUNE_METHODS: Registry = Registry("prune_methods", "pruning method")
PRUNE_METHODS.discover("agentlab.modules.prune_methods", "prune_method")
ATTENTION_METHODS: Registry = Registry("attention_methods", "attention method")
ATTENTION_METHODS.discover("agentlab.modules.attention_methods", "attention_method")
DRAFT_METHODS: Registry = Registry("draft_methods", "draft method")
DRAFT_METHODS.discover("agentlab.modules.draft_methods", "draft_method")

#: family -> (registry, the knob the family passes to the hook itself when the hook declares it)
FAMILIES: dict[str, tuple[Registry, str]] = {
    "prune": (PRUNE_METHODS, "sparsity"),
    "attention": (ATTENTION_METHODS, "window"),
    "speculative": (DRAFT_METHODS, "k"),
}


@dataclass
class PruneContext:
    """What a ``@prune_method`` score sees for one Linear of one decoder layer (tensors: read only)."""

    weight: Any  # Tensor [out, in]: the Linear's weight (dense, before this layer is masked)
    input_norm: Any  # Tensor [in]: L2 norm of each input channel over the calibration tokens (dense model)
    layer: int  # decoder layer index
    name: str  # the Linear's name inside its layer, e.g. "self_attn.q_proj", "mlp.down_proj"
    model: Any  # the model being pruned (a copy; earlier layers may already be masked)
    sparsity: float  # the share of each output row that will be zeroed
    module: Any = None  # the nn.Linear itself


@dataclass
class AttentionContext:
    """What an ``@attention_method`` sees: the model's geometry, the sequence length and the swept window."""

    model: Any  # the model (do not change it; return the windows)
    window: int  # the knob: the base window (tokens each query sees, itself included)
    n_layers: int  # decoder layers
    n_heads: int  # query heads per layer (return one window per query head)
    n_kv_heads: int  # KV heads per layer; each serves n_heads // n_kv_heads consecutive query heads
    head_dim: int  # channels per head
    seq_len: int  # tokens per scored sequence (a window >= seq_len is full attention)


@dataclass
class DraftContext:
    """What a ``@draft_method`` sees at each step of one generation (read only, except ``state``)."""

    model: Any  # the target model (its weights may be shared by a self-speculative draft)
    seq: list  # token ids so far (prompt + output); the drafts continue it after seq[-1]
    prompt_len: int  # tokens of the prompt at the start of seq
    hidden: Any = None  # Tensor [hidden]: the target's last hidden state at the position that produced seq[-1]
    state: dict = field(default_factory=dict)  # kept across the steps of one generation (a draft cache, ...)


class ParamError(ValueError):
    """A method parameter is unknown, missing or of the wrong type; ``param`` names it."""

    def __init__(self, param: str, reason: str, message: str):
        super().__init__(message)
        self.param, self.reason = param, reason


_VAR = (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD)


@dataclass(frozen=True)
class FamilyMethod:
    """A registered method of the prune, attention or speculative family: its hook and how it is called."""

    family: str  # "prune" | "attention" | "speculative"
    name: str  # registry name, the spec's method name
    fn: Callable[..., Any]  # the hook: score / windows / propose

    @property
    def knob(self) -> str:
        return FAMILIES[self.family][1]

    def _signature(self) -> list[inspect.Parameter]:
        return list(inspect.signature(self.fn).parameters.values())[1:]

    def _own(self) -> list[inspect.Parameter]:
        return [p for p in self._signature() if p.name != self.knob and p.kind not in _VAR]

    def defaults(self) -> dict[str, Any]:
        """The method's own parameters (after ``ctx``, the knob excluded) with their defaults."""
        return {p.name: p.default for p in self._own() if p.default is not inspect.Parameter.empty}

    def bind(self, params: dict[str, Any]) -> dict[str, Any]:
        """Defaults overlaid with `params`; ``ParamError`` for an unknown, missing or mistyped parameter."""
        own = {p.name: p for p in self._own()}
        takes_any = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in self._signature())
        for name, value in params.items():
            if name not in own and not takes_any:
                close = difflib.get_close_matches(name, [self.knob, *own], n=1)
                self._fail(name, "unknown parameter" + (f" (did you mean {close[0]!r}?)" if close else ""))
            if name in own and not value_fits(own[name].default, value):
                self._fail(name, f"expected a {type(own[name].default).__name__} like the default "
                                 f"{own[name].default!r}, got {value!r}")
        missing = [n for n, p in own.items() if p.default is inspect.Parameter.empty and n not in params]
        if missing:
            self._fail(missing[0], "missing required parameter")
        return {**self.defaults(), **params}

    def _fail(self, param: str, reason: str):
        raise ParamError(param, reason, f"{self.family} method {self.name!r}: {param}: {reason}; "
                                        f"its parameters: {self.defaults()}")

    def call(self, ctx, knob_value, params: dict[str, Any]):
        """Run the hook: ``fn(ctx, **params)``, plus the knob (``k=``, ``sparsity=``, ``window=``) if it takes it."""
        sig = self._signature()
        if any(p.name == self.knob or p.kind is inspect.Parameter.VAR_KEYWORD for p in sig):
            return self.fn(ctx, **{self.knob: knob_value}, **params)
        return self.fn(ctx, **params)

    def __call__(self, *args, **kwargs):
        """The decorated function still works as a plain function."""
        return self.fn(*args, **kwargs)


def value_fits(default: Any, value: Any) -> bool:
    """Whether a spec value fits a parameter whose default is `default` (None and objects: anything)."""
    if default is None or default is inspect.Parameter.empty:
        return True
    if isinstance(default, bool):
        return isinstance(value, bool)
    if isinstance(default, int):
        return isinstance(value, int) and not isinstance(value, bool)
    if isinstance(default, float):
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if isinstance(default, str):
        return isinstance(value, str)
    if isinstance(default, (list, tuple)):
        return isinstance(value, (list, tuple))
    return True


def _decorator(family: str, name: str) -> Callable[[Callable[..., Any]], FamilyMethod]:
    def deco(fn: Callable[..., Any]) -> FamilyMethod:
        method = FamilyMethod(family, name, fn)
        FAMILIES[family][0].register(name, method)
        return method

    return deco


def prune_method(name: str) -> Callable[[Callable[..., Any]], FamilyMethod]:
    """Register the decorated score as pruning method `name` (family ``prune``, knob ``sparsity``).

    Args:
        name: the method name specs use.
        (decorated) ``score(ctx: PruneContext, **params) -> Tensor`` shaped like ``ctx.weight`` (or broadcastable
            to it), higher = keep. Called once per Linear of every decoder layer; the family zeroes the lowest
            ``ctx.sparsity`` share of each output row (as Wanda does).
    Returns:
        The decorator; it returns a ``FamilyMethod`` (still callable as the plain function).
    Example:
        >>> from agentlab.modules.family_methods import PruneContext, prune_method
        >>> @prune_method("wanda_sq")
        ... def wanda_sq(ctx: PruneContext, power: float = 2.0):
        ...     return ctx.weight.abs() * ctx.input_norm[None, :] ** power
    """
    return _decorator("prune", name)


def attention_method(name: str) -> Callable[[Callable[..., Any]], FamilyMethod]:
    """Register the decorated window schedule as attention method `name` (family ``attention``, knob ``window``).

    Args:
        name: the method name specs use.
        (decorated) ``windows(ctx: AttentionContext, **params) -> list[list[int]]``: per layer, per query head,
            the tokens that head's queries see (itself included; 0 = full). ``ctx.window`` is the swept base; the
            family applies them with the toolkit's window attention and counts the KV bytes they need.
    Returns:
        The decorator; it returns a ``FamilyMethod``.
    Example:
        >>> from agentlab.modules.family_methods import AttentionContext, attention_method
        >>> @attention_method("wide_last_layer")
        ... def wide_last_layer(ctx: AttentionContext, scale: int = 4):
        ...     return [[ctx.window * (scale if i == ctx.n_layers - 1 else 1)] * ctx.n_heads
        ...             for i in range(ctx.n_layers)]
    """
    return _decorator("attention", name)


def draft_method(name: str) -> Callable[[Callable[..., Any]], FamilyMethod]:
    """Register the decorated drafter as speculative-decoding method `name` (family ``speculative``, knob ``k``).

    Args:
        name: the method name specs use.
        (decorated) ``propose(ctx: DraftContext, k: int, **params) -> list[int]``: up to ``k`` draft token ids
            continuing ``ctx.seq``. The target verifies them in one pass and keeps the longest prefix equal to
            its own greedy choice, so the output equals plain greedy decoding; fewer or no drafts are allowed.
            Keep caches across steps in ``ctx.state``.
    Returns:
        The decorator; it returns a ``FamilyMethod``.
    Example:
        >>> from agentlab.modules.family_methods import DraftContext, draft_method
        >>> @draft_method("repeat_last")
        ... def repeat_last(ctx: DraftContext, k: int, times: int = 2):
        ...     return [ctx.seq[-1]] * min(k, times)
    """
    return _decorator("speculative", name)


def get_method(family: str, name: str) -> FamilyMethod:
    """The ``FamilyMethod`` registered as `name` in `family`; a plugin's bare function is wrapped."""
    obj = FAMILIES[family][0].get(name)
    if isinstance(obj, FamilyMethod):
        return obj
    if callable(obj):
        return FamilyMethod(family, name, obj)
    raise TypeError(f"{family} method {name!r} is a {type(obj).__name__}, not a function")


def method_names(family: str) -> list[str]:
    """Every registered method name of `family` ("prune", "attention" or "speculative"): built-ins, then plugins.

    Args:
        family: the harness family.
    Returns:
        A list of names (nothing imported); the family's reference (dense, full, greedy) is not among them.
    Example:
        >>> from agentlab.modules.family_methods import method_names
        >>> method_names("prune")[:2]
        ['magnitude', 'wanda']
    """
    return FAMILIES[family][0].names()


# ---- shared by the harness families (not part of the API doc) ---------------------------------------------
def spec_params(fam, method: str) -> dict[str, Any]:
    """``fam.method_params``: {} for the reference, else the knob's default and the method's own defaults."""
    if method == fam.reference:
        return {}
    return {fam.knob: fam.knob_default, **_as_json(get_method(fam.name, method).defaults())}


def _as_json(params: dict[str, Any]) -> dict[str, Any]:
    """Tuples as lists, so bound parameters equal what a JSON spec round-trips to."""
    return {k: list(v) if isinstance(v, tuple) else v for k, v in params.items()}


def spec_check(fam, method: str, params: dict[str, Any] | None, where: str) -> dict[str, Any]:
    """``fam.check``: the knob validated by ``fam.check_knob`` and the method's own parameters bound.

    `where` is the path of the params (``methods[1].params``, as the harness core passes it); errors name
    ``<where>.<param>`` (an unknown method: ``methods[1].name``).
    """
    from agentlab.modules.harness.family import SpecError

    names = fam.method_names()
    if method not in names:
        close = difflib.get_close_matches(str(method), names, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        base = where[: -len(".params")] if where.endswith(".params") else where
        raise SpecError(f"{base}.name", f"unknown {fam.name} method {method!r}{hint}; choose one of: {', '.join(names)}")
    params = dict(params or {})
    if method == fam.reference:
        if params:
            raise SpecError(f"{where}.{next(iter(params))}",
                            f"the reference {method!r} takes no parameters (valid params: none)")
        return {}
    try:
        m = get_method(fam.name, method)
    except Exception as exc:  # noqa: BLE001 - a plugin that does not import is a spec error, not a crash
        raise SpecError(where, f"{fam.name} method {method!r} cannot be loaded ({type(exc).__name__}: {exc})") from None
    valid = ", ".join(f"{k}={v!r}" for k, v in spec_params(fam, method).items())
    value = params.pop(fam.knob, fam.knob_default)
    try:
        value = fam.check_knob(value)
    except (TypeError, ValueError) as exc:
        raise SpecError(f"{where}.{fam.knob}", f"{exc}; valid params: {valid}") from None
    try:
        own = m.bind(params)
    except ParamError as exc:
        raise SpecError(f"{where}.{exc.param}", f"{exc.reason}; valid params: {valid}") from None
    return {fam.knob: value, **_as_json(own)}


def draw_starts(total: int, length: int, n: int, seed: int, salt: str) -> list[int]:
    """`n` seeded start offsets of `length`-token windows in a `total`-token text (distinct when they fit)."""
    if length > total:
        raise ValueError(f"an item needs {length} tokens but the text has only {total}")
    span = total - length + 1
    rng = random.Random(f"{salt}:{seed}")
    return rng.sample(range(span), n) if n <= span else [rng.randrange(span) for _ in range(n)]
