"""Flows: immutable versions with optimistic concurrency, diff, rollback, import/export, validate/compile.

Every save is a new row in ``flow_versions`` holding the full document (``document.id`` is the flow id,
``document.version`` the version number). A save names the version it started from; when that is no
longer the latest the save is refused with 409 and the node-level diff of what changed since.
Documents go to and from PostgreSQL as JSON text encoded by msgspec (fast for 500-node flows).
"""

from __future__ import annotations

import re
import secrets
from collections import Counter
from typing import Any

import asyncpg  # type: ignore[import-untyped, unused-ignore]
import msgspec

from backend.audit.service import record
from backend.auth.principal import Principal
from backend.devices.service import registry as device_registry
from backend.errors import ApiError, FieldProblem, conflict, not_found
from backend.flows.diff import diff_documents
from backend.flows.schemas import (
    CheckRequest,
    FlowCreate,
    FlowDetail,
    FlowDiff,
    FlowDocument,
    FlowSave,
    FlowSummary,
    FlowVersionDetail,
    ImportConflict,
    ImportReport,
    PlanSummary,
    RollbackRequest,
    VersionInfo,
)
from proxus.catalog import Catalog
from proxus.compiler import CompileResult, compile_flow, validate_flow
from proxus.diagnostics import Diagnostic, has_errors
from proxus.flow import FLOW_SCHEMA_VERSION, FlowMetadata, load_flow
from proxus.flow import FlowDocument as CoreDocument
from proxus.registry import Registry

_encoder = msgspec.json.Encoder()
_doc_decoder = msgspec.json.Decoder(FlowDocument)

_SUMMARY = """f.id, f.name, f.latest_version, f.created_at, f.created_by, f.updated_at, f.updated_by,
              v.node_count, v.wire_count, f.deployed_version, f.deployed_at"""
_VERSION = "flow_id, version, author, message, created_at AS at, node_count, wire_count"


# -- helpers shared with the deploy domain ---------------------------------------------------------


async def hub_registry(conn: asyncpg.Connection) -> Registry:
    """Devices and edges the compiler resolves against (owned by the devices domain)."""
    registry: Registry = await device_registry(conn)
    return registry


def invalid_flow(diagnostics: list[Diagnostic], what: str = "the flow") -> ApiError:
    """400 naming every problem: ``details`` (field = JSON path) and ``extra.diagnostics`` (full, with hints)."""
    errors = [d for d in diagnostics if d.severity == "error"]
    first = errors[0].render() if errors else ""
    return ApiError(
        400,
        "invalid_flow",
        f"{what} has {len(errors)} error(s)" + (f"; first: {first.splitlines()[0]}" if first else ""),
        details=[FieldProblem(d.path, d.message, d.node_id) for d in errors],
        extra={"diagnostics": [msgspec.to_builtins(d) for d in diagnostics]},
    )


def plan_summaries(result: CompileResult, include_plans: bool = False) -> list[PlanSummary]:
    return [
        PlanSummary(
            edge=edge,
            plan_id=plan.plan_id,
            hash=plan.hash,
            steps=len(plan.steps),
            plan=plan if include_plans else None,
        )
        for edge, plan in sorted(result.plans.items())
    ]


def decode_document(text: str) -> FlowDocument:
    return _doc_decoder.decode(text)


def _encode_document(doc: CoreDocument) -> str:
    return _encoder.encode(FlowDocument.of(doc)).decode()  # with every top-level field, version included


def _structure_errors(doc: CoreDocument) -> list[Diagnostic]:
    """Shape and identity (unique node and wire ids) of a document that decoded: a draft needs these."""
    _, diagnostics = load_flow(msgspec.to_builtins(doc))
    return [d for d in diagnostics if d.severity == "error"]


def _who(principal: Principal | None) -> tuple[str, int | None]:
    return (principal.username, principal.user_id) if principal is not None else ("system", None)


# -- reads -----------------------------------------------------------------------------------------


async def list_flows(conn: asyncpg.Connection, q: str | None, limit: int, offset: int) -> list[FlowSummary]:
    rows = await conn.fetch(
        f"""SELECT {_SUMMARY} FROM flows f
            JOIN flow_versions v ON v.flow_id = f.id AND v.version = f.latest_version
            WHERE $1::text IS NULL OR f.name ILIKE '%' || $1 || '%' OR f.id ILIKE '%' || $1 || '%'
            ORDER BY lower(f.name), f.id LIMIT $2 OFFSET $3""",
        q,
        limit,
        offset,
    )
    return [FlowSummary(**dict(r)) for r in rows]


