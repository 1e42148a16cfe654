"""What the experiment's structured LLM steps may answer, with enums read from the harness registries.

A weak model (the embedded one) fills these through constrained decoding: the family, the baselines and
the metric are enums of the names the harness knows, so a spec node always names real methods. What
an enum cannot say (a method of another family, a parameter the method lacks) is refused by a
validator whose message lists the valid choices; the LLM client sends it back for a repair.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Literal

from pydantic import BaseModel, Field, create_model, model_validator

Scalar = float | int | bool | str


@dataclass(frozen=True)
class FamilyInfo:
    name: str
    knob: str
    sweep: tuple
    reference: str
    primary: str
    metrics: dict[str, str]  # metric -> direction
    methods: dict[str, dict[str, Any]]  # method -> its parameters with defaults (reference excluded)

    @property
    def knob_default(self) -> Any:
        return self.sweep[1] if len(self.sweep) > 1 else self.sweep[0]

    def takes_knob(self, method: str) -> bool:
        return self.knob in self.methods.get(method, {})


@lru_cache(maxsize=1)
def families() -> dict[str, FamilyInfo]:
    """Every harness family with its methods' parameters (built-ins and installed plugins)."""
    from agentlab.modules.harness.family import family_names, get_family

    out = {}
    for name in family_names():
        fam = get_family(name)
        methods = {m: dict(fam.method_params(m)) for m in fam.method_names() if m != fam.reference}
        out[name] = FamilyInfo(name, fam.knob, tuple(fam.sweep), fam.reference, fam.primary,
                               {k: v.direction for k, v in fam.metrics.items()}, methods)
    return out


def _lit(values: list[str]) -> Any:
    return Literal[tuple(values)]  # type: ignore[valid-type]


@lru_cache(maxsize=1)
def family_schema() -> type[BaseModel]:
    """`FamilyChoice`: which method family the plan studies (first of two constrained steps)."""
    return create_model(
        "FamilyChoice",
        family=(_lit(sorted(families())), Field(description="the method family the plan studies")),
        rationale=(str, Field("", max_length=600, description="one sentence")),
    )


@lru_cache(maxsize=8)
def baseline_schema(family: str) -> type[BaseModel]:
    """`BaselineSpec`: the plan's baselines as registered methods of `family`, and its primary metric. Every
    field is an enum of that family's names, so constrained decoding cannot produce an invalid spec."""
    fam = families()[family]

    def distinct(self):
        if len(set(self.baselines)) != len(self.baselines):
            raise ValueError("baselines must not repeat")
        return self

    return create_model(
        "BaselineSpec",
        baselines=(list[_lit(sorted(fam.methods))], Field(min_length=1, max_length=6,
                                                          description=f"registered {family} methods to compare")),
        primary=(_lit(sorted(fam.metrics)) | None, Field(None, description="the metric that decides; null: "
                                                                           f"{fam.primary}")),
        rationale=(str, Field("", max_length=600, description="one or two sentences")),
        __validators__={"_distinct": model_validator(mode="after")(distinct)},
    )


def _variants(value: Any) -> list[Any]:
    """Nearby settings of a parameter default: halved and doubled numbers, the other boolean."""
    if isinstance(value, bool):
        return [not value]
    if isinstance(value, int):
        return sorted({0, max(1, value // 2), value * 2} - {value})
    if isinstance(value, float):
        return sorted({0.0, value / 2, value * 2} - {value})
    return []


def proposal_options(family: str, baselines: tuple[str, ...] = ()) -> dict[str, tuple[str, dict[str, Any]]]:
    """Every configuration a spec proposal may choose: `method` (its defaults, when it is not a baseline) or
    `method: param=value` with one parameter moved from its default. Label -> (method, params)."""
    fam = families()[family]
    out: dict[str, tuple[str, dict[str, Any]]] = {}
    for m, params in sorted(fam.methods.items()):
        if m not in baselines:
            out[m] = (m, {})
        for k, v in params.items():
            if k != fam.knob:
                for x in _variants(v):
                    out[f"{m}: {k}={x}"] = (m, {k: x})
    return out


@lru_cache(maxsize=32)
def proposal_schema(family: str, baselines: tuple[str, ...] = ()) -> type[BaseModel]:
    """`ProposalSpec`: the proposed configuration of a weak model, one enum of `proposal_options`: a
    registered method of `family` with one setting changed (or a method that is not a baseline), so
    constrained decoding cannot name a method or a parameter that does not exist."""
    labels = sorted(proposal_options(family, baselines))
    return create_model(
        "ProposalSpec",
        choice=(_lit(labels), Field(description=f"the {family} configuration to study")),
        rationale=(str, Field("", max_length=600)),
    )


def ablation_options(params: dict[str, Any], knob: str) -> dict[str, dict[str, Any]]:
    """One-parameter changes of the proposed method (label `param=value` -> params), for weak models."""
    return {f"{k}={x}": {k: x} for k, v in params.items() if k != knob for x in _variants(v)}


@lru_cache(maxsize=32)
def ablation_schema(labels: tuple[str, ...]) -> type[BaseModel]:
    """`AblationChoice` as one enum of `ablation_options` (weak models: constrained decoding)."""
    return create_model("AblationChoice", choice=(_lit(list(labels)), Field(description="the ablated setting")),
                        rationale=(str, Field("", max_length=600)))


class AblationChoice(BaseModel):
    """One ablation of the proposed method: the parameters that switch the ablated part off or change it."""

    params: dict[str, Scalar] = Field(min_length=1, max_length=6,
                                      description="parameters of the proposed method, with their ablated values")
    rationale: str = Field("", max_length=600)


def check_params(params: dict[str, Any], accepted: dict[str, Any], knob: str, who: str) -> None:
    """ValueError listing the accepted parameters when `params` names another one or the knob."""
    bad = [k for k in params if k not in accepted or k == knob]
    if bad:
        ok = ", ".join(f"{k}={v!r}" for k, v in accepted.items() if k != knob) or "none"
        raise ValueError(f"{who} has no parameter(s) {', '.join(bad)} (the key parameter {knob} is set by the "
                         f"stage); its parameters: {ok}")
