"""The flow document: what the editor saves and what export and import exchange.

A flow is versioned JSON with a format tag and a schema version. Nodes have stable ids, a type
and type version from the catalog, a position, a label and a config; wires join an output port
to an input port. Secrets never appear in it: a node refers to a stored credential by id.

:func:`load_flow` is the import path. It validates fully and answers with every problem it finds,
each tied to a node id (where one applies) and a JSON path. It never executes anything: configs
are only decoded and checked, UDF code is only parsed.
"""

from __future__ import annotations

from collections import Counter
from typing import Annotated, Any, Literal

import msgspec

from nodes.spec import NodeSpec
from proxus.catalog import Catalog
from proxus.diagnostics import Diagnostic, join_path, json_path
from proxus.validation import decode

FLOW_FORMAT = "proxus.flow"
FLOW_SCHEMA_VERSION = 1
MAX_FLOW_BYTES = 32 * 1024 * 1024

# Flow, node and edge ids end up in NATS subjects, KV keys and stream names: no dots or colons.
SafeId = Annotated[
    str,
    msgspec.Meta(
        pattern=r"^[A-Za-z0-9_-]{1,64}$",
        description="Stable id: letters, digits, '_' and '-', at most 64 characters",
    ),
]

Identifier = Annotated[
    str,
    msgspec.Meta(
        pattern=r"^[A-Za-z0-9_][A-Za-z0-9_.:-]{0,63}$",
        description="Stable id: letters, digits, '_', '.', ':', '-', at most 64 characters",
    ),
]


