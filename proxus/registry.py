"""What the compiler needs to know of device and edge management.

The Hub fills this from its database; the CLI reads it from a JSON file (``--registry``). The
compiler inlines a managed device's settings into the node that uses it and places the node on
the device's edge.
"""

from __future__ import annotations

from typing import Annotated, Any

import msgspec


class DeviceRecord(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """A managed device: its protocol settings and the edge that reaches it."""

    id: Annotated[str, msgspec.Meta(min_length=1, description="Device id")]
    name: Annotated[str, msgspec.Meta(description="Display name")] = ""
    protocol: Annotated[str, msgspec.Meta(description="Protocol, e.g. 'modbus' or 'opcua'")]
    edge: Annotated[str, msgspec.Meta(min_length=1, description="Id of the edge that polls the device")]
    settings: Annotated[
        dict[str, Any], msgspec.Meta(description="Config fields the device contributes to its nodes")
    ] = {}


class Registry(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Devices by id and the known edges (``None``: any edge id is accepted)."""

    devices: dict[str, DeviceRecord] = {}
    edges: frozenset[str] | None = None

    @classmethod
    def from_json(cls, data: bytes) -> Registry:
        raw = msgspec.json.decode(data)
        devices = {d["id"]: d for d in raw.get("devices", [])} if isinstance(raw.get("devices"), list) else {}
        if devices:
            raw = {**raw, "devices": devices}
        return msgspec.convert(raw, cls)


EMPTY_REGISTRY = Registry()
