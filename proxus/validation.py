"""Decode untrusted JSON-like data into msgspec structs, reporting *every* problem.

msgspec decodes fast but stops at the first error. Flows are imported by people who want the
whole list at once, so on failure we run the JSON Schema that msgspec generates from the very
same struct through ``jsonschema`` and report each violation with its path. The struct stays the
single declaration of the shape; the fast path costs one ``msgspec.convert``.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from functools import cache
from typing import Any, TypeVar

import jsonschema
import msgspec

T = TypeVar("T")

_AT_PATH = re.compile(r" - at `(\$[^`]*)`$")


class Problem(msgspec.Struct, frozen=True):
    """A violation at ``path`` (a JSON path relative to the decoded object)."""

    path: str
    message: str


@cache
def _validator(type_: Any) -> jsonschema.protocols.Validator:
    schema = msgspec.json.schema(type_)
    cls = jsonschema.validators.validator_for(schema)
    validator: jsonschema.protocols.Validator = cls(schema)
    return validator


def _path(parts: Any) -> str:
    out = "$"
    for part in parts:
        out += (
            f"[{part}]"
            if isinstance(part, int)
            else (f".{part}" if str(part).isidentifier() else f"[{msgspec.json.encode(part).decode()}]")
        )
    return out


_TYPE_NAMES = {
    "integer": "a whole number",
    "number": "a number",
    "string": "text",
    "boolean": "true or false",
    "object": "an object",
    "array": "a list",
    "null": "null",
}


def _describe(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true/false"
    if isinstance(value, int | float):
        return f"the number {value!r}"
    if isinstance(value, str):
        return f'the text "{value[:40]}"' if len(value) <= 40 else "a long text"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "an object"
    return type(value).__name__


def _message(error: jsonschema.ValidationError) -> str:
    kind = error.validator
    arg = error.validator_value
    if kind == "type":
        kinds = arg if isinstance(arg, list) else [arg]
        wanted = " or ".join(_TYPE_NAMES.get(str(k)) or str(k) for k in kinds)
        return f"expected {wanted}, got {_describe(error.instance)}"
    if kind == "required":
        missing = [name for name in arg if name not in (error.instance or {})]
        return "missing required field " + ", ".join(f"'{m}'" for m in missing)
    if kind == "additionalProperties":
        extra = sorted(set(error.instance) - set(error.schema.get("properties", {})))
        return "unknown field " + ", ".join(f"'{e}'" for e in extra)
    if kind == "enum":
        return f"must be one of {', '.join(repr(a) for a in arg)}; got {_describe(error.instance)}"
    if kind == "const":
        return f"must be {arg!r}; got {_describe(error.instance)}"
    if kind in ("minimum", "exclusiveMinimum", "maximum", "exclusiveMaximum"):
        words = {
            "minimum": "at least",
            "exclusiveMinimum": "greater than",
            "maximum": "at most",
            "exclusiveMaximum": "less than",
        }
        return f"must be {words[kind]} {arg}; got {error.instance!r}"
    if kind in ("minLength", "maxLength"):
        return f"must be {'at least' if kind == 'minLength' else 'at most'} {arg} characters long"
    if kind in ("minItems", "maxItems"):
        return f"must have {'at least' if kind == 'minItems' else 'at most'} {arg} items"
    if kind == "pattern":
        return f"does not match the required pattern {arg}"
    if kind == "anyOf":
        # A union such as `str | None`: say what the branches wanted, not each branch's failure.
        kinds = [str(s["type"]) for s in arg if isinstance(s, dict) and "type" in s]
        if kinds:
            wanted = " or ".join(_TYPE_NAMES.get(k) or k for k in kinds)
            return f"expected {wanted}, got {_describe(error.instance)}"
    return str(error.message)


def _problems(type_: Any, data: Any) -> Iterator[Problem]:
    for error in sorted(_validator(type_).iter_errors(data), key=lambda e: list(map(str, e.absolute_path))):
        yield Problem(_path(error.absolute_path), _message(error))


def decode(data: Any, type_: type[T]) -> tuple[T | None, list[Problem]]:
    """Convert ``data`` to ``type_``; on failure return every problem found."""
    try:
        return msgspec.convert(data, type_), []
    except msgspec.ValidationError as exc:
        problems = list(_problems(type_, data))
        if not problems:
            # Something the JSON Schema cannot express (e.g. a __post_init__ check): use msgspec's.
            text = str(exc)
            match = _AT_PATH.search(text)
            path = match.group(1) if match else "$"
            message = _AT_PATH.sub("", text)
            problems = [Problem(path, message[:1].lower() + message[1:])]
        return None, problems
