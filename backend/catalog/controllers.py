"""GET /api/catalog: every node type with ports, docs and config JSON Schema (cf. ComfyUI /object_info)."""

from __future__ import annotations

from litestar import Controller, get
from litestar.datastructures import State

from backend.auth.guards import viewer
from nodes.expr import CONSTANTS, FILTER_FIELDS, FUNCTIONS
from proxus.catalog import NodeTypeInfo


class CatalogController(Controller):
    path = "/api/catalog"
    tags = ["catalog"]
    guards = [viewer]

    @get("/", summary="The node catalog: types, ports, config schemas and examples")
    async def catalog(self, state: State) -> list[NodeTypeInfo]:
        described: list[NodeTypeInfo] = state.catalog.describe()
        return described

    @get("/expressions", summary="Functions, constants and fields of the expression language")
    async def expressions(self) -> dict[str, dict[str, str]]:
        return {"functions": dict(FUNCTIONS), "constants": dict(CONSTANTS), "filter_fields": dict(FILTER_FIELDS)}
