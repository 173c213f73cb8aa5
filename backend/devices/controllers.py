"""/api/devices: managed devices (viewer reads; editor changes, tests and browses through the edge)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

import msgspec
from litestar import Controller, Request, delete, get, patch, post
from litestar.datastructures import State
from litestar.params import JSONBody, PathParameter, QueryParameter

from backend.auth.guards import editor, viewer
from backend.credentials.ids import ID_PATTERN
from backend.deps import Address, Caller, Db
from backend.devices import service
from backend.devices.hooks import device_changed
from backend.devices.schemas import (
    BrowseResult,
    ConnectionTest,
    ConnectionTestResult,
    CsvImport,
    Device,
    DeviceCreate,
    DeviceUpdate,
    Protocol,
)
from backend.devices.validation import decode_error
from backend.edges.schemas import EDGE_ID_PATTERN
from backend.errors import ApiError

DeviceId = Annotated[str, PathParameter(pattern=ID_PATTERN, min_length=1, max_length=64)]
MAX_CSV_BYTES = 8 * 1024 * 1024


async def _csv_text(request: Request[Any, Any, Any]) -> str:
    """The CSV of a text/csv body, or of a JSON body ``{"csv": "..."}``."""
    raw = await request.body()
    if len(raw) > MAX_CSV_BYTES:
        raise ApiError(413, "too_large", f"the CSV is larger than {MAX_CSV_BYTES // (1024 * 1024)} MiB")
    media = (request.headers.get("content-type") or "").split(";", 1)[0].strip().lower()
    if media in ("application/json", ""):
        if media == "" and not raw.lstrip().startswith(b"{"):
            return _decode(raw)
        try:
            return msgspec.json.decode(raw, type=CsvImport).csv
        except msgspec.ValidationError as exc:
            problem = decode_error(exc, prefix="body")
            raise ApiError(400, "invalid_request", f"{problem.field}: {problem.message}", details=[problem]) from exc
        except msgspec.DecodeError as exc:
            raise ApiError(400, "invalid_request", f"the body is not JSON: {exc}") from exc
    if media in ("text/csv", "text/plain", "application/csv"):
        return _decode(raw)
    raise ApiError(415, "unsupported_media_type", f'send text/csv or application/json {{"csv": ...}}, not {media}')


def _decode(raw: bytes) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ApiError(400, "invalid_csv", f"the CSV is not UTF-8 (byte {exc.start})") from exc


class DeviceController(Controller):
    path = "/api/devices"
    tags = ["devices"]
    guards = [viewer]

    @get("/", summary="List devices")
    async def list_devices(
        self,
        db: Db,
        edge: Annotated[str | None, QueryParameter(pattern=EDGE_ID_PATTERN, description="Only this edge's")] = None,
        protocol: Annotated[Protocol | None, QueryParameter()] = None,
    ) -> list[Device]:
        return await service.list_devices(db, edge, protocol)

    @get("/{device_id:str}", summary="Get a device")
    async def get_device(self, db: Db, device_id: DeviceId) -> Device:
        return await service.get_device(db, device_id)

    @post("/", guards=[editor], summary="Create a device (settings validated as the protocol's node config)")
    async def create_device(
        self, db: Db, state: State, principal: Caller, address: Address, data: JSONBody[DeviceCreate]
    ) -> Device:
        device = await service.create_device(db, principal, data, address)
        await device_changed(state, device.id)
        return device

    @patch("/{device_id:str}", guards=[editor], summary="Change a device; flows using it are redeployed")
    async def update_device(
        self,
        db: Db,
        state: State,
        principal: Caller,
        address: Address,
        device_id: DeviceId,
        data: JSONBody[DeviceUpdate],
    ) -> Device:
        device = await service.update_device(db, principal, device_id, data, address)
        await device_changed(state, device_id)
        return device

    @delete("/{device_id:str}", guards=[editor], summary="Delete a device")
    async def delete_device(
        self, db: Db, state: State, principal: Caller, address: Address, device_id: DeviceId
    ) -> None:
        await service.delete_device(db, principal, device_id, address)
        await device_changed(state, device_id)

    @post(
        "/{device_id:str}/registers/csv",
        guards=[editor],
        status_code=200,
        summary="Import a Modbus register map from CSV (text/csv, or JSON {csv}); all rows or none",
        description="Columns: tag,table,address,data_type,byte_order,scale,offset,unit,length,bit; the header "
        "line is required. Every bad row is reported with its line number and column.",
    )
    async def import_registers(
        self,
        db: Db,
        state: State,
        request: Request[Any, Any, Any],
        principal: Caller,
        address: Address,
        device_id: DeviceId,
        mode: Annotated[
            Literal["replace", "append"],
            QueryParameter(description="replace the register map, or append to it"),
        ] = "replace",
    ) -> Device:
        text = await _csv_text(request)
        device = await service.import_registers_csv(db, principal, device_id, text, mode, address)
        await device_changed(state, device_id)
        return device

    @post(
        "/{device_id:str}/test",
        guards=[editor],
        status_code=200,
        summary="Test the connection to the device from its edge (503 edge_offline when the edge is offline)",
    )
    async def test_connection(
        self, db: Db, state: State, device_id: DeviceId, data: JSONBody[ConnectionTest | None] = None
    ) -> ConnectionTestResult:
        return await service.test_connection(
            db, state.box, state.nats, state.edge_status, device_id, data or ConnectionTest()
        )

    @get(
        "/{device_id:str}/browse",
        guards=[editor],
        summary="Browse an OPC UA device's address space from its edge (503 edge_offline when offline)",
    )
    async def browse(
        self,
        db: Db,
        state: State,
        device_id: DeviceId,
        node_id: Annotated[
            str | None,
            QueryParameter(max_length=4096, description="Node whose children to list; default: the Objects folder"),
        ] = None,
        timeout_s: Annotated[float, QueryParameter(gt=0, le=30)] = 10.0,
    ) -> BrowseResult:
        return await service.browse(db, state.box, state.nats, state.edge_status, device_id, node_id, timeout_s)
