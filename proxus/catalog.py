"""The node catalog: every node type the platform knows, loaded once and never mutated.

Built-in types and third-party node packs register the same way, through the ``proxus.nodes``
entry point group; an entry point names a :class:`~nodes.spec.NodeSpec` or an iterable of them.
A catalog is an immutable value: a Hub or an edge builds one at start and passes it around.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Iterator, Mapping
from importlib.metadata import entry_points
from types import MappingProxyType
from typing import Any

import msgspec

from nodes.spec import NodeSpec

ENTRY_POINT_GROUP = "proxus.nodes"


class CatalogError(RuntimeError):
    """The catalog cannot be built (duplicate type id, broken node pack)."""


class Catalog:
    """Node specs keyed by ``(type_id, version)``; the newest version of a type is its default."""

    __slots__ = ("_latest", "_origins", "_specs")

    def __init__(self, specs: Iterable[NodeSpec] | Iterable[tuple[NodeSpec, str]]) -> None:
        by_key: dict[tuple[str, int], NodeSpec] = {}
        origins: dict[tuple[str, int], str] = {}
        for item in specs:
            spec, origin = item if isinstance(item, tuple) else (item, "<direct>")
            key = (spec.type_id, spec.version)
            if key in by_key:
                raise CatalogError(
                    f"duplicate node type {spec.type_id} v{spec.version}: declared by {origins[key]} and by {origin}"
                )
            by_key[key] = spec
            origins[key] = origin
        latest: dict[str, NodeSpec] = {}
        for spec in by_key.values():
            if spec.type_id not in latest or latest[spec.type_id].version < spec.version:
                latest[spec.type_id] = spec
        self._specs: Mapping[tuple[str, int], NodeSpec] = MappingProxyType(by_key)
        self._latest: Mapping[str, NodeSpec] = MappingProxyType(dict(sorted(latest.items())))
        self._origins: Mapping[tuple[str, int], str] = MappingProxyType(origins)

    @classmethod
    def load(cls) -> Catalog:
        """Build the catalog from every installed ``proxus.nodes`` entry point."""
        found: list[tuple[NodeSpec, str]] = []
        for ep in sorted(entry_points(group=ENTRY_POINT_GROUP), key=lambda e: e.name):
            origin = f"entry point {ep.name!r} ({ep.value})"
            try:
                loaded = ep.load()
            except Exception as exc:  # a broken node pack must say which one it is
                raise CatalogError(f"cannot load node pack {origin}: {exc}") from exc
            items = [loaded] if isinstance(loaded, NodeSpec) else list(loaded)
            for spec in items:
                if not isinstance(spec, NodeSpec):
                    raise CatalogError(f"{origin} yielded {spec!r}, which is not a NodeSpec")
                found.append((spec, origin))
        if not found:
            raise CatalogError(
                "no node types found: is Proxus installed (pip install -e .)? "
                f"Node types register through the '{ENTRY_POINT_GROUP}' entry point group."
            )
        return cls(found)

    def get(self, type_id: str, version: int | None = None) -> NodeSpec | None:
        if version is None:
            return self._latest.get(type_id)
        return self._specs.get((type_id, version))

    def versions(self, type_id: str) -> list[int]:
        return sorted(v for (t, v) in self._specs if t == type_id)

    def suggest(self, type_id: str) -> list[str]:
        """Known type ids that look like a mistyped one."""
        return difflib.get_close_matches(type_id, list(self._latest), n=3, cutoff=0.6)

    def __iter__(self) -> Iterator[NodeSpec]:
        return iter(self._latest.values())

    def __len__(self) -> int:
        return len(self._latest)

    def all_versions(self) -> Iterator[NodeSpec]:
        return iter(self._specs.values())

    def describe(self) -> list[dict[str, Any]]:
        """The catalog as the editor consumes it (cf. ComfyUI's ``/object_info``)."""
        return [describe_spec(spec) for spec in self.all_versions()]


def describe_spec(spec: NodeSpec) -> dict[str, Any]:
    return {
        "type": spec.type_id,
        "version": spec.version,
        "category": spec.category.value,
        "title": spec.title,
        "description": spec.description,
        "icon": spec.icon,
        "stateful": spec.stateful,
        "device_protocol": spec.device_protocol,
        "inputs": [
            {
                "name": p.name,
                "accepts": sorted(k.value for k in p.accepts),
                "description": p.description,
                "required": p.required,
            }
            for p in spec.inputs
        ],
        "outputs": [{"name": p.name, "kind": p.kind.value, "description": p.description} for p in spec.outputs],
        "config_schema": spec.config_schema(),
        "example": msgspec.to_builtins(spec.example),
    }
