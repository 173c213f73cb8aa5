"""Recording and querying audit entries. Every service that changes something calls ``record``."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import asyncpg  # type: ignore[import-untyped, unused-ignore]
import msgspec

from backend.auth.principal import Principal


class AuditEntry(msgspec.Struct, frozen=True):
    id: int
    at: datetime
    username: str
    action: str
    entity_type: str
    entity_id: str
    before: Any | None
    after: Any | None
    address: str


def _plain(value: Any) -> Any:
    if value is None:
        return None
    return msgspec.to_builtins(value)


async def record(
    conn: asyncpg.Connection,
    who: Principal | None,
    action: str,
    entity_type: str = "",
    entity_id: object = "",
    *,
    before: Any = None,
    after: Any = None,
    address: str = "",
    username: str = "",
) -> None:
    await conn.execute(
        """INSERT INTO audit_log (user_id, username, action, entity_type, entity_id, before, after, address)
           VALUES ($1, $2, $3, $4, $5, $6, $7, $8)""",
        who.user_id if who else None,
        who.username if who else username,
        action,
        entity_type,
        str(entity_id),
        _plain(before),
        _plain(after),
        address,
    )


async def query(
    conn: asyncpg.Connection,
    *,
    entity_type: str | None,
    entity_id: str | None,
    username: str | None,
    action: str | None,
    since: datetime | None,
    until: datetime | None,
    limit: int,
    before_id: int | None,
) -> list[AuditEntry]:
    rows = await conn.fetch(
        """SELECT id, at, username, action, entity_type, entity_id, before, after, address FROM audit_log
           WHERE ($1::text IS NULL OR entity_type = $1) AND ($2::text IS NULL OR entity_id = $2)
             AND ($3::text IS NULL OR username = $3) AND ($4::text IS NULL OR action LIKE $4 || '%')
             AND ($5::timestamptz IS NULL OR at >= $5) AND ($6::timestamptz IS NULL OR at < $6)
             AND ($8::bigint IS NULL OR id < $8)
           ORDER BY id DESC LIMIT $7""",
        entity_type,
        entity_id,
        username,
        action,
        since,
        until,
        limit,
        before_id,
    )
    return [AuditEntry(**dict(r)) for r in rows]
