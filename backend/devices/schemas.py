"""Devices as the API accepts and shows them.

A device's ``settings`` are exactly the connection fields of the node that reads it: for
``modbus`` those of ``modbus.read`` (host, port, unit_id, poll_interval_ms, timeout_ms, retries,
max_gap, default_byte_order, registers), for ``opcua`` those of ``opcua.subscribe`` (endpoint,
security_policy, security_mode, credential, publishing_interval_ms, nodes). The catalog's JSON
Schemas of those node types describe them field by field.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

import msgspec

from backend.credentials.ids import TextId
from backend.edges.schemas import EdgeId

Protocol = Literal["modbus", "opcua"]
Name = Annotated[str, msgspec.Meta(min_length=1, max_length=200, description="Display name")]
Description = Annotated[str, msgspec.Meta(max_length=2000)]
Settings = Annotated[
    dict[str, Any],
    msgspec.Meta(
        description="Connection fields of the protocol's node: modbus.read for modbus, opcua.subscribe for opcua"
    ),
]


class DeviceCreate(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    name: Name
    protocol: Protocol
    edge: Annotated[EdgeId, msgspec.Meta(description="Id of the registered edge that reaches the device")]
    settings: Settings = msgspec.field(default_factory=dict)
    description: Description = ""
    id: Annotated[
        TextId | None,
        msgspec.Meta(description="Id flows refer to and series keys start with; derived from the name when unset"),
    ] = None


class DeviceUpdate(msgspec.Struct, frozen=True, forbid_unknown_fields=True, omit_defaults=True, kw_only=True):
    name: Name | None = None
    description: Description | None = None
    edge: Annotated[EdgeId | None, msgspec.Meta(description="Move the device to another edge")] = None
    settings: Annotated[Settings | None, msgspec.Meta(description="Replaces all settings")] = None


class Device(msgspec.Struct, frozen=True, kw_only=True):
    id: str
    name: str
    description: str
    protocol: Protocol
    edge: Annotated[str | None, msgspec.Meta(description="None after its edge was removed with force")]
    credential: str | None
    sampling_interval_ms: Annotated[
        int, msgspec.Meta(description="poll_interval_ms (modbus) or publishing_interval_ms (opcua)")
    ]
    points: Annotated[int, msgspec.Meta(description="Number of registers (modbus) or monitored nodes (opcua)")]
    settings: dict[str, Any]
    created_at: datetime
    updated_at: datetime


class CsvImport(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    csv: Annotated[
        str,
        msgspec.Meta(
            max_length=8 * 1024 * 1024,
            description="tag,table,address,data_type,byte_order,scale,offset,unit,length,bit with a header line",
        ),
    ]


class CsvProblem(msgspec.Struct, frozen=True, kw_only=True):
    line: int
    column: str
    message: str


class ConnectionTest(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    timeout_s: Annotated[float, msgspec.Meta(gt=0, le=30, description="How long the edge tries")] = 5.0
    settings: Annotated[
        dict[str, Any] | None,
        msgspec.Meta(description="Unsaved settings to test instead of the stored ones (same validation)"),
    ] = None


class ConnectionTestResult(msgspec.Struct, frozen=True, kw_only=True):
    ok: bool
    message: str
    device: str
    edge: str
    latency_ms: float | None = None
    details: Annotated[
        dict[str, Any],
        msgspec.Meta(description="The rest of the edge's answer: sample values (modbus), server info (opcua)"),
    ] = msgspec.field(default_factory=dict)


class BrowseNode(msgspec.Struct, frozen=True, kw_only=True):
    node_id: str
    browse_name: str
    display_name: str
    node_class: str
    data_type: str | None = None
    value: Any = None
    has_children: bool = False


class BrowseResult(msgspec.Struct, frozen=True, kw_only=True):
    device: str
    edge: str
    node_id: Annotated[str | None, msgspec.Meta(description="The browsed node; None: the Objects folder")]
    children: list[BrowseNode]
