"""Edges: registration (NATS leaf credentials), removal (revocation) and their status."""

from __future__ import annotations

import asyncio
import ipaddress
import json
import logging
import shlex
import time
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

import asyncpg  # type: ignore[import-untyped, unused-ignore]

from backend.audit.service import record
from backend.auth.principal import Principal
from backend.edges.live import EdgeLive, LiveStatus
from backend.edges.natsauth import HubNatsAuth, check_password, hash_password, new_password, write_private
from backend.edges.schemas import Edge, EdgeCreate, EdgeStatus, EdgeUpdate, FlowStatus
from backend.errors import ApiError, FieldProblem, not_found
from backend.hubnats import HubNats
from backend.settings import Settings
from proxus.plan import decode_bundle

log = logging.getLogger("proxus.hub.edges")

_COLUMNS = "id, name, description, created_at, updated_at"
DEFAULT_LEAF_PORT = 7422


# -- status ------------------------------------------------------------------------------------


async def desired_hashes(nats: HubNats, edge: str) -> dict[str, str] | None:
    """Flow id → plan hash of the edge's bundle in the plans bucket ({} when none; None when unknown)."""
    from nats.js.errors import KeyNotFoundError

    try:
        entry = await nats.plans.get(edge)
    except KeyNotFoundError:
        return {}
    except Exception as exc:  # NATS down: the desired state is unknown, the rest of the status is not
        log.warning("reading the plans of %s: %s", edge, exc)
        return None
    if entry.value is None:
        return {}
    try:
        bundle = decode_bundle(entry.value)
    except ValueError as exc:
        log.warning("the plans of %s do not decode: %s", edge, exc)
        return None
    return {flow_id: plan.hash for flow_id, plan in bundle.plans.items()}


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def edge_status(live: EdgeLive | None, desired: Mapping[str, str] | None, online: bool) -> EdgeStatus:
    """Combine what the edge reported with what the Hub wants it to run."""
    reported = live.flows if live is not None else {}
    wanted = desired or {}
    flows: list[FlowStatus] = []
    for flow_id in sorted(set(wanted) | set(reported)):
        report = reported.get(flow_id, {})
        desired_hash = wanted.get(flow_id) if desired is not None else None
        applied = report.get("applied_hash") or None
        if report:
            state = str(report.get("state") or "pending")
            if desired is not None and flow_id not in wanted:
                state = "undeployed"
        else:
            state = "not_reported"
        flows.append(
            FlowStatus(
                flow_id=flow_id,
                desired_hash=desired_hash,
                applied_hash=applied,
                state=state,
                error=str(report.get("error", "")),
                in_sync=desired is not None and desired_hash is not None and desired_hash == applied,
                nodes=report.get("nodes") or {},
            )
        )
    beat = (live.heartbeat if live is not None else None) or {}
    depth = _number(beat.get("outbox_depth"))
    rss = _number(beat.get("rss_bytes"))
    in_sync = desired is not None and all(f.in_sync for f in flows if f.flow_id in wanted)
    in_sync = in_sync and not any(f.state == "undeployed" for f in flows)
    return EdgeStatus(
        online=online,
        last_seen=datetime.fromtimestamp(live.last_seen, UTC) if live is not None and live.last_seen else None,
        uptime_s=_number(beat.get("uptime_s")),
        outbox_depth=int(depth) if depth is not None else None,
        cpu_percent=_number(beat.get("cpu_percent")),
        rss_bytes=int(rss) if rss is not None else None,
        devices=devices if isinstance(devices := beat.get("devices"), dict) else {},
        flows=flows,
        in_sync=in_sync,
        error=live.error if live is not None else "",
    )


def describe_last_seen(live: LiveStatus, edge: str) -> str:
    entry = live.get(edge)
    if entry is None or entry.last_seen is None:
        return "never seen"
    ago = max(0.0, time.time() - entry.last_seen)
    at = datetime.fromtimestamp(entry.last_seen, UTC).isoformat(timespec="seconds")
    return f"last seen {at}, {ago:.0f} s ago"


# -- reading -----------------------------------------------------------------------------------


async def _devices_by_edge(conn: asyncpg.Connection, edge_id: str | None = None) -> dict[str, list[str]]:
    rows = await conn.fetch(
        "SELECT edge_id, id FROM devices WHERE edge_id IS NOT NULL AND ($1::text IS NULL OR edge_id = $1) ORDER BY id",
        edge_id,
    )
    found: dict[str, list[str]] = {}
    for row in rows:
        found.setdefault(row["edge_id"], []).append(row["id"])
    return found


async def edge_ids(conn: asyncpg.Connection) -> set[str]:
    return {r["id"] for r in await conn.fetch("SELECT id FROM edges")}


async def _row(conn: asyncpg.Connection, edge_id: str) -> asyncpg.Record:
    row = await conn.fetchrow(f"SELECT {_COLUMNS} FROM edges WHERE id = $1", edge_id)
    if row is None:
        raise not_found("edge", edge_id)
    return row


