"""Managed devices: CRUD with protocol-validated settings, CSV register import, the compiler's registry,
and connection tests / OPC UA browsing through the device's edge."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any, Literal

import asyncpg  # type: ignore[import-untyped, unused-ignore]
import msgspec

from backend.audit.service import record
from backend.auth.principal import Principal
from backend.credentials.ids import free_id
from backend.credentials.service import get_decrypted
from backend.devices.csvimport import parse_registers
from backend.devices.schemas import (
    BrowseNode,
    BrowseResult,
    ConnectionTest,
    ConnectionTestResult,
    CsvProblem,
    Device,
    DeviceCreate,
    DeviceUpdate,
)
from backend.devices.validation import (
    check_settings,
    credential_of,
    field_of,
    invalid,
    normalized,
    parse_settings,
    point_count,
    sampling_interval_ms,
)
from backend.edges.live import LiveStatus
from backend.edges.service import describe_last_seen
from backend.errors import ApiError, FieldProblem, not_found
from backend.hubnats import EdgeUnavailable, HubNats
from backend.security import SecretBox
from proxus.registry import DeviceRecord, Registry

_COLUMNS = "id, name, description, protocol, edge_id, credential_id, settings, created_at, updated_at"
# Requests to the edge (runtime/edge.py handlers).
TEST_ACTIONS = {"modbus": "modbus.test", "opcua": "opcua.test"}
BROWSE_ACTION = "opcua.browse"
REQUEST_MARGIN_S = 2.0  # on top of the device timeout: the NATS round trip through the leaf link


def _device(row: Mapping[str, Any]) -> Device:
    settings = row["settings"] or {}
    return Device(
        id=row["id"],
        name=row["name"],
        description=row["description"],
        protocol=row["protocol"],
        edge=row["edge_id"],
        credential=row["credential_id"],
        sampling_interval_ms=sampling_interval_ms(row["protocol"], settings),
        points=point_count(row["protocol"], settings),
        settings=settings,
        created_at=row["created_at"],
        updated_at=row["updated_at"],
    )


async def list_devices(conn: asyncpg.Connection, edge: str | None = None, protocol: str | None = None) -> list[Device]:
    rows = await conn.fetch(
        f"""SELECT {_COLUMNS} FROM devices WHERE ($1::text IS NULL OR edge_id = $1)
              AND ($2::text IS NULL OR protocol = $2) ORDER BY id""",
        edge,
        protocol,
    )
    return [_device(r) for r in rows]


async def get_device(conn: asyncpg.Connection, device_id: str) -> Device:
    row = await conn.fetchrow(f"SELECT {_COLUMNS} FROM devices WHERE id = $1", device_id)
    if row is None:
        raise not_found("device", device_id)
    return _device(row)


async def _check_references(conn: asyncpg.Connection, edge: str | None, settings: Mapping[str, Any]) -> None:
    problems = []
    if edge is not None and not await conn.fetchval("SELECT 1 FROM edges WHERE id = $1", edge):
        problems.append(FieldProblem("edge", f"edge {edge!r} is not registered"))
    credential = credential_of(dict(settings))
    if credential is not None and not await conn.fetchval("SELECT 1 FROM credentials WHERE id = $1", credential):
        problems.append(FieldProblem("settings.credential", f"credential {credential!r} does not exist"))
    if problems:
        raise invalid(problems)


async def create_device(conn: asyncpg.Connection, who: Principal, data: DeviceCreate, address: str) -> Device:
    settings = normalized(parse_settings(data.protocol, data.settings))
    async with conn.transaction():
        await _check_references(conn, data.edge, settings)
        device_id = data.id or await free_id(conn, "devices", data.name)
        if await conn.fetchval("SELECT 1 FROM devices WHERE id = $1", device_id):
            raise ApiError(409, "conflict", f"device {device_id!r} already exists", field="id")
        row = await conn.fetchrow(
            f"""INSERT INTO devices (id, name, description, protocol, edge_id, credential_id, settings)
                VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING {_COLUMNS}""",
            device_id,
            data.name,
            data.description,
            data.protocol,
            data.edge,
            credential_of(settings),
            settings,
        )
        device = _device(row)
        await record(conn, who, "device.create", "device", device.id, after=device, address=address)
    return device


async def _save(
    conn: asyncpg.Connection,
    who: Principal,
    before: Device,
    *,
    name: str,
    description: str,
    edge: str | None,
    settings: dict[str, Any],
    address: str,
    action: str = "device.update",
) -> Device:
    row = await conn.fetchrow(
        f"""UPDATE devices SET name = $2, description = $3, edge_id = $4, credential_id = $5, settings = $6,
                   updated_at = now()
            WHERE id = $1 RETURNING {_COLUMNS}""",
        before.id,
        name,
        description,
        edge,
        credential_of(settings),
        settings,
    )
    after = _device(row)
    await record(conn, who, action, "device", before.id, before=before, after=after, address=address)
    return after


async def update_device(
    conn: asyncpg.Connection, who: Principal, device_id: str, data: DeviceUpdate, address: str
) -> Device:
    async with conn.transaction():
        before = await get_device(conn, device_id)
        settings = (
            normalized(parse_settings(before.protocol, data.settings)) if data.settings is not None else before.settings
        )
        await _check_references(conn, data.edge, settings)
        return await _save(
            conn,
            who,
            before,
            name=data.name if data.name is not None else before.name,
            description=data.description if data.description is not None else before.description,
            edge=data.edge if data.edge is not None else before.edge,
            settings=settings,
            address=address,
        )


async def delete_device(conn: asyncpg.Connection, who: Principal, device_id: str, address: str) -> None:
    async with conn.transaction():
        before = await get_device(conn, device_id)
        await conn.execute("DELETE FROM devices WHERE id = $1", device_id)
        await record(conn, who, "device.delete", "device", device_id, before=before, address=address)


# -- CSV register maps --------------------------------------------------------------------------

_REGISTER_FIELD = re.compile(r"^settings\.registers\[(?P<index>\d+)\]\.?(?P<column>\w*)")


def csv_failed(problems: list[CsvProblem]) -> ApiError:
    ordered = sorted(problems, key=lambda p: (p.line, p.column))
    shown = "; ".join(f"line {p.line}" + (f", {p.column}" if p.column else "") + f": {p.message}" for p in ordered[:5])
    more = f"; and {len(ordered) - 5} more" if len(ordered) > 5 else ""
    return ApiError(
        400,
        "invalid_csv",
        f"{len(ordered)} problem(s) in the CSV, nothing was imported: {shown}{more}",
        details=[FieldProblem(f"line {p.line}" + (f".{p.column}" if p.column else ""), p.message) for p in ordered],
        extra={"problems": msgspec.to_builtins(ordered)},
    )


async def import_registers_csv(
    conn: asyncpg.Connection,
    who: Principal,
    device_id: str,
    text: str,
    mode: Literal["replace", "append"],
    address: str,
) -> Device:
    """Replace (or extend) a Modbus device's register map from CSV; all rows or none."""
    rows, problems = parse_registers(text)
    async with conn.transaction():
        before = await get_device(conn, device_id)
        if before.protocol != "modbus":
            raise ApiError(
                400, "invalid_request", f"device {device_id!r} is an {before.protocol} device; CSV import is for modbus"
            )
        if problems:
            raise csv_failed(problems)
        kept = list(before.settings.get("registers", [])) if mode == "append" else []
        registers = kept + [msgspec.to_builtins(r.register) for r in rows]
        settings = {**before.settings, "registers": registers}
        config, found = check_settings("modbus", settings)
        if config is None:  # problems across rows (duplicate tags, a value running past 65535, ...)
            raise csv_failed([_csv_problem(p, [r.line for r in rows], len(kept)) for p in found])
        return await _save(
            conn,
            who,
            before,
            name=before.name,
            description=before.description,
            edge=before.edge,
            settings=normalized(config),
            address=address,
            action="device.import_registers",
        )