async def get_flow(conn: asyncpg.Connection, flow_id: str) -> FlowDetail:
    row = await conn.fetchrow(
        """SELECT f.id, f.name, f.latest_version, f.created_at, f.created_by, f.updated_at, f.updated_by,
                  f.deployed_version, f.deployed_at, v.message, v.document::text AS document
           FROM flows f JOIN flow_versions v ON v.flow_id = f.id AND v.version = f.latest_version
           WHERE f.id = $1""",
        flow_id,
    )
    if row is None:
        raise not_found("flow", flow_id)
    values = dict(row)
    values["document"] = decode_document(values["document"])
    return FlowDetail(**values)


async def latest_version(conn: asyncpg.Connection, flow_id: str, *, lock: bool = False) -> int:
    value = await conn.fetchval(
        "SELECT latest_version FROM flows WHERE id = $1" + (" FOR UPDATE" if lock else ""), flow_id
    )
    if value is None:
        raise not_found("flow", flow_id)
    return int(value)


async def load_document(conn: asyncpg.Connection, flow_id: str, version: int | None) -> tuple[int, FlowDocument]:
    """A saved version's document (the latest when ``version`` is None)."""
    if version is None:
        version = await latest_version(conn, flow_id)
    text = await conn.fetchval(
        "SELECT document::text FROM flow_versions WHERE flow_id = $1 AND version = $2", flow_id, version
    )
    if text is None:
        await latest_version(conn, flow_id)  # 404 for the flow first
        raise not_found(f"version of flow {flow_id!r}", version)
    return version, decode_document(text)


async def list_versions(conn: asyncpg.Connection, flow_id: str, limit: int, before: int | None) -> list[VersionInfo]:
    await latest_version(conn, flow_id)
    rows = await conn.fetch(
        f"""SELECT {_VERSION} FROM flow_versions
            WHERE flow_id = $1 AND ($2::int IS NULL OR version < $2) ORDER BY version DESC LIMIT $3""",
        flow_id,
        before,
        limit,
    )
    return [VersionInfo(**dict(r)) for r in rows]


async def version_info(conn: asyncpg.Connection, flow_id: str, version: int) -> VersionInfo:
    row = await conn.fetchrow(
        f"SELECT {_VERSION} FROM flow_versions WHERE flow_id = $1 AND version = $2", flow_id, version
    )
    if row is None:
        await latest_version(conn, flow_id)
        raise not_found(f"version of flow {flow_id!r}", version)
    return VersionInfo(**dict(row))


async def get_version(conn: asyncpg.Connection, flow_id: str, version: int) -> FlowVersionDetail:
    info = await version_info(conn, flow_id, version)
    _, doc = await load_document(conn, flow_id, version)
    return FlowVersionDetail(info=info, document=doc)


async def diff_versions(conn: asyncpg.Connection, flow_id: str, from_version: int, to_version: int) -> FlowDiff:
    _, old = await load_document(conn, flow_id, from_version)
    _, new = await load_document(conn, flow_id, to_version)
    return diff_documents(flow_id, from_version, old, to_version, new)


# -- writes ----------------------------------------------------------------------------------------


async def _insert_version(
    conn: asyncpg.Connection, who: Principal | None, flow_id: str, version: int, doc: CoreDocument, message: str
) -> VersionInfo:
    author, author_id = _who(who)
    row = await conn.fetchrow(
        f"""INSERT INTO flow_versions (flow_id, version, document, author, author_id, message, node_count, wire_count)
            VALUES ($1, $2, $3::text::jsonb, $4, $5, $6, $7, $8) RETURNING {_VERSION}""",
        flow_id,
        version,
        _encode_document(doc),
        author,
        author_id,
        message,
        len(doc.nodes),
        len(doc.edges),
    )
    return VersionInfo(**dict(row))


def _slug(name: str) -> str:
    slug = re.sub(r"[^a-z0-9_-]+", "-", name.lower()).strip("-_")[:48]
    return slug or "flow"


async def _free_id(conn: asyncpg.Connection, wanted: str) -> str:
    candidate = wanted
    while await conn.fetchval("SELECT 1 FROM flows WHERE id = $1", candidate):
        candidate = f"{wanted[:56]}-{secrets.token_hex(3)}"
    return candidate


async def _create(
    conn: asyncpg.Connection, who: Principal | None, doc: CoreDocument, message: str, action: str, address: str
) -> VersionInfo:
    """Insert a new flow at version 1 from ``doc`` (its id must be free). Runs inside a transaction."""
    author, _ = _who(who)
    doc = msgspec.structs.replace(doc, version=1)
    await conn.execute(
        """INSERT INTO flows (id, name, latest_version, created_by, updated_by) VALUES ($1, $2, 1, $3, $3)""",
        doc.id,
        doc.name,
        author,
    )
    info = await _insert_version(conn, who, doc.id, 1, doc, message)
    await record(conn, who, action, "flow", doc.id, after=info, address=address, username=author)
    return info