def _edge(row: Mapping[str, Any], devices: Sequence[str], status: EdgeStatus | None = None) -> Edge:
    return Edge(
        id=row["id"],
        name=row["name"],
        description=row["description"],
        created_at=row["created_at"],
        updated_at=row["updated_at"],
        devices=list(devices),
        status=status or EdgeStatus(),
    )


async def list_edges(
    conn: asyncpg.Connection, live: LiveStatus, nats: HubNats | None, offline_after_s: float
) -> list[Edge]:
    rows = await conn.fetch(f"SELECT {_COLUMNS} FROM edges ORDER BY id")
    devices = await _devices_by_edge(conn)
    desired: list[dict[str, str] | None] = (
        list(await asyncio.gather(*(desired_hashes(nats, r["id"]) for r in rows))) if nats else [None] * len(rows)
    )
    now = time.time()
    return [
        _edge(
            row,
            devices.get(row["id"], []),
            edge_status(live.get(row["id"]), wanted, live.online(row["id"], offline_after_s, now)),
        )
        for row, wanted in zip(rows, desired, strict=True)
    ]


async def get_edge(
    conn: asyncpg.Connection, edge_id: str, live: LiveStatus, nats: HubNats | None, offline_after_s: float
) -> Edge:
    row = await _row(conn, edge_id)
    devices = await _devices_by_edge(conn, edge_id)
    wanted = await desired_hashes(nats, edge_id) if nats else None
    return _edge(
        row, devices.get(edge_id, []), edge_status(live.get(edge_id), wanted, live.online(edge_id, offline_after_s))
    )


# -- changes -----------------------------------------------------------------------------------


async def register_edge(conn: asyncpg.Connection, who: Principal, data: EdgeCreate, address: str) -> tuple[Edge, str]:
    """Insert the edge with a new NATS password; returns the edge and the password (shown once)."""
    password = new_password()
    password_hash = await asyncio.to_thread(hash_password, password)
    async with conn.transaction():
        if await conn.fetchval("SELECT 1 FROM edges WHERE lower(id) = lower($1)", data.id):
            raise ApiError(409, "conflict", f"edge {data.id!r} is already registered", field="id")
        row = await conn.fetchrow(
            f"""INSERT INTO edges (id, name, description, nats_password_hash) VALUES ($1, $2, $3, $4)
                RETURNING {_COLUMNS}""",
            data.id,
            data.name or data.id,
            data.description,
            password_hash,
        )
        edge = _edge(row, [])
        await record(conn, who, "edge.create", "edge", edge.id, after=_audit(edge), address=address)
    return edge, password


async def rotate_password(conn: asyncpg.Connection, who: Principal, edge_id: str, address: str) -> tuple[Edge, str]:
    """A new NATS password for the edge; the old one stops working once the server reloads."""
    password = new_password()
    password_hash = await asyncio.to_thread(hash_password, password)
    async with conn.transaction():
        row = await conn.fetchrow(
            f"UPDATE edges SET nats_password_hash = $2, updated_at = now() WHERE id = $1 RETURNING {_COLUMNS}",
            edge_id,
            password_hash,
        )
        if row is None:
            raise not_found("edge", edge_id)
        edge = _edge(row, [])
        await record(
            conn, who, "edge.rotate_credentials", "edge", edge_id, after={"password_changed": True}, address=address
        )
    return edge, password


async def update_edge(conn: asyncpg.Connection, who: Principal, edge_id: str, data: EdgeUpdate, address: str) -> None:
    async with conn.transaction():
        before = _edge(await _row(conn, edge_id), [])
        row = await conn.fetchrow(
            f"""UPDATE edges SET name = coalesce($2, name), description = coalesce($3, description), updated_at = now()
                WHERE id = $1 RETURNING {_COLUMNS}""",
            edge_id,
            data.name,
            data.description,
        )
        await record(
            conn,
            who,
            "edge.update",
            "edge",
            edge_id,
            before=_audit(before),
            after=_audit(_edge(row, [])),
            address=address,
        )


async def remove_edge(conn: asyncpg.Connection, who: Principal, edge_id: str, force: bool, address: str) -> list[str]:
    """Delete the edge; with ``force`` its devices are unassigned (kept, edge NULL), else 409 while it has any.

    Returns the ids of the devices that were unassigned.
    """
    async with conn.transaction():
        before = _edge(await _row(conn, edge_id), [])
        devices = [r["id"] for r in await conn.fetch("SELECT id FROM devices WHERE edge_id = $1 ORDER BY id", edge_id)]
        if devices and not force:
            raise ApiError(
                409,
                "conflict",
                f"edge {edge_id!r} still has {len(devices)} device(s): {', '.join(devices)}; move or delete them, "
                "or remove the edge with ?force=true (its devices are then unassigned)",
                details=[FieldProblem("devices", f"device {d!r} is assigned to this edge") for d in devices],
                extra={"devices": devices},
            )
        if devices:
            await conn.execute("UPDATE devices SET edge_id = NULL, updated_at = now() WHERE edge_id = $1", edge_id)
        await conn.execute("DELETE FROM edges WHERE id = $1", edge_id)
        await record(
            conn,
            who,
            "edge.delete",
            "edge",
            edge_id,
            before={**_audit(before), "devices": devices},
            after={"unassigned_devices": devices} if devices else None,
            address=address,
        )
    return devices