def _csv_problem(problem: FieldProblem, lines: list[int], offset: int) -> CsvProblem:
    match = _REGISTER_FIELD.match(problem.field)
    if match is None or int(match["index"]) < offset:
        where = f" ({problem.field})" if match is not None else ""
        return CsvProblem(line=0, column="", message=f"{problem.message}{where}")
    return CsvProblem(line=lines[int(match["index"]) - offset], column=match["column"], message=problem.message)


# -- for other domains --------------------------------------------------------------------------


async def registry(conn: asyncpg.Connection) -> Registry:
    """Every device assigned to an edge, with its settings (the node-config fields it contributes),
    and the registered edge ids: what the compiler needs."""
    rows = await conn.fetch(
        "SELECT id, name, protocol, edge_id, settings FROM devices WHERE edge_id IS NOT NULL ORDER BY id"
    )
    edges = frozenset(r["id"] for r in await conn.fetch("SELECT id FROM edges"))
    devices = {
        r["id"]: DeviceRecord(
            id=r["id"], name=r["name"], protocol=r["protocol"], edge=r["edge_id"], settings=dict(r["settings"] or {})
        )
        for r in rows
    }
    return Registry(devices=devices, edges=edges)


async def devices_on_edge(conn: asyncpg.Connection, edge_id: str) -> list[str]:
    return [r["id"] for r in await conn.fetch("SELECT id FROM devices WHERE edge_id = $1 ORDER BY id", edge_id)]


