"""The protocol every method family of the evaluation harness implements (kv, prune, attention, speculative).

A *family* owns one kind of efficiency method: its registry of methods (built-ins and plugins), its
reference method (the uncompressed model), its key parameter (the *knob*, swept for a curve), its
metrics, and how one method is measured on the items of one seed. The harness core
(``agentlab.modules.harness.run``) owns everything else and is the same for every family: loading the
model, the data split, seeds, timing, statistics and the results file. So a baseline and the LLM's new
method are always measured by the same code.

Families are registered by name in ``HARNESS_FAMILIES`` (entry-point group ``agentlab.harness_families``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal

from agentlab.registry import Registry

__api__ = False

HARNESS_FAMILIES: Registry = Registry("harness_families", "harness method family")
HARNESS_FAMILIES.register("kv", lazy="agentlab.modules.harness.kv_family:KVFamily")
HARNESS_FAMILIES.register("prune", lazy="agentlab.modules.harness.prune_family:PruneFamily")
HARNESS_FAMILIES.register("attention", lazy="agentlab.modules.harness.attention_family:AttentionFamily")
HARNESS_FAMILIES.register("speculative", lazy="agentlab.modules.harness.speculative_family:SpeculativeFamily")


class SpecError(ValueError):
    """A spec field is invalid. ``field`` is its path (``methods[1].params.budget``); the message says why and
    what is accepted (nearest valid name when it is a typo)."""

    def __init__(self, field: str, message: str):
        super().__init__(f"{field}: {message}")
        self.field = field


@dataclass(frozen=True)
class MetricInfo:
    """One metric a family measures."""

    direction: Literal["lower", "higher"]  # which way is better
    unit: str = ""  # "", "bytes", "tokens/s", "x", ...
    help: str = ""  # one line: how it is measured
    per_item: bool = True  # the family returns one value per item (False: one value per seed, e.g. kv_bytes)


@dataclass
class Items:
    """What a family prepared for one seed: the evaluation items and anything shared by every cell."""

    seed: int
    items: list[Any]  # e.g. (context_ids, target_ids) windows, prompts
    extra: dict[str, Any] = field(default_factory=dict)  # e.g. calibration ids, a draft model


class Family:
    """Base class of a method family. Subclasses set the class attributes and implement the three methods."""

    name: ClassVar[str]  # registry name, the spec's ``family``
    knob: ClassVar[str]  # the key parameter swept for a curve: budget | sparsity | window | k
    sweep: ClassVar[tuple]  # its default sweep values
    reference: ClassVar[str]  # the method name of the uncompressed reference (always measured, same items)
    primary: ClassVar[str]  # the default primary metric
    metrics: ClassVar[dict[str, MetricInfo]]
    context_tokens: ClassVar[int]  # default tokens of context per item
    target_tokens: ClassVar[int]  # default tokens scored / generated per item

    def method_names(self) -> list[str]:
        """Every method name a spec may use in this family: the reference, built-ins, then plugins."""
        raise NotImplementedError

    def method_params(self, method: str) -> dict[str, Any]:
        """A method's parameters with their defaults (the knob included), for prompts and validation."""
        raise NotImplementedError

    def check(self, method: str, params: dict[str, Any], where: str) -> dict[str, Any]:
        """The params bound to the method (defaults applied); SpecError(where + '...') when a name or value is bad."""
        raise NotImplementedError

    def prepare(self, model, tokens, calib, spec, seed: int) -> Items:
        """The items of one seed: drawn (seeded) from ``tokens`` (the split's 1-D token ids); ``calib`` is the
        calibration text's ids, never scored. Every cell of the seed gets the same items."""
        raise NotImplementedError

    def evaluate(self, model, items: Items, method: str, params: dict[str, Any]) -> dict[str, list[float]]:
        """Measure ``method`` with ``params`` on the seed's items: metric -> values (one per item, or one value
        for metrics with ``per_item=False``). Must not change ``model`` (deep-copy it to prune)."""
        raise NotImplementedError


def get_family(name: str) -> Family:
    """A fresh instance of the family registered as `name` (UnknownName lists the families)."""
    cls = HARNESS_FAMILIES.get(name)
    return cls() if isinstance(cls, type) else cls


def family_names() -> list[str]:
    return HARNESS_FAMILIES.names()
