"""Pydantic models for everything an LLM returns. LLM output is untrusted: it is validated here."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field, field_validator
from pydantic.json_schema import SkipJsonSchema


class SearchQueries(BaseModel):
    queries: list[str] = Field(min_length=1, max_length=6, description="arXiv search queries, short keyword phrases")

    @field_validator("queries")
    @classmethod
    def _clean(cls, v: list[str]) -> list[str]:
        out = [q.strip()[:200] for q in v if q and q.strip()]
        if not out:
            raise ValueError("at least one non-empty query")
        return out


class Metric(BaseModel):
    name: str = Field(description="key used in results.json 'metrics', snake_case")
    direction: Literal["lower", "higher"] = Field(description="which direction is better")
    description: str = ""


class Plan(BaseModel):
    title: str
    hypothesis: str
    method: str
    metrics: list[Metric] = Field(min_length=1)
    baselines: list[str] = Field(default_factory=list)
    ablations: list[str] = Field(default_factory=list, max_length=6,
                                 description="parts of the method to switch off or change, one per ablation")
    experiment_outline: str = ""
    risks: str = ""

    @property
    def primary_metric(self) -> Metric:
        return self.metrics[0]


class Interpretation(BaseModel):
    summary: str
    verdict: Literal["supported", "refuted", "inconclusive"]
    key_findings: list[str] = Field(default_factory=list)
    caveats: list[str] = Field(default_factory=list)
    # set by code after the model answers (agentlab.experiment.analysis.verdict_allowed); not asked of the model
    claimed_verdict: SkipJsonSchema[str | None] = None
    verdict_caveat: SkipJsonSchema[str | None] = None


class Review(BaseModel):
    summary: str
    strengths: list[str] = Field(default_factory=list)
    weaknesses: list[str] = Field(default_factory=list)
    soundness: int = Field(ge=1, le=4)
    presentation: int = Field(ge=1, le=4)
    contribution: int = Field(ge=1, le=4)
    overall: int = Field(ge=1, le=10)
    confidence: int = Field(ge=1, le=5)