async def create_from_document(
    conn: asyncpg.Connection, who: Principal, document: CoreDocument, message: str = "", address: str = ""
) -> FlowDetail:
    """Create a flow from a ``proxus.flow.FlowDocument`` (shape-checked; a draft may not compile)."""
    async with conn.transaction():
        errors = _structure_errors(document)
        if errors:
            raise invalid_flow(errors)
        if await conn.fetchval("SELECT 1 FROM flows WHERE id = $1", document.id):
            raise conflict(f"flow {document.id!r} already exists", flow_id=document.id)
        await _create(conn, who, document, message or "created", "flow.create", address)
    return await get_flow(conn, document.id)


async def create_flow(conn: asyncpg.Connection, who: Principal, data: FlowCreate, address: str) -> FlowDetail:
    """From a document (``name``/``id`` override its own), or an empty flow from a name."""
    if data.document is not None:
        doc: CoreDocument = data.document
        if data.name is not None:
            doc = msgspec.structs.replace(doc, name=data.name)
        if data.id is not None:
            doc = msgspec.structs.replace(doc, id=data.id)
        return await create_from_document(conn, who, doc, data.message, address)
    if data.name is None:
        raise ApiError(400, "invalid_request", "give the flow a name, or a document", field="name")
    async with conn.transaction():
        if data.id is not None:
            if await conn.fetchval("SELECT 1 FROM flows WHERE id = $1", data.id):
                raise conflict(f"flow {data.id!r} already exists", flow_id=data.id)
            flow_id = data.id
        else:
            flow_id = await _free_id(conn, _slug(data.name))
        doc = CoreDocument(
            format="proxus.flow",
            schema_version=FLOW_SCHEMA_VERSION,
            id=flow_id,
            name=data.name,
            metadata=FlowMetadata(description=data.description, default_edge=data.default_edge),
        )
        await _create(conn, who, doc, data.message or "created", "flow.create", address)
    return await get_flow(conn, doc.id)


async def _conflict(conn: asyncpg.Connection, flow_id: str, base: int, latest: int) -> ApiError:
    info = await version_info(conn, flow_id, latest)
    diff = await diff_versions(conn, flow_id, base, latest)
    return ApiError(
        409,
        "conflict",
        f"the flow changed after version {base}: version {latest} was saved by {info.author}"
        + (f" ({info.message})" if info.message else "")
        + "; merge their changes and save again",
        extra={
            "base_version": base,
            "latest_version": latest,
            "author": info.author,
            "message": info.message,
            "at": info.at.isoformat(),
            "diff": msgspec.to_builtins(diff),
        },
    )


async def _save(
    conn: asyncpg.Connection,
    who: Principal | None,
    flow_id: str,
    doc: CoreDocument,
    message: str,
    base_version: int | None,
    action: str,
    address: str,
    before_extra: dict[str, Any] | None = None,
) -> VersionInfo:
    """Append a version (inside a transaction). ``base_version`` None: no concurrency check."""
    row = await conn.fetchrow("SELECT latest_version, name FROM flows WHERE id = $1 FOR UPDATE", flow_id)
    if row is None:
        raise not_found("flow", flow_id)
    latest = int(row["latest_version"])
    if base_version is not None:
        if base_version > latest:
            raise ApiError(
                400,
                "invalid_request",
                f"version {base_version} does not exist (latest is {latest})",
                field="base_version",
            )
        if base_version != latest:
            raise await _conflict(conn, flow_id, base_version, latest)
    if doc.id != flow_id:
        raise ApiError(
            400,
            "invalid_request",
            f"the document's id is {doc.id!r}, but this is flow {flow_id!r}",
            field="document.id",
        )
    version = latest + 1
    doc = msgspec.structs.replace(doc, version=version)
    info = await _insert_version(conn, who, flow_id, version, doc, message)
    await conn.execute(
        "UPDATE flows SET latest_version = $2, name = $3, updated_at = $4, updated_by = $5 WHERE id = $1",
        flow_id,
        version,
        doc.name,
        info.at,
        info.author,
    )
    before = {"version": latest, "name": row["name"], **(before_extra or {})}
    await record(conn, who, action, "flow", flow_id, before=before, after=info, address=address, username=info.author)
    return info


