"""Getting a pydantic object out of text a model wrote: extract, repair, validate."""

from __future__ import annotations

import json
import re
from typing import TypeVar

from json_repair import repair_json
from pydantic import BaseModel, ValidationError

T = TypeVar("T", bound=BaseModel)

_FENCE = re.compile(r"```(?:json)?\s*(.*?)```", re.DOTALL)


def extract_json_text(text: str) -> str:
    """The most plausible JSON object in `text`: a fenced block, else the outermost {...}."""
    m = _FENCE.search(text)
    if m:
        return m.group(1).strip()
    start = text.find("{")
    end = text.rfind("}")
    if start != -1 and end > start:
        return text[start : end + 1]
    if start != -1:  # truncated object: let the repairer close it
        return text[start:]
    return text.strip()


def parse_model(text: str, schema: type[T]) -> T:
    """Parse `text` into `schema`; raises ValueError with a message fit to send back to the model."""
    raw = extract_json_text(text)
    try:
        data = json.loads(raw)
    except json.JSONDecodeError:
        repaired = repair_json(raw, return_objects=True)
        if not isinstance(repaired, dict) or not repaired:
            raise ValueError("the reply contained no JSON object") from None
        data = repaired
    if not isinstance(data, dict):
        raise ValueError(f"expected a JSON object, got {type(data).__name__}")
    try:
        return schema.model_validate(data)
    except ValidationError as exc:
        errs = "; ".join(f"{'.'.join(str(p) for p in e['loc']) or '(root)'}: {e['msg']}" for e in exc.errors()[:8])
        raise ValueError(f"the JSON does not match the schema: {errs}") from None


def schema_for_prompt(schema: type[BaseModel]) -> str:
    return json.dumps(schema.model_json_schema(), indent=1)
