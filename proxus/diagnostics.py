"""Diagnostics: what validation and compilation say about a flow, each tied to where it applies."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Literal

import msgspec

Severity = Literal["error", "warning"]


class Diagnostic(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """One problem in a flow document.

    ``path`` is a JSON path into the flow document (``$.nodes[3].config.registers[0].address``) so
    the editor can put the marker on the node and the form field; ``line``/``column`` locate the
    problem inside a text field (an expression or UDF code) when one applies.
    """

    severity: Severity
    code: str
    message: str
    path: str = "$"
    node_id: str | None = None
    label: str | None = None
    edge_id: str | None = None
    hint: str = ""
    line: int | None = None
    column: int | None = None

    def render(self) -> str:
        """A readable, one-or-two-line form for terminals."""
        where = []
        if self.node_id is not None:
            where.append(f"node {self.node_id}" + (f' "{self.label}"' if self.label else ""))
        if self.edge_id is not None:
            where.append(f"wire {self.edge_id}")
        where.append(self.path)
        if self.line is not None:
            where.append(f"line {self.line}" + (f", column {self.column}" if self.column else ""))
        text = f"{self.severity:<7} [{self.code}] {' · '.join(where)}: {self.message}"
        if self.hint:
            text += f"\n        hint: {self.hint}"
        return text


def has_errors(diagnostics: Iterable[Diagnostic]) -> bool:
    return any(d.severity == "error" for d in diagnostics)


def json_path(*parts: str | int) -> str:
    """Build a JSON path: ``json_path("nodes", 3, "config")`` → ``$.nodes[3].config``."""
    out = "$"
    for part in parts:
        if isinstance(part, int):
            out += f"[{part}]"
        elif part.isidentifier():
            out += f".{part}"
        else:
            out += f"[{msgspec.json.encode(part).decode()}]"
    return out


def join_path(base: str, relative: str) -> str:
    """Append a path relative to some object (``$.a[1]``) to the path of that object."""
    if relative in ("", "$"):
        return base
    return base + relative[1:] if relative.startswith("$") else f"{base}.{relative}"
