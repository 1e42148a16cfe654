"""Schema-guided (constrained) JSON decoding for the embedded model.

The JSON *skeleton* (braces, keys, commas) comes from the schema and is forced into the model's
context; the model only fills leaf values through token masks (string bodies, digits, a choice
among literals). The result is a Python value, serialised with ``json.dumps``, so the output is
always syntactically valid JSON with every schema property present, even when the token budget
runs out (remaining leaves then get minimal values without calling the model).
"""

from __future__ import annotations

import json
from typing import Any, Protocol

import torch

MAX_DEPTH = 4
DEFAULT_STRING_TOKENS = 64
DEFAULT_MAX_ITEMS = 5
FREE_OBJECT_MAX_KEYS = 4


class DecoderLike(Protocol):
    """What the JSON generator needs from the decoding loop (see embedded_server.Decoder)."""

    exhausted: bool
    max_new: int
    vocab: Any

    def step(self, mask: torch.Tensor) -> int: ...

    def peek(self, mask: torch.Tensor) -> int: ...

    def accept(self, tid: int) -> None: ...

    def force(self, text: str) -> None: ...

    def choose(self, options: list[str]) -> str: ...


def _bytes_to_unicode() -> dict[int, str]:
    """GPT-2 byte-level BPE byte -> printable unicode map."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1))
    bs += list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return {b: chr(c) for b, c in zip(bs, cs)}


class Vocab:
    """Per-token byte strings and the boolean masks the JSON generator uses."""

    def __init__(self, tokenizer: Any, size: int) -> None:
        inv = {c: b for b, c in _bytes_to_unicode().items()}
        special = set(tokenizer.all_special_ids) | set(getattr(tokenizer, "added_tokens_decoder", {}))
        pieces = tokenizer.convert_ids_to_tokens(list(range(len(tokenizer))))
        self.bytes: list[bytes] = []
        for i, piece in enumerate(pieces):
            if i in special or piece is None:
                self.bytes.append(b"")
            elif all(ch in inv for ch in piece):
                self.bytes.append(bytes(inv[ch] for ch in piece))
            else:
                self.bytes.append(tokenizer.decode([i]).encode("utf-8"))
        self.bytes += [b""] * (size - len(self.bytes))
        self.size = size

        def mask(pred: Any) -> torch.Tensor:
            return torch.tensor([bool(b) and pred(b) for b in self.bytes], dtype=torch.bool)

        def clean(b: bytes) -> bool:
            return all(c >= 0x20 and c not in (0x22, 0x5C) for c in b)

        self.str_body = mask(clean)
        self.str_end = mask(lambda b: b.endswith(b'"') and clean(b[:-1]))
        self.str_end_nonempty = self.str_end & mask(lambda b: len(b) > 1)
        self.digits = mask(lambda b: all(48 <= c <= 57 for c in b))
        self.minus = mask(lambda b: b == b"-")
        self.dot = mask(lambda b: b == b".")
        self.num_end = mask(lambda b: b[0] in b",}] \n\r\t")


def resolve(schema: Any, root: dict) -> dict:
    """Follow $ref / allOf / anyOf / oneOf / type lists down to one concrete subschema."""
    for _ in range(16):
        if not isinstance(schema, dict):
            return {}
        if "$ref" in schema:
            ref = schema["$ref"]
            node: Any = root
            for part in ref.lstrip("#/").split("/") if ref.startswith("#") else []:
                node = node.get(part, {}) if isinstance(node, dict) else {}
            rest = {k: v for k, v in schema.items() if k != "$ref"}
            schema = {**node, **rest} if isinstance(node, dict) else rest
            continue
        if "allOf" in schema:
            merged = {k: v for k, v in schema.items() if k != "allOf"}
            for sub in schema["allOf"]:
                merged = {**resolve(sub, root), **merged}
            schema = merged
            continue
        for key in ("anyOf", "oneOf"):
            if key in schema:
                branches = [b for b in schema[key] if resolve(b, root).get("type") != "null"]
                pick = branches[0] if branches else {"type": "null"}
                schema = {**{k: v for k, v in schema.items() if k != key}, **pick}
                break
        else:
            typ = schema.get("type")
            if isinstance(typ, list):
                non_null = [t for t in typ if t != "null"]
                schema = {**schema, "type": non_null[0] if non_null else "null"}
            return schema
    return schema


class JsonGenerator:
    """Generates one JSON value conforming (structurally) to a JSON schema."""

    def __init__(self, dec: DecoderLike, root: dict, string_tokens: int = DEFAULT_STRING_TOKENS) -> None:
        self.dec = dec
        self.root = root
        self.v = dec.vocab
        self.string_tokens = string_tokens

    def generate(self, schema: dict | None) -> Any:
        """Top-level value; no schema (json_object mode) means a free-form object."""
        schema = schema or {"type": "object"}
        leaves = self.count_leaves(schema, 0)
        # share the token budget so the whole value usually fits: a weak model rambles in strings
        self.string_tokens = max(8, min(self.string_tokens, self.dec.max_new // (leaves + 1)))
        return self.value(schema, 0)

    def count_leaves(self, schema: Any, depth: int) -> int:
        """Rough number of free string leaves (arrays count as 2 items, free objects as 4 fields)."""
        s = resolve(schema, self.root)
        if depth >= MAX_DEPTH or "enum" in s or "const" in s:
            return 0
        typ = s.get("type") or ("object" if "properties" in s else "array" if "items" in s else None)
        if typ == "array":
            return min(2, int(s.get("maxItems", 2))) * max(1, self.count_leaves(s.get("items", {}), depth + 1))
        if typ == "object" and s.get("properties"):
            return sum(self.count_leaves(v, depth + 1) for v in s["properties"].values())
        if typ == "object":
            return 2 * FREE_OBJECT_MAX_KEYS
        return 1 if typ in ("string", None) else 0

    def value(self, schema: Any, depth: int) -> Any:
        s = resolve(schema, self.root)
        if "const" in s:
            self.dec.force(json.dumps(s["const"]))
            return s["const"]
        if "enum" in s and s["enum"]:
            texts = [json.dumps(e) for e in s["enum"]]
            return s["enum"][texts.index(self.dec.choose(texts))]
        typ = s.get("type") or ("object" if "properties" in s else "array" if "items" in s else None)
        if typ == "string":
            return self.string(s)
        if typ in ("integer", "number"):
            return self.number(s, typ == "integer")
        if typ == "boolean":
            return self.dec.choose(["true", "false"]) == "true"
        if typ == "null":
            self.dec.force("null")
            return None
        if typ == "array":
            return self.array(s, depth)
        if typ == "object":
            return self.obj(s, depth)
        return self.any(depth)

    def any(self, depth: int) -> Any:
        """Untyped value: let the model pick the kind by its first character."""
        starts = ['"', "true", "false", "null", "-"] + list("0123456789")
        if depth < MAX_DEPTH - 1:
            starts += ["{", "["]
        first = self.dec.choose(starts)
        if first == '"':
            return self.string({}, opened=True)
        if first in ("true", "false"):
            return first == "true"
        if first == "null":
            return None
        if first == "{":
            return self.obj({"type": "object"}, depth, opened=True)
        if first == "[":
            return self.array({"type": "array"}, depth, opened=True)
        return self.number({}, integer=False, prefix=first)

    def string(self, s: dict, opened: bool = False) -> str:
        if not opened:
            self.dec.force('"')
        max_len = s.get("maxLength")
        min_len = int(s.get("minLength", 1))
        budget = self.string_tokens if max_len is None else min(self.string_tokens, int(max_len) + 2)
        out = bytearray()
        closed = False
        for _ in range(budget):
            if self.dec.exhausted or (max_len is not None and len(out) >= max_len):
                break
            end = self.v.str_end if len(out) >= min_len else self.v.str_end_nonempty
            tid = self.dec.step(self.v.str_body | end)
            piece = self.v.bytes[tid]
            if end[tid]:
                out += piece[:-1]
                closed = True
                break
            out += piece
        if not closed:
            self.dec.force('"')
        text = out.decode("utf-8", errors="ignore")
        return text[:max_len] if max_len is not None else text

    def number(self, s: dict, integer: bool, prefix: str = "") -> int | float:
        text = prefix
        for _ in range(16):
            if self.dec.exhausted:
                break
            allowed = self.v.digits.clone()
            if not text:
                allowed |= self.v.minus
            if text and text[-1].isdigit():
                allowed |= self.v.num_end
                if not integer and "." not in text:
                    allowed |= self.v.dot
            tid = self.dec.peek(allowed)
            if self.v.num_end[tid]:
                break
            self.dec.accept(tid)
            text += self.v.bytes[tid].decode()
        try:
            val: int | float = int(float(text)) if integer else float(text)
        except ValueError:
            val = 0
        if not integer and isinstance(val, float) and val.is_integer() and "." not in text:
            val = int(val)
        if "minimum" in s:
            val = max(val, s["minimum"])
        if "maximum" in s:
            val = min(val, s["maximum"])
        return val

    def array(self, s: dict, depth: int, opened: bool = False) -> list:
        if not opened:
            self.dec.force("[")
        max_items = int(s.get("maxItems", DEFAULT_MAX_ITEMS))
        min_items = min(max_items, int(s.get("minItems", 1)))
        items: list = []
        item_schema = s.get("items", {}) if depth < MAX_DEPTH else {"type": "string"}
        while len(items) < max_items:
            if len(items) >= min_items:
                if self.dec.exhausted or self.dec.choose([", ", "]"]) == "]":
                    return items
            elif items:
                self.dec.force(", ")
            items.append(self.value(item_schema, depth + 1))
        self.dec.force("]")
        return items

    def obj(self, s: dict, depth: int, opened: bool = False) -> dict:
        if not opened:
            self.dec.force("{")
        props = s.get("properties") or {}
        result: dict = {}
        if props:
            for i, (key, sub) in enumerate(props.items()):
                self.dec.force((", " if i else "") + json.dumps(key) + ": ")
                result[key] = self.value(sub, depth + 1)
            self.dec.force("}")
            return result
        extra = s.get("additionalProperties")
        sub = extra if isinstance(extra, dict) and depth < MAX_DEPTH else ({} if depth < MAX_DEPTH else {"type": "string"})
        while len(result) < FREE_OBJECT_MAX_KEYS:
            if result:
                if self.dec.exhausted or self.dec.choose([", ", "}"]) == "}":
                    return result
            key = self.string({"maxLength": 40})
            self.dec.force(": ")
            result[key or f"key{len(result)}"] = self.value(sub, depth + 1)
        self.dec.force("}")
        return result
