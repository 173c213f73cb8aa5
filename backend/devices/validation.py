"""Device settings are validated by decoding them into the protocol's node config struct.

Errors name the field as ``settings.<path>`` (``settings.registers[0].address``), the same path the
node's config form uses under ``$``.
"""

from __future__ import annotations

import re
from typing import Any

import msgspec

from backend.errors import ApiError, FieldProblem
from nodes.device.modbus_read import ModbusReadConfig
from nodes.device.opcua_subscribe import OpcUaSubscribeConfig
from nodes.spec import NodeConfig

CONFIGS: dict[str, type[NodeConfig]] = {"modbus": ModbusReadConfig, "opcua": OpcUaSubscribeConfig}
# The node type that reads a device of each protocol.
NODE_TYPES = {"modbus": "modbus.read", "opcua": "opcua.subscribe"}
# Problems a device may have while it is being set up: its register map / node list is filled later
# (CSV import, browse), and nodes that use it say so when they are compiled.
_ALLOWED_WHILE_EMPTY = {"$.registers", "$.nodes"}

_UNKNOWN = re.compile(r"unknown field `(?P<name>[^`]+)`")
_AT = re.compile(r"^(?P<message>.*?)(?: - at `\$(?P<path>[^`]*)`)?$", re.DOTALL)


def field_of(path: str, prefix: str = "settings") -> str:
    """``$.registers[0].address`` → ``settings.registers[0].address``; ``$`` → ``settings``."""
    rest = path[1:] if path.startswith("$") else path
    return prefix + rest


def decode_error(exc: msgspec.ValidationError, prefix: str = "settings") -> FieldProblem:
    match = _AT.match(str(exc))
    assert match is not None
    path = "$" + (match["path"] or "")
    unknown = _UNKNOWN.search(match["message"])
    if unknown:  # name the unknown field itself
        path += f".{unknown['name']}"
    return FieldProblem(field_of(path, prefix), match["message"])


def check_settings(protocol: str, settings: dict[str, Any]) -> tuple[NodeConfig | None, list[FieldProblem]]:
    """Decode ``settings`` into the node config: the config, or None and the problems found."""
    if "device" in settings:
        return None, [FieldProblem("settings.device", "a device's settings cannot refer to another device")]
    try:
        config = msgspec.convert(settings, CONFIGS[protocol])
    except msgspec.ValidationError as exc:
        return None, [decode_error(exc)]
    problems = [
        FieldProblem(field_of(p.path), _message(p.path, p.message, p.hint))
        for p in config.problems()
        if p.path not in _ALLOWED_WHILE_EMPTY
    ]
    return (None if problems else config), problems


def invalid(problems: list[FieldProblem]) -> ApiError:
    message = "; ".join(f"{p.field}: {p.message}" for p in problems[:5])
    if len(problems) > 5:
        message += f"; and {len(problems) - 5} more"
    return ApiError(400, "invalid_request", message, details=problems)


def parse_settings(protocol: str, settings: dict[str, Any]) -> NodeConfig:
    """Decode ``settings`` into the node config; raises ApiError(400) naming every problem's field."""
    config, problems = check_settings(protocol, settings)
    if config is None:
        raise invalid(problems)
    return config


def _message(path: str, message: str, hint: str) -> str:
    if path in ("$.host", "$.endpoint") and message.startswith("no "):
        hint = f"set the device's {path[2:]}"
    return f"{message}; {hint}" if hint else message


def normalized(config: NodeConfig) -> dict[str, Any]:
    """The settings as stored: every field of the config, ``device`` and unset (None) fields left out."""
    data: dict[str, Any] = msgspec.to_builtins(config)
    return {k: v for k, v in data.items() if k != "device" and v is not None}


def sampling_interval_ms(protocol: str, settings: dict[str, Any]) -> int:
    key = "poll_interval_ms" if protocol == "modbus" else "publishing_interval_ms"
    value = settings.get(key)
    return int(value) if isinstance(value, int) else 0


def point_count(protocol: str, settings: dict[str, Any]) -> int:
    items = settings.get("registers" if protocol == "modbus" else "nodes")
    return len(items) if isinstance(items, list) else 0


def credential_of(settings: dict[str, Any]) -> str | None:
    value = settings.get("credential")
    return value if isinstance(value, str) and value else None