# -- through the edge ---------------------------------------------------------------------------


async def _edge_request(
    nats: HubNats, live: LiveStatus, device: Device, action: str, body: dict[str, Any], timeout_s: float
) -> dict[str, Any]:
    if device.edge is None:
        raise ApiError(409, "conflict", f"device {device.id!r} is not assigned to an edge", field="edge")
    try:
        return await nats.request(device.edge, action, body, timeout_s + REQUEST_MARGIN_S)
    except EdgeUnavailable as exc:
        raise ApiError(
            503,
            "edge_offline",
            f"edge {device.edge} is offline ({describe_last_seen(live, device.edge)}); "
            f"it has to be online to reach device {device.id}",
            extra={"edge": device.edge},
        ) from exc


async def _request_body(
    conn: asyncpg.Connection, box: SecretBox, device: Device, settings: dict[str, Any], timeout_s: float
) -> dict[str, Any]:
    credential_id = credential_of(settings)
    credential = await get_decrypted(conn, box, credential_id) if credential_id else None
    if credential_id and credential is None:
        raise ApiError(
            400, "invalid_request", f"credential {credential_id!r} does not exist", field="settings.credential"
        )
    return {
        "device": device.id,
        "config": {**settings, "device": device.id},
        "credential": msgspec.to_builtins(credential) if credential is not None else None,
        "timeout_s": timeout_s,
    }


async def test_connection(
    conn: asyncpg.Connection, box: SecretBox, nats: HubNats, live: LiveStatus, device_id: str, req: ConnectionTest
) -> ConnectionTestResult:
    device = await get_device(conn, device_id)
    settings = device.settings
    if req.settings is not None:
        settings = normalized(parse_settings(device.protocol, req.settings))
        await _check_references(conn, None, settings)
    body = await _request_body(conn, box, device, settings, req.timeout_s)
    answer = await _edge_request(nats, live, device, TEST_ACTIONS[device.protocol], body, req.timeout_s)
    assert device.edge is not None
    latency = answer.get("latency_ms")
    return ConnectionTestResult(
        ok=bool(answer.get("ok")),
        message=str(answer.get("message") or answer.get("error") or ""),
        device=device.id,
        edge=device.edge,
        latency_ms=float(latency) if isinstance(latency, int | float) else None,
        details={k: v for k, v in answer.items() if k not in ("ok", "message", "error", "latency_ms")},
    )


test_connection.__test__ = False  # type: ignore[attr-defined]  # not a pytest test


async def browse(
    conn: asyncpg.Connection,
    box: SecretBox,
    nats: HubNats,
    live: LiveStatus,
    device_id: str,
    node_id: str | None,
    timeout_s: float,
) -> BrowseResult:
    device = await get_device(conn, device_id)
    if device.protocol != "opcua":
        raise ApiError(
            400, "invalid_request", f"device {device_id!r} is a {device.protocol} device; only OPC UA browses"
        )
    body = await _request_body(conn, box, device, device.settings, timeout_s)
    body["node_id"] = node_id
    answer = await _edge_request(nats, live, device, BROWSE_ACTION, body, timeout_s)
    assert device.edge is not None
    if not answer.get("ok"):
        raise ApiError(
            502,
            "device_error",
            str(answer.get("message") or answer.get("error") or "the edge could not browse the device"),
            extra={"edge": device.edge},
        )
    try:
        children = msgspec.convert(answer.get("nodes", answer.get("children", [])), list[BrowseNode])
    except msgspec.ValidationError as exc:
        raise ApiError(502, "edge_error", f"the edge's browse answer is malformed: {exc}") from exc
    return BrowseResult(device=device.id, edge=device.edge, node_id=node_id, children=children)


__all__ = [
    "browse",
    "create_device",
    "delete_device",
    "devices_on_edge",
    "field_of",
    "get_device",
    "import_registers_csv",
    "list_devices",
    "registry",
    "test_connection",
    "update_device",
]
