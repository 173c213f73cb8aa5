"""Node-level diff of two flow documents (pure): what the version history and a 409 conflict show."""

from __future__ import annotations

from typing import Any

import msgspec

from backend.flows.schemas import FlowDiff, NodeChange, NodeRef, WireRef
from proxus.flow import FlowDocument, FlowEdge, FlowNode

_MAX_PATHS = 200  # per node: enough to show; a rewritten config is reported as "config" anyway


def _child(path: str, key: str | int) -> str:
    if isinstance(key, int):
        return f"{path}[{key}]"
    return f"{path}.{key}" if key.isidentifier() else f"{path}[{msgspec.json.encode(key).decode()}]"


def _same_scalar(a: Any, b: Any) -> bool:
    # JSON has one number type: 1 and 1.0 are the same value; true is not 1.
    if isinstance(a, bool) or isinstance(b, bool):
        return type(a) is type(b) and a == b
    if isinstance(a, int | float) and isinstance(b, int | float):
        return bool(a == b)
    return type(a) is type(b) and a == b


def config_paths(a: Any, b: Any, path: str = "$", out: list[str] | None = None) -> list[str]:
    """JSON paths (relative to the config) of every leaf that differs between ``a`` and ``b``."""
    out = [] if out is None else out
    if len(out) >= _MAX_PATHS:
        return out
    if isinstance(a, dict) and isinstance(b, dict):
        for key in sorted(a.keys() | b.keys(), key=str):
            if key not in a or key not in b:
                out.append(_child(path, key))
            else:
                config_paths(a[key], b[key], _child(path, key), out)
    elif isinstance(a, list) and isinstance(b, list):
        for i in range(max(len(a), len(b))):
            if i >= len(a) or i >= len(b):
                out.append(_child(path, i))
            else:
                config_paths(a[i], b[i], _child(path, i), out)
    elif not _same_scalar(a, b):
        out.append(path)
    return out


def _ref(node: FlowNode) -> NodeRef:
    return NodeRef(id=node.id, type=node.type, label=node.label)


def _wire(edge: FlowEdge) -> WireRef:
    return WireRef(
        id=edge.id, source=edge.source, source_port=edge.source_port, target=edge.target, target_port=edge.target_port
    )


def _wire_key(edge: FlowEdge) -> tuple[str, str, str, str]:
    return (edge.source, edge.source_port, edge.target, edge.target_port)


def _node_change(old: FlowNode, new: FlowNode) -> NodeChange | None:
    fields: list[str] = []
    if old.type != new.type:
        fields.append("type")
    if old.type_version != new.type_version:
        fields.append("type_version")
    if old.label != new.label:
        fields.append("label")
    paths = config_paths(old.config, new.config)  # not `!=`: in Python True == 1, in a config it is not
    if paths:
        fields.append("config")
    if old.position != new.position:
        fields.append("position")
    if old.edge != new.edge:
        fields.append("edge")
    if not fields:
        return None
    return NodeChange(id=new.id, type=new.type, label=new.label, fields=fields, config_paths=paths)


def diff_documents(flow_id: str, from_version: int, old: FlowDocument, to_version: int, new: FlowDocument) -> FlowDiff:
    """What changed from ``old`` to ``new``: nodes by id, wires by (source, port, target, port)."""
    old_nodes = {n.id: n for n in old.nodes}
    new_nodes = {n.id: n for n in new.nodes}
    added = [_ref(n) for n in new.nodes if n.id not in old_nodes]
    removed = [_ref(n) for n in old.nodes if n.id not in new_nodes]
    changed = [
        change for n in new.nodes if n.id in old_nodes and (change := _node_change(old_nodes[n.id], n)) is not None
    ]
    old_wires = {_wire_key(e): e for e in old.edges}
    new_wires = {_wire_key(e): e for e in new.edges}
    added_wires = [_wire(e) for k, e in new_wires.items() if k not in old_wires]
    removed_wires = [_wire(e) for k, e in old_wires.items() if k not in new_wires]
    other = [
        name
        for name, differs in (
            ("name", old.name != new.name),
            ("metadata", old.metadata != new.metadata),
            ("groups", old.groups != new.groups),
            ("comments", old.comments != new.comments),
        )
        if differs
    ]
    return FlowDiff(
        flow_id=flow_id,
        from_version=from_version,
        to_version=to_version,
        added_nodes=added,
        removed_nodes=removed,
        changed_nodes=changed,
        added_wires=added_wires,
        removed_wires=removed_wires,
        other=other,
        identical=not (added or removed or changed or added_wires or removed_wires or other),
    )
