"""Stored credentials: encrypted at rest with the Hub's SecretBox; the plaintext leaves only for edges.

The ``secret_encrypted`` column holds Fernet tokens; no query here ever returns it to the API, and
audit entries carry only the name, kind, user name and whether the secret changed.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from typing import Any

import asyncpg  # type: ignore[import-untyped, unused-ignore]
import msgspec

from backend.audit.service import record
from backend.auth.principal import Principal
from backend.credentials.ids import free_id
from backend.credentials.schemas import (
    CredentialCreate,
    CredentialInfo,
    CredentialUpdate,
    CredentialUsage,
    NodeRef,
)
from backend.errors import ApiError, FieldProblem, not_found
from backend.security import SecretBox
from nodes.host import Credential

# Set by the flows domain (optional): which flow nodes refer to which credential ids.
NodeRefs = Mapping[str, Sequence[NodeRef]]
NodeRefsHook = Callable[[asyncpg.Connection], Awaitable[Mapping[str, Sequence[Any]]]]

_COLUMNS = "id, name, kind, username, created_at, updated_at"


async def node_refs(conn: asyncpg.Connection, hook: NodeRefsHook | None) -> NodeRefs:
    """Credential id → flow nodes using it, from the flows domain's hook (``state.credential_node_refs``)."""
    if hook is None:
        return {}
    raw = await hook(conn)
    return {cid: [msgspec.convert(r, NodeRef) for r in refs] for cid, refs in raw.items()}


async def _device_refs(conn: asyncpg.Connection, credential_id: str | None = None) -> dict[str, list[str]]:
    rows = await conn.fetch(
        """SELECT credential_id, id FROM devices WHERE credential_id IS NOT NULL
             AND ($1::text IS NULL OR credential_id = $1) ORDER BY id""",
        credential_id,
    )
    refs: dict[str, list[str]] = {}
    for row in rows:
        refs.setdefault(row["credential_id"], []).append(row["id"])
    return refs


def _info(row: Mapping[str, Any], devices: dict[str, list[str]], nodes: NodeRefs) -> CredentialInfo:
    usage = CredentialUsage(devices=devices.get(row["id"], []), nodes=list(nodes.get(row["id"], ())))
    return CredentialInfo(
        id=row["id"],
        name=row["name"],
        kind=row["kind"],
        username=row["username"],
        created_at=row["created_at"],
        updated_at=row["updated_at"],
        used_by=usage,
    )


def _audit(info: CredentialInfo, *, secret_changed: bool = False) -> dict[str, Any]:
    """What the audit log keeps of a credential: never the secret, at most that it changed."""
    entry: dict[str, Any] = {"id": info.id, "name": info.name, "kind": info.kind, "username": info.username}
    if secret_changed:
        entry["secret_changed"] = True
    return entry


def _check_username(kind: str, username: str) -> None:
    if kind == "username_password" and not username.strip():
        raise ApiError(400, "invalid_request", "a username_password credential needs a username", field="username")
    if kind == "header" and not username.strip():
        raise ApiError(
            400, "invalid_request", "a header credential needs the header name in username", field="username"
        )


async def list_credentials(conn: asyncpg.Connection, nodes: NodeRefs | None = None) -> list[CredentialInfo]:
    devices = await _device_refs(conn)
    rows = await conn.fetch(f"SELECT {_COLUMNS} FROM credentials ORDER BY name")
    return [_info(r, devices, nodes or {}) for r in rows]


async def get_credential(conn: asyncpg.Connection, credential_id: str, nodes: NodeRefs | None = None) -> CredentialInfo:
    row = await conn.fetchrow(f"SELECT {_COLUMNS} FROM credentials WHERE id = $1", credential_id)
    if row is None:
        raise not_found("credential", credential_id)
    return _info(row, await _device_refs(conn, credential_id), nodes or {})


async def credential_ids(conn: asyncpg.Connection) -> set[str]:
    """Ids of every stored credential (for validating references)."""
    return {r["id"] for r in await conn.fetch("SELECT id FROM credentials")}