def _audit(edge: Edge) -> dict[str, Any]:
    return {"id": edge.id, "name": edge.name, "description": edge.description}


async def load_live(conn: asyncpg.Connection, live: LiveStatus) -> None:
    """Restore what was persisted of every edge's status (shown offline until it reports again)."""
    for row in await conn.fetch("SELECT id, last_seen, last_status FROM edges WHERE last_seen IS NOT NULL"):
        live.restore(row["id"], row["last_seen"], row["last_status"])


# -- how an edge joins --------------------------------------------------------------------------


def leaf_address(state: Any, request_host: str) -> tuple[str, int]:
    """Host and port edges dial: ``settings.leaf_url`` (PROXUS_LEAF_URL) when set; else the embedded
    server's leaf port, on its address when it listens on loopback only (edges on this machine) or
    on the host the browser used to reach the Hub; else that host and the default leaf port."""
    configured = getattr(state.settings, "leaf_url", None)
    if configured:
        parts = urlsplit(configured if "://" in configured else f"nats-leaf://{configured}")
        return parts.hostname or request_host, parts.port or DEFAULT_LEAF_PORT
    server = getattr(state, "hub_nats_server", None)
    if server is not None and getattr(server, "leaf_port", None):
        host = str(server.host)
        try:
            loopback = ipaddress.ip_address(host).is_loopback
            wildcard = ipaddress.ip_address(host).is_unspecified
        except ValueError:
            loopback, wildcard = host == "localhost", False
        if loopback:
            return host, int(server.leaf_port)
        return (request_host if wildcard else host), int(server.leaf_port)
    return request_host, DEFAULT_LEAF_PORT


def join_instructions(edge_id: str, password: str, host: str, port: int, hub_domain: str) -> dict[str, Any]:
    url = f"nats-leaf://{edge_id}:{password}@{host}:{port}"
    return {
        "hub_leaf_url": url,
        "command": f"proxus edge --id {shlex.quote(edge_id)} --hub {shlex.quote(url)}",
        "settings_file": {
            "id": edge_id,
            "hub_leaf_url": url,
            "hub_domain": hub_domain,
            "data_dir": f".proxus/edge-{edge_id}",
            "heartbeat_s": 5.0,
        },
    }


LOCAL_EDGE = "local"


async def ensure_local_edge(conn: asyncpg.Connection, settings: Settings, edge_id: str = LOCAL_EDGE) -> tuple[str, str]:
    """The edge ``proxus hub`` runs on its own machine: registered on first use, its password kept
    (0600) beside auth.conf so that later starts reuse it; the hub server is reloaded when that
    changes anything. Returns the edge id and its password."""
    auth = HubNatsAuth.for_dir(settings.data_dir / "nats", hub_domain=settings.hub_domain)
    path = auth.dir / f"edge-{edge_id}.password"
    # A plain asyncpg connection (the CLI's) has no jsonb codec, which the audit log needs.
    await conn.set_type_codec("jsonb", encoder=json.dumps, decoder=json.loads, schema="pg_catalog")
    try:
        password: str | None = path.read_text().strip() or None
    except FileNotFoundError:
        password = None
    rotated = False
    async with conn.transaction():
        stored = await conn.fetchval("SELECT nats_password_hash FROM edges WHERE id = $1", edge_id)
        if stored is None:
            password = password or new_password()
            await conn.execute(
                """INSERT INTO edges (id, name, description, nats_password_hash) VALUES ($1, $2, $3, $4)""",
                edge_id,
                "Local edge",
                "Runs on the Hub's machine (started by proxus hub)",
                await asyncio.to_thread(hash_password, password),
            )
            await record(conn, None, "edge.create", "edge", edge_id, after={"id": edge_id}, username="proxus hub")
        elif password is None or not await asyncio.to_thread(check_password, password, stored):
            password, rotated = new_password(), True
            await conn.execute(
                "UPDATE edges SET nats_password_hash = $2, updated_at = now() WHERE id = $1",
                edge_id,
                await asyncio.to_thread(hash_password, password),
            )
            await record(
                conn,
                None,
                "edge.rotate_credentials",
                "edge",
                edge_id,
                after={"password_changed": True},
                username="proxus hub",
            )
    write_private(path, password + "\n")
    await auth.apply(conn, revoked=[edge_id] if rotated else [])
    return edge_id, password
