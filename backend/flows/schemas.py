"""Flows as the API accepts and returns them: documents, versions, diffs, validation and compile reports."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

import msgspec

from proxus.diagnostics import Diagnostic
from proxus.flow import FlowDocument as _FlowDocument
from proxus.flow import FlowMetadata, SafeId
from proxus.plan import Plan

FlowId = SafeId
VersionNo = Annotated[int, msgspec.Meta(ge=1, le=2**31 - 1, description="A saved version number of the flow")]
Message = Annotated[str, msgspec.Meta(max_length=2000, description="What changed (like a commit message)")]
FlowName = Annotated[str, msgspec.Meta(min_length=1, max_length=200, description="Flow name")]
EdgeId = Annotated[str, msgspec.Meta(pattern=r"^[A-Za-z0-9_-]{1,64}$", description="Edge gateway id")]


class FlowDocument(_FlowDocument, frozen=True, kw_only=True, forbid_unknown_fields=True, omit_defaults=False):
    """A Proxus flow, as saved, exported and imported (``proxus.flow.FlowDocument``).

    The same struct, except that the top-level fields are always written (``version`` too) and
    the metadata default is a factory, which the OpenAPI generator needs.
    """

    @classmethod
    def of(cls, doc: _FlowDocument) -> FlowDocument:
        if isinstance(doc, cls):
            return doc
        return cls(**{name: getattr(doc, name) for name in doc.__struct_fields__})

    metadata: Annotated[FlowMetadata, msgspec.Meta(description="Flow metadata")] = msgspec.field(
        default_factory=FlowMetadata
    )


# -- inputs ----------------------------------------------------------------------------------------


class FlowCreate(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """A new flow: either from a name (an empty canvas) or from a full flow document (a draft).

    A document is checked for its shape only; compile problems are allowed in a draft (use
    ``POST /api/flows/import`` for the full check). With both, ``name`` renames the document.
    """

    name: FlowName | None = None
    id: Annotated[FlowId | None, msgspec.Meta(description="Flow id (default: derived from the name)")] = None
    description: Annotated[str, msgspec.Meta(max_length=10_000)] = ""
    default_edge: Annotated[EdgeId | None, msgspec.Meta(description="Edge for source nodes that name none")] = None
    document: Annotated[FlowDocument | None, msgspec.Meta(description="A full flow document")] = None
    message: Message = ""


class FlowSave(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Save the editor's document as a new version, based on the version the editor loaded."""

    document: FlowDocument
    message: Message = ""
    base_version: Annotated[
        int,
        msgspec.Meta(ge=1, le=2**31 - 1, description="The version this edit started from (optimistic concurrency)"),
    ]


class RollbackRequest(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Make a new version whose document equals an older one."""

    version: VersionNo
    message: Message = ""
    base_version: (
        Annotated[int, msgspec.Meta(ge=1, le=2**31 - 1, description="When set, refuse (409) unless it is the latest")]
        | None
    ) = None


class CheckRequest(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """What to validate or compile: a posted (unsaved) document, a saved version, or (neither) the latest."""

    document: Annotated[
        dict[str, Any] | None, msgspec.Meta(description="An unsaved flow document (checked in full)")
    ] = None
    version: VersionNo | None = None


ImportConflict = Literal["fail", "new_version", "copy"]


# -- outputs ---------------------------------------------------------------------------------------


class VersionInfo(msgspec.Struct, frozen=True, kw_only=True):
    """One saved version (the document itself is immutable)."""

    flow_id: str
    version: int
    author: str
    message: str
    at: datetime
    node_count: int
    wire_count: int


class FlowSummary(msgspec.Struct, frozen=True, kw_only=True):
    id: str
    name: str
    latest_version: int
    created_at: datetime
    created_by: str
    updated_at: datetime
    updated_by: str
    node_count: int
    wire_count: int
    deployed_version: int | None
    deployed_at: datetime | None


class FlowDetail(msgspec.Struct, frozen=True, kw_only=True):
    """A flow: its latest document with version information."""

    id: str
    name: str
    latest_version: int
    created_at: datetime
    created_by: str
    updated_at: datetime
    updated_by: str
    message: Annotated[str, msgspec.Meta(description="Message of the latest version")]
    deployed_version: int | None
    deployed_at: datetime | None
    document: FlowDocument


class FlowVersionDetail(msgspec.Struct, frozen=True, kw_only=True):
    info: VersionInfo
    document: FlowDocument


class NodeRef(msgspec.Struct, frozen=True, kw_only=True):
    id: str
    type: str
    label: str


class NodeChange(msgspec.Struct, frozen=True, kw_only=True):
    """A node present in both versions that differs: which fields, and for config which paths."""

    id: str
    type: str
    label: str
    fields: Annotated[
        list[str], msgspec.Meta(description="Changed fields: type, type_version, label, config, position, edge")
    ]
    config_paths: Annotated[
        list[str], msgspec.Meta(description="JSON paths inside the config that changed, e.g. $.registers[2].address")
    ] = []


class WireRef(msgspec.Struct, frozen=True, kw_only=True):
    id: str
    source: str
    source_port: str
    target: str
    target_port: str


class FlowDiff(msgspec.Struct, frozen=True, kw_only=True):
    """Node-level difference between two versions (wires are matched by their endpoints and ports)."""

    flow_id: str
    from_version: int
    to_version: int
    added_nodes: list[NodeRef]
    removed_nodes: list[NodeRef]
    changed_nodes: list[NodeChange]
    added_wires: list[WireRef]
    removed_wires: list[WireRef]
    other: Annotated[
        list[str], msgspec.Meta(description="Other parts that changed: name, metadata, groups, comments")
    ] = []
    identical: bool = False


class ValidationReport(msgspec.Struct, frozen=True, kw_only=True):
    ok: Annotated[bool, msgspec.Meta(description="No errors (warnings allowed)")]
    version: Annotated[int | None, msgspec.Meta(description="The saved version checked; null for a posted document")]
    errors: int
    warnings: int
    diagnostics: list[Diagnostic]


class PlanSummary(msgspec.Struct, frozen=True, kw_only=True):
    edge: str
    plan_id: str
    hash: str
    steps: int
    plan: Annotated[Plan | None, msgspec.Meta(description="The plan itself (with ?include_plans=true)")] = None


class CompileReport(msgspec.Struct, frozen=True, kw_only=True):
    ok: bool
    version: int | None
    plans: Annotated[list[PlanSummary], msgspec.Meta(description="One plan per edge (empty on errors)")]
    diagnostics: list[Diagnostic]


class ImportReport(msgspec.Struct, frozen=True, kw_only=True):
    ok: bool
    dry_run: bool
    flow_id: str
    version: Annotated[int | None, msgspec.Meta(description="The version created (null on a dry run)")]
    created: Annotated[bool, msgspec.Meta(description="A new flow was created (else a new version of one)")]
    diagnostics: Annotated[list[Diagnostic], msgspec.Meta(description="Warnings (errors answer 400)")]
    plans: list[PlanSummary] = []