async def create_credential(
    conn: asyncpg.Connection, box: SecretBox, who: Principal, data: CredentialCreate, address: str
) -> CredentialInfo:
    _check_username(data.kind, data.username)
    async with conn.transaction():
        if await conn.fetchval("SELECT 1 FROM credentials WHERE lower(name) = lower($1)", data.name):
            raise ApiError(409, "conflict", f"a credential named {data.name!r} already exists", field="name")
        credential_id = data.id or await free_id(conn, "credentials", data.name)
        if await conn.fetchval("SELECT 1 FROM credentials WHERE id = $1", credential_id):
            raise ApiError(409, "conflict", f"credential {credential_id!r} already exists", field="id")
        row = await conn.fetchrow(
            f"""INSERT INTO credentials (id, name, kind, username, secret_encrypted) VALUES ($1, $2, $3, $4, $5)
                RETURNING {_COLUMNS}""",
            credential_id,
            data.name,
            data.kind,
            data.username,
            box.encrypt(data.secret),
        )
        info = _info(row, {}, {})
        await record(conn, who, "credential.create", "credential", info.id, after=_audit(info), address=address)
    return info


async def update_credential(
    conn: asyncpg.Connection,
    box: SecretBox,
    who: Principal,
    credential_id: str,
    data: CredentialUpdate,
    address: str,
) -> CredentialInfo:
    async with conn.transaction():
        before = await get_credential(conn, credential_id)
        username = data.username if data.username is not None else before.username
        _check_username(before.kind, username)
        if data.name is not None and await conn.fetchval(
            "SELECT 1 FROM credentials WHERE lower(name) = lower($1) AND id <> $2", data.name, credential_id
        ):
            raise ApiError(409, "conflict", f"a credential named {data.name!r} already exists", field="name")
        row = await conn.fetchrow(
            f"""UPDATE credentials SET name = coalesce($2, name), username = $3,
                       secret_encrypted = coalesce($4, secret_encrypted), updated_at = now()
                WHERE id = $1 RETURNING {_COLUMNS}""",
            credential_id,
            data.name,
            username,
            box.encrypt(data.secret) if data.secret is not None else None,
        )
        after = _info(row, {}, {})
        await record(
            conn,
            who,
            "credential.update",
            "credential",
            credential_id,
            before=_audit(before),
            after=_audit(after, secret_changed=data.secret is not None),
            address=address,
        )
    return await get_credential(conn, credential_id)


async def delete_credential(
    conn: asyncpg.Connection, who: Principal, credential_id: str, address: str, nodes: NodeRefs | None = None
) -> None:
    async with conn.transaction():
        before = await get_credential(conn, credential_id, nodes)
        users = [f"device {d!r}" for d in before.used_by.devices]
        users += [f"node {n.node_id!r} of flow {n.flow_name or n.flow_id!r}" for n in before.used_by.nodes]
        if users:
            raise ApiError(
                409,
                "conflict",
                f"credential {credential_id!r} is still used by {', '.join(users)}",
                details=[FieldProblem("used_by", u) for u in users],
                extra={"used_by": msgspec.to_builtins(before.used_by)},
            )
        await conn.execute("DELETE FROM credentials WHERE id = $1", credential_id)
        await record(
            conn, who, "credential.delete", "credential", credential_id, before=_audit(before), address=address
        )


async def decrypted(conn: asyncpg.Connection, box: SecretBox, ids: Iterable[str]) -> list[Credential]:
    """The credentials with these ids, decrypted (unknown ids are skipped), ordered by id."""
    wanted = sorted(set(ids))
    if not wanted:
        return []
    rows = await conn.fetch(
        "SELECT id, kind, username, secret_encrypted FROM credentials WHERE id = ANY($1::text[]) ORDER BY id", wanted
    )
    return [
        Credential(id=r["id"], kind=r["kind"], username=r["username"], secret=box.decrypt(bytes(r["secret_encrypted"])))
        for r in rows
    ]


async def credentials_for_edge(
    conn: asyncpg.Connection, box: SecretBox, edge_id: str, extra_ids: Iterable[str] = ()
) -> list[Credential]:
    """Decrypted credentials an edge needs: those of the devices assigned to it, plus ``extra_ids``
    (credential ids that nodes of the edge's plans name directly, e.g. an HTTP sink's)."""
    rows = await conn.fetch(
        "SELECT DISTINCT credential_id FROM devices WHERE edge_id = $1 AND credential_id IS NOT NULL", edge_id
    )
    return await decrypted(conn, box, [r["credential_id"] for r in rows] + list(extra_ids))


async def get_decrypted(conn: asyncpg.Connection, box: SecretBox, credential_id: str) -> Credential | None:
    found = await decrypted(conn, box, [credential_id])
    return found[0] if found else None
