"""Pydantic models for what the writer and the reviewers return (LLM output is untrusted)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field, field_validator

#: sections in the order they appear in the paper
SECTIONS = ("abstract", "introduction", "related_work", "method", "experimental_setup", "results",
            "discussion", "conclusion")
SECTION_TITLES = {
    "abstract": "Abstract", "introduction": "Introduction", "related_work": "Related Work",
    "method": "Method", "experimental_setup": "Experimental Setup", "results": "Results",
    "discussion": "Discussion and Limitations", "conclusion": "Conclusion",
}


class TableSpec(BaseModel):
    source: str = Field(description="name of one dataset listed in the prompt")
    columns: list[str] = Field(default_factory=list, description="columns to show; empty = all")
    caption: str = ""


class FigureSpec(BaseModel):
    kind: Literal["bar", "line"] = "bar"
    source: str = Field(description="name of one dataset listed in the prompt")
    x: str = Field(description="column for the x axis (or the bar labels)")
    y: list[str] = Field(min_length=1, max_length=4, description="numeric column(s) to plot")
    caption: str = ""


class ReportOutline(BaseModel):
    """What the paper shows: title, and which tables/figures the code should build from the data."""
    title: str
    tables: list[TableSpec] = Field(default_factory=list, max_length=4)
    figures: list[FigureSpec] = Field(default_factory=list, max_length=3)

    @field_validator("title")
    @classmethod
    def _title(cls, v: str) -> str:
        v = " ".join(v.split())[:200]
        if not v:
            raise ValueError("title is empty")
        return v


class SectionDraft(BaseModel):
    """One section body in LaTeX (no \\section command; cite with \\cite{bibkey})."""
    section: str
    latex: str

    @field_validator("latex")
    @classmethod
    def _nonempty(cls, v: str) -> str:
        if not v.strip():
            raise ValueError("latex is empty")
        return v


class RevisionPlan(BaseModel):
    """Which sections a revision rewrites, and what each rewrite must fix."""
    sections: list[str] = Field(default_factory=list)
    instructions: dict[str, str] = Field(default_factory=dict, description="section -> what to change")


class MetaReview(BaseModel):
    summary: str
    strengths: list[str] = Field(default_factory=list)
    weaknesses: list[str] = Field(default_factory=list)
    sections_to_revise: list[str] = Field(default_factory=list)
    recommendation: str = ""
