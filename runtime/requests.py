"""Requests the Hub makes through an edge: test a device connection, browse an OPC UA server.

Each handler takes the request body (JSON) and returns a JSON-able answer; the edge agent maps
``proxus.edge.<edge>.req.<action>`` to these. Bodies carry the device's node config
(``config``), the decrypted credential it references (``credential``, over the NATS link) and
a ``timeout_s``. Failures of the device are answers (``ok: false`` with a message), not errors.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import msgspec

from nodes.device.modbus_read import ModbusReadConfig, test_modbus_connection
from nodes.device.opcua_client import OpcUaError, browse, test_opcua_connection
from nodes.device.opcua_subscribe import OpcUaSubscribeConfig
from nodes.host import Credential

Handler = Callable[[dict[str, Any]], Awaitable[dict[str, Any]]]
MAX_TIMEOUT_S = 30.0


class BadRequest(ValueError):
    pass


def _timeout(body: dict[str, Any]) -> float:
    value = body.get("timeout_s", 5.0)
    if not isinstance(value, int | float) or not 0 < value <= MAX_TIMEOUT_S:
        raise BadRequest(f"timeout_s must be a number in (0, {MAX_TIMEOUT_S:g}]")
    return float(value)


def _config(body: dict[str, Any], type_: type[Any]) -> Any:
    try:
        return msgspec.convert(body.get("config", {}), type_)
    except msgspec.ValidationError as exc:
        raise BadRequest(f"invalid device config: {exc}") from exc


def _credential(body: dict[str, Any]) -> Credential | None:
    raw = body.get("credential")
    return msgspec.convert(raw, Credential) if raw else None


def device_handlers(data_dir: Path) -> dict[str, Handler]:
    """The request handlers of an edge whose private files live under ``data_dir``."""
    opcua_dir = data_dir / "requests"

    async def modbus_test(body: dict[str, Any]) -> dict[str, Any]:
        return await test_modbus_connection(_config(body, ModbusReadConfig), _timeout(body))

    async def opcua_test(body: dict[str, Any]) -> dict[str, Any]:
        config = _config(body, OpcUaSubscribeConfig)
        return await test_opcua_connection(config, _credential(body), opcua_dir, _timeout(body))

    async def opcua_browse(body: dict[str, Any]) -> dict[str, Any]:
        config = _config(body, OpcUaSubscribeConfig)
        node_id = body.get("node_id")
        if node_id is not None and not isinstance(node_id, str):
            raise BadRequest("node_id must be a string")
        try:
            nodes = await browse(config, node_id, _credential(body), opcua_dir, _timeout(body))
        except OpcUaError as exc:
            return {"ok": False, "message": str(exc), "nodes": []}
        return {"ok": True, "message": f"{len(nodes)} node(s)", "nodes": nodes}

    return {"modbus.test": modbus_test, "opcua.test": opcua_test, "opcua.browse": opcua_browse}
