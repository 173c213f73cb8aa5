"""Template placeholders: ``{{name}}`` inside the string values of a flow document (pure functions).

A string that is *exactly* one placeholder (``"{{port}}"``, spaces inside the braces allowed) is
replaced by the parameter's typed value: a number stays a number, a boolean a boolean. When that
value is ``null`` (an optional parameter left empty) the key is removed from its object, so the
node type's default -- or a managed device's setting -- applies; inside a list it stays ``null``.
A placeholder inside a longer string (``"{{line}}/temperature"``) is substituted as text.
Text that merely looks similar (``{{ and }}`` in an alarm message) is not a placeholder.

Placeholders may appear wherever a value is a user's choice -- node labels, configs, placement,
metadata, comments, group labels, the dashboard -- but not in the flow's structure (ids, types,
type versions, wires), which must stay stable for the editor and the compiler.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from proxus.diagnostics import json_path

PLACEHOLDER = re.compile(r"\{\{\s*([A-Za-z_][A-Za-z0-9_]*)\s*\}\}")
_WHOLE = re.compile(r"^\s*\{\{\s*([A-Za-z_][A-Za-z0-9_]*)\s*\}\}\s*$")

# Where a placeholder may not stand in a flow document (paths as tuples of keys/indices; "*" any).
_STRUCTURAL: tuple[tuple[str, ...], ...] = (
    ("format",),
    ("schema_version",),
    ("id",),
    ("name",),
    ("version",),
    ("nodes", "*", "id"),
    ("nodes", "*", "type"),
    ("nodes", "*", "type_version"),
    ("edges",),
    ("groups", "*", "id"),
    ("groups", "*", "nodes"),
    ("comments", "*", "id"),
)


def placeholder(name: str) -> str:
    return "{{" + name + "}}"


@dataclass(frozen=True, slots=True)
class Occurrence:
    """A placeholder found at ``path`` (a JSON path); ``whole``: it is the entire string value."""

    name: str
    path: str
    parts: tuple[str | int, ...]
    whole: bool
    in_key: bool = False


def find(value: Any, parts: tuple[str | int, ...] = ()) -> Iterator[Occurrence]:
    """Every placeholder in the string values (and, to refuse them, the keys) of ``value``."""
    if isinstance(value, str):
        whole = _WHOLE.match(value)
        for match in PLACEHOLDER.finditer(value):
            yield Occurrence(match.group(1), json_path(*parts), parts, whole is not None)
    elif isinstance(value, dict):
        for key, item in value.items():
            if isinstance(key, str) and PLACEHOLDER.search(key):
                for match in PLACEHOLDER.finditer(key):
                    yield Occurrence(match.group(1), json_path(*parts, key), (*parts, key), False, in_key=True)
            yield from find(item, (*parts, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from find(item, (*parts, index))


def is_structural(parts: tuple[str | int, ...]) -> bool:
    """Whether a document location is part of the flow's structure (no placeholders there)."""
    for pattern in _STRUCTURAL:
        if len(parts) >= len(pattern) and all(p == "*" or p == parts[i] for i, p in enumerate(pattern)):
            return True
    return False


_REMOVE = object()


def as_text(value: Any) -> str:
    """How a typed value reads inside a longer string."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def substitute(value: Any, values: dict[str, Any]) -> Any:
    """A copy of ``value`` with every placeholder replaced (names missing from ``values`` are kept)."""
    out = _substitute(value, values)
    return None if out is _REMOVE else out


def _substitute(value: Any, values: dict[str, Any]) -> Any:
    if isinstance(value, str):
        whole = _WHOLE.match(value)
        if whole is not None and whole.group(1) in values:
            typed = values[whole.group(1)]
            return _REMOVE if typed is None else typed
        if "{{" not in value:
            return value
        return PLACEHOLDER.sub(
            lambda m: as_text(values[m.group(1)]) if m.group(1) in values else m.group(0),
            value,
        )
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        for key, item in value.items():
            replaced = _substitute(item, values)
            if replaced is not _REMOVE:
                out[key] = replaced
        return out
    if isinstance(value, list):
        return [None if (r := _substitute(item, values)) is _REMOVE else r for item in value]
    return value


# -- JSON paths of parameter targets -----------------------------------------------------------

_TOKEN = re.compile(r"""\.([A-Za-z_][A-Za-z0-9_-]*)|\[(\d+)\]|\["((?:[^"\\]|\\.)*)"\]|\['([^']*)'\]""")


class PathError(ValueError):
    """A target path that cannot be parsed or does not lead anywhere."""


def parse_path(path: str) -> tuple[str | int, ...]:
    """``$.nodes[2].config.high`` → ``("nodes", 2, "config", "high")``; ``["key"]`` for odd keys."""
    if not path.startswith("$"):
        raise PathError("a path starts with $, e.g. $.nodes[0].config.high")
    parts: list[str | int] = []
    pos = 1
    while pos < len(path):
        match = _TOKEN.match(path, pos)
        if match is None:
            raise PathError(f"cannot read the path at character {pos + 1}: {path[pos : pos + 20]!r}")
        name, index, quoted, single = match.groups()
        if name is not None:
            parts.append(name)
        elif index is not None:
            parts.append(int(index))
        elif quoted is not None:
            parts.append(re.sub(r"\\(.)", r"\1", quoted))
        else:
            parts.append(single)
        pos = match.end()
    if not parts:
        raise PathError("the path names no field")
    return tuple(parts)


def get_at(document: Any, parts: tuple[str | int, ...]) -> tuple[bool, Any]:
    """(found, value) at ``parts``."""
    current = document
    for part in parts:
        in_list = isinstance(part, int) and isinstance(current, list) and 0 <= part < len(current)
        if in_list or (isinstance(part, str) and isinstance(current, dict) and part in current):
            current = current[part]
        else:
            return False, None
    return True, current


def set_at(document: Any, parts: tuple[str | int, ...], value: Any) -> None:
    """Set the value at ``parts`` (the last key may be new; everything before it must exist)."""
    found, parent = get_at(document, parts[:-1])
    last = parts[-1]
    if not found:
        raise PathError("the path does not exist in the document")
    if isinstance(last, int):
        if not isinstance(parent, list) or not 0 <= last < len(parent):
            raise PathError("the path does not exist in the document")
        parent[last] = value
    else:
        if not isinstance(parent, dict):
            raise PathError("the path does not lead into an object")
        parent[last] = value