async def save_flow(
    conn: asyncpg.Connection, who: Principal, flow_id: str, data: FlowSave, address: str
) -> VersionInfo:
    errors = _structure_errors(data.document)
    if errors:
        raise invalid_flow(errors)
    async with conn.transaction():
        return await _save(conn, who, flow_id, data.document, data.message, data.base_version, "flow.update", address)


async def rollback(
    conn: asyncpg.Connection, who: Principal, flow_id: str, data: RollbackRequest, address: str
) -> VersionInfo:
    async with conn.transaction():
        _, doc = await load_document(conn, flow_id, data.version)
        message = data.message or f"rollback to version {data.version}"
        return await _save(
            conn,
            who,
            flow_id,
            doc,
            message,
            data.base_version,
            "flow.rollback",
            address,
            before_extra={"rollback_to": data.version},
        )


async def delete_flow(conn: asyncpg.Connection, who: Principal, flow_id: str, address: str) -> None:
    async with conn.transaction():
        row = await conn.fetchrow(
            "SELECT id, name, latest_version, deployed_version FROM flows WHERE id = $1 FOR UPDATE", flow_id
        )
        if row is None:
            raise not_found("flow", flow_id)
        edges = [r["edge"] for r in await conn.fetch("SELECT edge FROM flow_placements WHERE flow_id = $1", flow_id)]
        if row["deployed_version"] is not None or edges:
            raise conflict(
                f"flow {flow_id!r} is deployed"
                + (f" on {', '.join(sorted(edges))}" if edges else "")
                + "; undeploy it first",
                edges=sorted(edges),
            )
        await conn.execute("DELETE FROM flows WHERE id = $1", flow_id)
        await record(conn, who, "flow.delete", "flow", flow_id, before=dict(row), address=address)


# -- validation, compilation, import ---------------------------------------------------------------


async def check(
    conn: asyncpg.Connection, catalog: Catalog, flow_id: str, request: CheckRequest | None
) -> tuple[int | None, CompileResult]:
    """Validate and compile a posted document or a saved version (default: the latest)."""
    request = request or CheckRequest()
    registry = await hub_registry(conn)
    if request.document is None:
        version, doc = await load_document(conn, flow_id, request.version)
        return version, compile_flow(doc, catalog, registry)
    await latest_version(conn, flow_id)
    doc_or_none, result = validate_flow(request.document, catalog, registry)
    if doc_or_none is not None and doc_or_none.id != flow_id:
        wrong = Diagnostic(
            severity="error",
            code="wrong_flow_id",
            message=f"the document's id is {doc_or_none.id!r}, but this is flow {flow_id!r}",
            path="$.id",
        )
        result = CompileResult({}, [wrong, *result.diagnostics])
    return None, result


def counts(diagnostics: list[Diagnostic]) -> tuple[int, int]:
    tally = Counter(d.severity for d in diagnostics)
    return tally["error"], tally["warning"]


async def import_flow(
    conn: asyncpg.Connection,
    who: Principal,
    catalog: Catalog,
    raw: bytes,
    *,
    dry_run: bool,
    on_conflict: ImportConflict,
    address: str,
) -> ImportReport:
    """Full validation (shape, catalog, configs, wiring, graph, placement); saves nothing on errors."""
    registry = await hub_registry(conn)
    doc, result = validate_flow(raw, catalog, registry)
    if doc is None or has_errors(result.diagnostics):
        raise invalid_flow(result.diagnostics, "the imported flow")
    warnings = [d for d in result.diagnostics if d.severity != "error"]
    plans = plan_summaries(result)
    async with conn.transaction():
        exists = bool(await conn.fetchval("SELECT 1 FROM flows WHERE id = $1", doc.id))
        if exists and on_conflict == "fail":
            raise conflict(
                f"flow {doc.id!r} already exists; import with on_conflict=new_version to add this as its next "
                "version, or on_conflict=copy to import it as a new flow",
                flow_id=doc.id,
            )
        if exists and on_conflict == "copy":
            doc = msgspec.structs.replace(doc, id=await _free_id(conn, f"{doc.id[:56]}-copy"))
            plans = plan_summaries(compile_flow(doc, catalog, registry))  # plan ids carry the flow id
            exists = False
        if dry_run:
            return ImportReport(
                ok=True,
                dry_run=True,
                flow_id=doc.id,
                version=None,
                created=not exists,
                diagnostics=warnings,
                plans=plans,
            )
        if exists:
            info = await _save(conn, who, doc.id, doc, "imported", None, "flow.import", address)
        else:
            info = await _create(conn, who, doc, "imported", "flow.import", address)
    return ImportReport(
        ok=True,
        dry_run=False,
        flow_id=doc.id,
        version=info.version,
        created=not exists,
        diagnostics=warnings,
        plans=plans,
    )
