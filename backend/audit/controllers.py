"""GET /api/audit: the audit log, newest first, filtered (admin)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from litestar import Controller, get
from litestar.params import QueryParameter

from backend.audit.service import AuditEntry, query
from backend.auth.guards import admin
from backend.deps import Db


class AuditController(Controller):
    path = "/api/audit"
    tags = ["audit"]
    guards = [admin]

    @get("/", summary="Query the audit log")
    async def list_entries(
        self,
        db: Db,
        entity_type: Annotated[str | None, QueryParameter()] = None,
        entity_id: Annotated[str | None, QueryParameter()] = None,
        username: Annotated[str | None, QueryParameter()] = None,
        action: Annotated[str | None, QueryParameter(description="Action prefix, e.g. 'flow.'")] = None,
        since: Annotated[datetime | None, QueryParameter()] = None,
        until: Annotated[datetime | None, QueryParameter()] = None,
        limit: Annotated[int, QueryParameter(ge=1, le=1000)] = 100,
        before_id: Annotated[
            int | None, QueryParameter(ge=1, le=2**62, description="Page: entries older than this id")
        ] = None,
    ) -> list[AuditEntry]:
        return await query(
            db,
            entity_type=entity_type,
            entity_id=entity_id,
            username=username,
            action=action,
            since=since,
            until=until,
            limit=limit,
            before_id=before_id,
        )
