"""Schema-driven replies for the scripted server: a minimal valid instance of whatever JSON schema a
request asks for (from `response_format` or from the schema text in the prompt), with per-schema
overrides. Lets an end-to-end test script only the replies it cares about."""

from __future__ import annotations

from typing import Any, Callable

from tests.fakes.openai_server import ScriptedLLM, request_schema


def instance(schema: dict, defs: dict | None = None, name: str = "x") -> Any:
    """A small valid instance of `schema` (pydantic-style JSON schema)."""
    defs = defs if defs is not None else schema.get("$defs", {})
    if "$ref" in schema:
        return instance(defs[schema["$ref"].split("/")[-1]], defs, name)
    if "anyOf" in schema:
        non_null = [s for s in schema["anyOf"] if s.get("type") != "null"]
        return instance(non_null[0], defs, name) if non_null else None
    if "enum" in schema:
        return schema["enum"][0]
    if "const" in schema:
        return schema["const"]
    if "default" in schema and schema["default"] not in (None, [], {}, ""):
        return schema["default"]
    t = schema.get("type")
    if t == "object" or "properties" in schema:
        props = schema.get("properties", {})
        return {k: instance(v, defs, k) for k, v in props.items()}
    if t == "array":
        n = max(1, schema.get("minItems", 1))
        return [instance(schema.get("items", {"type": "string"}), defs, name) for _ in range(n)]
    if t == "integer":
        lo = schema.get("minimum", schema.get("exclusiveMinimum", 0) + 1 if "exclusiveMinimum" in schema else 1)
        return int(max(lo, min(schema.get("maximum", lo), lo)))
    if t == "number":
        return float(schema.get("minimum", 1.0))
    if t == "boolean":
        return True
    return f"{name} text"


def autoreply(overrides: dict[str, Any] | None = None) -> Callable[[dict], Any]:
    """A reply callable: overrides[schema title] (a value or callable(body, schema)) else a minimal instance."""
    overrides = overrides or {}

    def reply(body: dict) -> Any:
        schema = request_schema(body)
        if schema is None:
            o = overrides.get("text")
            return (o(body, None) if callable(o) else o) if o is not None else "plain text reply"
        title = schema.get("title", "")
        if title in overrides:
            o = overrides[title]
            return o(body, schema) if callable(o) else o
        return instance(schema)

    return reply


def install(srv: ScriptedLLM, overrides: dict[str, Any] | None = None) -> ScriptedLLM:
    """Answer every key (schema names and plain text) from `autoreply(overrides)`."""
    fn = autoreply(overrides)

    class _Any(dict):
        def get(self, key, default=None):  # every key resolves to the auto-replier
            return dict.get(self, key) or [fn]

    srv.script = _Any(srv.script)
    return srv
