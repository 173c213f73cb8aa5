"""/api/templates: browse (viewer); save, import, instantiate and delete (editor)."""

from __future__ import annotations

import re
from typing import Annotated

from litestar import Controller, Response, delete, get, post
from litestar.datastructures import State
from litestar.params import JSONBody, PathParameter, QueryParameter, RawBody

from backend.auth.guards import editor, viewer
from backend.deps import Address, Caller, Db
from backend.templates import service
from backend.templates.schemas import (
    Instantiate,
    Instantiated,
    Template,
    TemplateCreate,
    TemplateFile,
    TemplateSaved,
    TemplateSummary,
)

TemplateIdPath = Annotated[str, PathParameter(pattern=r"^[A-Za-z0-9_-]{1,64}$", max_length=64)]


class TemplateController(Controller):
    path = "/api/templates"
    tags = ["templates"]
    guards = [viewer]

    @get("/", summary="List templates: the built-in ones first, then the saved ones")
    async def list_templates(
        self,
        db: Db,
        state: State,
        category: Annotated[str | None, QueryParameter(max_length=64, description="Only this category")] = None,
        q: Annotated[str | None, QueryParameter(max_length=200, description="Text in the name or description")] = None,
    ) -> list[TemplateSummary]:
        found = await service.list_templates(db, state.builtin_templates, state.catalog, category, q)
        return [t.summary() for t in found]

    @get("/{template_id:str}", summary="Get a template with its document, parameters and preview")
    async def get_template(self, db: Db, state: State, template_id: TemplateIdPath) -> Template:
        return await service.get_template(db, state.builtin_templates, state.catalog, template_id)

    @post("/", summary="Save a flow, or a selection of its nodes, as a template", guards=[editor])
    async def create_template(
        self, db: Db, state: State, principal: Caller, address: Address, data: JSONBody[TemplateCreate]
    ) -> TemplateSaved:
        return await service.create_template(db, principal, state.catalog, data, address)

    @post("/import", summary="Import a template file (validated fully; nothing in it is executed)", guards=[editor])
    async def import_template(
        self, db: Db, state: State, principal: Caller, address: Address, body: RawBody
    ) -> TemplateSaved:
        return await service.import_template(db, principal, state.catalog, bytes(body), address)

    @get("/{template_id:str}/export", summary="Download a template as a JSON file")
    async def export_template(self, db: Db, state: State, template_id: TemplateIdPath) -> Response[TemplateFile]:
        template = await service.get_template(db, state.builtin_templates, state.catalog, template_id)
        filename = re.sub(r"[^A-Za-z0-9_-]+", "-", template.name).strip("-")[:80] or template.id
        return Response(
            service.to_file(template),
            media_type="application/json",
            headers={"Content-Disposition": f'attachment; filename="{filename}.proxus-template.json"'},
        )

    @post(
        "/{template_id:str}/instantiate",
        summary="Create a flow (version 1) from a template and parameter values",
        guards=[editor],
    )
    async def instantiate(
        self,
        db: Db,
        state: State,
        principal: Caller,
        address: Address,
        template_id: TemplateIdPath,
        data: JSONBody[Instantiate],
    ) -> Response[Instantiated]:
        template = await service.get_template(db, state.builtin_templates, state.catalog, template_id)
        result = await service.instantiate(db, principal, state.catalog, template, data, address)
        return Response(result, status_code=201 if result.created else 200)

    @delete("/{template_id:str}", summary="Delete a saved template (built-in ones cannot be deleted)", guards=[editor])
    async def delete_template(
        self, db: Db, state: State, principal: Caller, address: Address, template_id: TemplateIdPath
    ) -> None:
        await service.delete_template(db, principal, state.builtin_templates, state.catalog, template_id, address)
