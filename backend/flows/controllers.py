"""/api/flows: versions, diff, rollback, import/export, validate/compile (viewer reads; editor edits)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any

from litestar import Controller, Request, Response, delete, get, post, put
from litestar.datastructures import State
from litestar.openapi.spec import OpenAPIMediaType, Operation, Reference, RequestBody
from litestar.params import JSONBody, PathParameter, QueryParameter

from backend.auth.guards import editor, viewer
from backend.deps import Address, Caller, Db
from backend.flows import service
from backend.flows.schemas import (
    CheckRequest,
    CompileReport,
    FlowCreate,
    FlowDetail,
    FlowDiff,
    FlowSave,
    FlowSummary,
    FlowVersionDetail,
    ImportConflict,
    ImportReport,
    RollbackRequest,
    ValidationReport,
    VersionInfo,
)
from proxus.flow import MAX_FLOW_BYTES, export_flow

FlowIdParam = Annotated[str, PathParameter(pattern=r"^[A-Za-z0-9_-]{1,64}$", max_length=64, description="Flow id")]
VersionParam = Annotated[int, PathParameter(ge=1, le=2**31 - 1, description="Version number")]
OptionalVersion = Annotated[
    int | None, QueryParameter(ge=1, le=2**31 - 1, description="A saved version (default: the latest)")
]


@dataclass
class _FlowDocumentBody(Operation):
    """The import handler reads the raw body (to report every problem, JSON syntax included)."""

    def __post_init__(self) -> None:
        self.request_body = RequestBody(
            required=True,
            description="A flow document as exported (format proxus.flow)",
            content={"application/json": OpenAPIMediaType(schema=Reference(ref="#/components/schemas/FlowDocument"))},
        )


class FlowController(Controller):
    path = "/api/flows"
    tags = ["flows"]
    guards = [viewer]

    @get("/", summary="List flows")
    async def list_flows(
        self,
        db: Db,
        q: Annotated[str | None, QueryParameter(max_length=200, description="Name or id contains")] = None,
        limit: Annotated[int, QueryParameter(ge=1, le=1000)] = 200,
        offset: Annotated[int, QueryParameter(ge=0, le=2**31)] = 0,
    ) -> list[FlowSummary]:
        return await service.list_flows(db, q, limit, offset)

    @post("/", guards=[editor], summary="Create a flow from a name or from a flow document")
    async def create_flow(self, db: Db, principal: Caller, address: Address, data: JSONBody[FlowCreate]) -> FlowDetail:
        return await service.create_flow(db, principal, data, address)

    @post(
        "/import",
        guards=[editor],
        summary="Import a flow document: full validation; every problem answers 400, nothing is saved",
        operation_class=_FlowDocumentBody,
        request_max_body_size=MAX_FLOW_BYTES,
    )
    async def import_flow(
        self,
        request: Request[Any, Any, Any],
        db: Db,
        state: State,
        principal: Caller,
        address: Address,
        dry_run: Annotated[bool, QueryParameter(description="Only validate; save nothing")] = False,
        on_conflict: Annotated[
            ImportConflict,
            QueryParameter(description="When the flow id exists: fail (409), new_version of it, or a copy"),
        ] = "fail",
    ) -> Response[ImportReport]:
        body = await request.body()
        report = await service.import_flow(
            db, principal, state.catalog, body, dry_run=dry_run, on_conflict=on_conflict, address=address
        )
        return Response(report, status_code=200 if dry_run else 201)

    @get("/{flow_id:str}", summary="The latest document of a flow, with version information")
    async def get_flow(self, db: Db, flow_id: FlowIdParam) -> FlowDetail:
        return await service.get_flow(db, flow_id)

    @put("/{flow_id:str}", guards=[editor], summary="Save a new version (409 with the diff when base_version is stale)")
    async def save_flow(
        self, db: Db, principal: Caller, address: Address, flow_id: FlowIdParam, data: JSONBody[FlowSave]
    ) -> VersionInfo:
        return await service.save_flow(db, principal, flow_id, data, address)

    @delete("/{flow_id:str}", guards=[editor], summary="Delete a flow and its versions (undeploy it first)")
    async def delete_flow(self, db: Db, principal: Caller, address: Address, flow_id: FlowIdParam) -> None:
        await service.delete_flow(db, principal, flow_id, address)

    @get("/{flow_id:str}/versions", summary="Saved versions, newest first")
    async def list_versions(
        self,
        db: Db,
        flow_id: FlowIdParam,
        limit: Annotated[int, QueryParameter(ge=1, le=1000)] = 100,
        before: Annotated[int | None, QueryParameter(ge=1, le=2**31 - 1, description="Page: versions below")] = None,
    ) -> list[VersionInfo]:
        return await service.list_versions(db, flow_id, limit, before)

    @get("/{flow_id:str}/versions/{version:int}", summary="One saved version with its document")
    async def get_version(self, db: Db, flow_id: FlowIdParam, version: VersionParam) -> FlowVersionDetail:
        return await service.get_version(db, flow_id, version)

    @get("/{flow_id:str}/diff", summary="Node-level diff between two versions")
    async def diff(
        self,
        db: Db,
        flow_id: FlowIdParam,
        from_version: Annotated[int, QueryParameter(name="from", ge=1, le=2**31 - 1, description="Older version")],
        to_version: Annotated[int, QueryParameter(name="to", ge=1, le=2**31 - 1, description="Newer version")],
    ) -> FlowDiff:
        return await service.diff_versions(db, flow_id, from_version, to_version)

    @post("/{flow_id:str}/rollback", guards=[editor], summary="Save a new version equal to an older one")
    async def rollback(
        self, db: Db, principal: Caller, address: Address, flow_id: FlowIdParam, data: JSONBody[RollbackRequest]
    ) -> VersionInfo:
        return await service.rollback(db, principal, flow_id, data, address)

    @get("/{flow_id:str}/export", summary="Download a version as a flow file (secret fields removed)")
    async def export(
        self, db: Db, state: State, flow_id: FlowIdParam, version: OptionalVersion = None
    ) -> Response[bytes]:
        number, doc = await service.load_document(db, flow_id, version)
        return Response(
            export_flow(doc, state.catalog),
            media_type="application/json",
            headers={"Content-Disposition": f'attachment; filename="{flow_id}-v{number}.flow.json"'},
        )

    @post("/{flow_id:str}/validate", status_code=200, summary="Validate a posted document or a saved version")
    async def validate(
        self, db: Db, state: State, flow_id: FlowIdParam, data: JSONBody[CheckRequest | None] = None
    ) -> ValidationReport:
        version, result = await service.check(db, state.catalog, flow_id, data)
        errors, warnings = service.counts(result.diagnostics)
        return ValidationReport(
            ok=errors == 0, version=version, errors=errors, warnings=warnings, diagnostics=result.diagnostics
        )

    @post("/{flow_id:str}/compile", status_code=200, summary="Compile to one plan per edge, or diagnostics")
    async def compile(
        self,
        db: Db,
        state: State,
        flow_id: FlowIdParam,
        data: JSONBody[CheckRequest | None] = None,
        include_plans: Annotated[bool, QueryParameter(description="Include the plans themselves")] = False,
    ) -> CompileReport:
        version, result = await service.check(db, state.catalog, flow_id, data)
        return CompileReport(
            ok=result.ok,
            version=version,
            plans=service.plan_summaries(result, include_plans),
            diagnostics=result.diagnostics,
        )
