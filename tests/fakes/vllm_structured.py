"""Structured outputs of the fake `vllm serve`: an answer that satisfies the request's JSON schema.

vLLM constrains decoding to `response_format` ({"type": "json_schema", "json_schema": {"schema": ...}} or
{"type": "json_object"}), so a client always gets JSON of that shape (unless max_tokens cuts it off).
The fake builds the plainest value the schema allows: the first of an enum, the middle of a number's
range, a short sentence for a string. The classifier's rerank asks this way.
"""
from __future__ import annotations

import json

SENTENCE = "The stand-in engine picked the first allowed value."


def schema_of(body: dict) -> dict | None:
    """The schema the answer must follow, {} for any JSON object, None for free text."""
    fmt = body.get("response_format")
    if not isinstance(fmt, dict):
        return None
    if fmt.get("type") == "json_object":
        return {}
    if fmt.get("type") == "json_schema":
        spec = fmt.get("json_schema")
        schema = spec.get("schema") if isinstance(spec, dict) else None
        return schema if isinstance(schema, dict) else {}
    return None


def answer(schema: dict) -> str:
    return json.dumps(instance(schema) if schema else {}, ensure_ascii=False)


def instance(schema: dict):
    if "const" in schema:
        return schema["const"]
    if schema.get("enum"):
        return schema["enum"][0]
    for key in ("anyOf", "oneOf", "allOf"):
        if schema.get(key):
            return instance(schema[key][0])
    kind = schema.get("type", "object")
    if isinstance(kind, list):
        kind = kind[0]
    if kind == "object":
        return {name: instance(sub) for name, sub in (schema.get("properties") or {}).items()}
    if kind == "array":
        return [instance(schema.get("items") or {}) for _ in range(schema.get("minItems", 0))]
    if kind in ("number", "integer"):
        low, high = schema.get("minimum"), schema.get("maximum")
        value = (low + high) / 2 if low is not None and high is not None else low if low is not None else (
            high if high is not None else 0)
        return int(value) if kind == "integer" else value
    if kind == "string":
        return SENTENCE[:schema.get("maxLength", len(SENTENCE))].rstrip()
    if kind == "boolean":
        return True
    return None
