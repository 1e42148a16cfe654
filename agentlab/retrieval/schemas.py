"""What the model returns at each chain-of-clarification step (validated; paper text is untrusted)."""

from __future__ import annotations

from pydantic import BaseModel, Field, field_validator


def _short(v: str, n: int = 1500) -> str:
    return " ".join(str(v).split())[:n]


class CocClarify(BaseModel):
    """Step 1: what do I still need to know?"""

    clarifications: list[str] = Field(default_factory=list, max_length=8,
                                      description="clarifying questions about the document, most useful first")
    done: bool = Field(default=False, description="true if the notes so far already answer the question")

    @field_validator("clarifications")
    @classmethod
    def _clean(cls, v: list[str]) -> list[str]:
        return [_short(q, 400) for q in v if q and q.strip()]


class CocPointback(BaseModel):
    """Step 2: which paragraphs answer the clarification?"""

    para_ids: list[int] = Field(default_factory=list, max_length=16, description="ids of the <para> blocks that answer it")


class CocAnswer(BaseModel):
    """Step 3: the clarification answered from the pointed-back paragraphs."""

    answer: str = Field(description="answer to the clarifying question, from the paragraphs only")
    sufficient: bool = Field(default=True, description="false if the paragraphs do not contain the answer")

    @field_validator("answer")
    @classmethod
    def _clean(cls, v: str) -> str:
        return _short(v)


class CocFinal(BaseModel):
    """Step 4: the final answer and the paragraphs it rests on."""

    answer: str
    para_ids: list[int] = Field(default_factory=list, max_length=16, description="ids of the <para> blocks used")

    @field_validator("answer")
    @classmethod
    def _clean(cls, v: str) -> str:
        return _short(v, 4000)