class Position(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """Where a node or comment sits on the canvas."""

    x: Annotated[float, msgspec.Meta(description="Canvas x coordinate")] = 0.0
    y: Annotated[float, msgspec.Meta(description="Canvas y coordinate")] = 0.0


class FlowNode(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True, omit_defaults=True):
    """A node on the canvas: an instance of a catalog node type."""

    id: SafeId
    type: Annotated[str, msgspec.Meta(min_length=1, description="Catalog type id, e.g. 'transform.scale'")]
    type_version: Annotated[int, msgspec.Meta(ge=1, description="Version of the node type")] = 1
    label: Annotated[str, msgspec.Meta(max_length=200, description="Name shown on the canvas")] = ""
    position: Annotated[Position, msgspec.Meta(description="Canvas position")] = msgspec.field(default_factory=Position)
    config: Annotated[dict[str, Any], msgspec.Meta(description="The node type's config")] = {}
    edge: Annotated[
        Annotated[str, msgspec.Meta(pattern=r"^[A-Za-z0-9_-]{1,64}$")] | None,
        msgspec.Meta(description="Edge gateway a source node runs on (default: its device's, or the flow's)"),
    ] = None


class FlowEdge(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True, omit_defaults=True):
    """A wire from an output port of one node to an input port of another."""

    id: Identifier
    source: Annotated[str, msgspec.Meta(description="Id of the node the wire leaves")]
    target: Annotated[str, msgspec.Meta(description="Id of the node the wire enters")]
    source_port: Annotated[str, msgspec.Meta(description="Output port name")] = "out"
    target_port: Annotated[str, msgspec.Meta(description="Input port name")] = "in"


class Group(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True, omit_defaults=True):
    """A named frame around nodes on the canvas (no effect on the plan)."""

    id: Identifier
    label: Annotated[str, msgspec.Meta(description="Title of the group")] = ""
    nodes: Annotated[list[str], msgspec.Meta(description="Ids of the nodes in the group")] = []
    color: Annotated[str, msgspec.Meta(description="CSS colour of the frame")] = ""


class Comment(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True, omit_defaults=True):
    """A sticky note on the canvas (no effect on the plan)."""

    id: Identifier
    text: Annotated[str, msgspec.Meta(max_length=10_000, description="Note text (Markdown)")] = ""
    position: Annotated[Position, msgspec.Meta(description="Canvas position")] = msgspec.field(default_factory=Position)


class FlowMetadata(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True, omit_defaults=True):
    """Descriptive data about a flow."""

    description: Annotated[str, msgspec.Meta(description="What the flow does")] = ""
    default_edge: Annotated[
        Annotated[str, msgspec.Meta(pattern=r"^[A-Za-z0-9_-]{1,64}$")] | None,
        msgspec.Meta(description="Edge for source nodes that name none (default 'local')"),
    ] = None
    tags: Annotated[list[str], msgspec.Meta(description="Free labels for search")] = []


class FlowDocument(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True, omit_defaults=True):
    """A Proxus flow, as saved, exported and imported."""

    format: Annotated[Literal["proxus.flow"], msgspec.Meta(description="Format tag")]
    schema_version: Annotated[int, msgspec.Meta(ge=1, description="Flow document schema version")]
    id: SafeId
    name: Annotated[str, msgspec.Meta(min_length=1, max_length=200, description="Flow name")]
    version: Annotated[int, msgspec.Meta(ge=1, description="Saved version of the flow")] = 1
    metadata: Annotated[FlowMetadata, msgspec.Meta(description="Flow metadata")] = msgspec.field(
        default_factory=FlowMetadata
    )
    nodes: Annotated[list[FlowNode], msgspec.Meta(description="Nodes")] = []
    edges: Annotated[list[FlowEdge], msgspec.Meta(description="Wires")] = []
    groups: Annotated[list[Group], msgspec.Meta(description="Node groups")] = []
    comments: Annotated[list[Comment], msgspec.Meta(description="Canvas comments")] = []


DEFAULT_EDGE = "local"


def _node_at(raw: Any, path: str) -> tuple[str | None, str | None]:
    """The id and label of the node a ``$.nodes[i]...`` path points into, if any."""
    if not path.startswith("$.nodes[") or not isinstance(raw, dict):
        return None, None
    try:
        index = int(path[len("$.nodes[") : path.index("]")])
        node = raw["nodes"][index]
    except (ValueError, IndexError, KeyError, TypeError):
        return None, None
    if not isinstance(node, dict):
        return None, None
    node_id, label = node.get("id"), node.get("label")
    return (node_id if isinstance(node_id, str) else None), (label if isinstance(label, str) else None)


def _json_error(data: bytes, exc: msgspec.DecodeError) -> Diagnostic:
    text = str(exc)
    line = column = None
    marker = "(byte "
    if marker in text:
        try:
            offset = int(text[text.rindex(marker) + len(marker) : text.rindex(")")])
            line = data.count(b"\n", 0, offset) + 1
            column = offset - (data.rfind(b"\n", 0, offset) + 1) + 1
        except ValueError:
            pass
    return Diagnostic(
        severity="error",
        code="invalid_json",
        message=f"the file is not valid JSON: {text}",
        line=line,
        column=column,
        hint="export the flow again, or check the file in a JSON editor",
    )


def load_flow(data: bytes | str | dict[str, Any]) -> tuple[FlowDocument | None, list[Diagnostic]]:
    """Parse and structurally validate a flow document.

    Returns the document (None when its shape is invalid) and every problem found. Graph and
    config checks are the compiler's: use :func:`proxus.compiler.validate_flow` for the full set.
    """
    if isinstance(data, str):
        data = data.encode()
    if isinstance(data, bytes):
        if len(data) > MAX_FLOW_BYTES:
            return None, [
                Diagnostic(
                    severity="error",
                    code="too_large",
                    message=f"the document is {len(data):,} bytes; the limit is {MAX_FLOW_BYTES:,}",
                )
            ]
        try:
            raw: Any = msgspec.json.decode(data)
        except msgspec.DecodeError as exc:
            return None, [_json_error(data, exc)]
    else:
        raw = data

    if not isinstance(raw, dict):
        return None, [Diagnostic(severity="error", code="invalid_document", message="a flow document is a JSON object")]
    version_problem = _check_envelope(raw)
    if version_problem is not None:
        return None, [version_problem]

    doc, problems = decode(raw, FlowDocument)
    diagnostics = []
    for problem in problems:
        node_id, label = _node_at(raw, problem.path)
        diagnostics.append(
            Diagnostic(
                severity="error",
                code="invalid_document",
                message=problem.message,
                path=problem.path,
                node_id=node_id,
                label=label,
            )
        )
    if doc is None:
        return None, diagnostics
    diagnostics.extend(_check_identity(doc))
    return doc, diagnostics


def _check_envelope(raw: dict[str, Any]) -> Diagnostic | None:
    """Refuse documents that are not flows, or are flows from a newer Proxus, before anything else."""
    fmt = raw.get("format")
    if fmt != FLOW_FORMAT:
        return Diagnostic(
            severity="error",
            code="wrong_format",
            message=f"this is not a Proxus flow (format is {fmt!r}, expected {FLOW_FORMAT!r})",
            path="$.format",
            hint="templates and plans have their own import; export a flow from the editor to get this file",
        )
    version = raw.get("schema_version")
    if isinstance(version, int) and not isinstance(version, bool) and version > FLOW_SCHEMA_VERSION:
        return Diagnostic(
            severity="error",
            code="newer_schema",
            message=f"the flow uses schema version {version}; this Proxus reads up to {FLOW_SCHEMA_VERSION}",
            path="$.schema_version",
            hint="upgrade Proxus, or export the flow from the newer Hub in an older format",
        )
    return None


def _check_identity(doc: FlowDocument) -> list[Diagnostic]:
    """Ids must be unique within their kind; group members must exist."""
    out: list[Diagnostic] = []
    node_counts = Counter(n.id for n in doc.nodes)
    seen: set[str] = set()
    for i, node in enumerate(doc.nodes):
        if node_counts[node.id] > 1 and node.id in seen:
            out.append(
                Diagnostic(
                    severity="error",
                    code="duplicate_node_id",
                    message=f"node id {node.id!r} is used {node_counts[node.id]} times",
                    path=json_path("nodes", i, "id"),
                    node_id=node.id,
                    label=node.label or None,
                    hint="give every node its own id",
                )
            )
        seen.add(node.id)
    edge_counts = Counter(e.id for e in doc.edges)
    seen = set()
    for i, edge in enumerate(doc.edges):
        if edge_counts[edge.id] > 1 and edge.id in seen:
            out.append(
                Diagnostic(
                    severity="error",
                    code="duplicate_edge_id",
                    message=f"wire id {edge.id!r} is used {edge_counts[edge.id]} times",
                    path=json_path("edges", i, "id"),
                    edge_id=edge.id,
                    node_id=edge.target,
                )
            )
        seen.add(edge.id)
    for gi, group in enumerate(doc.groups):
        for ni, member in enumerate(group.nodes):
            if member not in node_counts:
                out.append(
                    Diagnostic(
                        severity="warning",
                        code="unknown_group_member",
                        message=f"group {group.label or group.id!r} lists node {member!r}, which is not in the flow",
                        path=json_path("groups", gi, "nodes", ni),
                    )
                )
    return out


def secret_fields(spec: NodeSpec) -> list[str]:
    """Top-level config fields the node type marks as secret (``x-secret`` in their schema)."""
    schema = spec.config_schema()
    ref = schema.get("$ref", "")
    body = schema.get("$defs", {}).get(ref.rsplit("/", 1)[-1], schema)
    return [name for name, prop in body.get("properties", {}).items() if prop.get("x-secret")]


def export_flow(doc: FlowDocument, catalog: Catalog) -> bytes:
    """The document as a portable JSON file, with any secret-marked config field removed."""
    nodes = []
    for node in doc.nodes:
        spec = catalog.get(node.type, node.type_version)
        hidden = secret_fields(spec) if spec else []
        if hidden:
            node = msgspec.structs.replace(node, config={k: v for k, v in node.config.items() if k not in hidden})
        nodes.append(node)
    exported = msgspec.structs.replace(doc, nodes=nodes)
    return msgspec.json.format(msgspec.json.encode(exported), indent=2) + b"\n"


def node_path(index: int, relative: str = "$") -> str:
    """JSON path of something inside node ``index``'s config."""
    return join_path(json_path("nodes", index, "config"), relative)
