"""Edges as the API accepts and shows them, with their live status."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

import msgspec

EDGE_ID_PATTERN = r"^[A-Za-z0-9_-]{1,64}$"

EdgeId = Annotated[
    str,
    msgspec.Meta(
        pattern=EDGE_ID_PATTERN,
        description="Letters, digits, '_' and '-'; 1-64 characters. Also the edge's NATS user and JetStream domain.",
        examples=["plant1-line3"],
    ),
]
Name = Annotated[str, msgspec.Meta(max_length=200, description="Display name")]
Description = Annotated[str, msgspec.Meta(max_length=2000)]


class EdgeCreate(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    id: EdgeId
    name: Name = ""
    description: Description = ""


class EdgeUpdate(msgspec.Struct, frozen=True, forbid_unknown_fields=True, omit_defaults=True, kw_only=True):
    name: Name | None = None
    description: Description | None = None


class FlowStatus(msgspec.Struct, frozen=True, kw_only=True):
    """One flow on the edge: what the Hub wants it to run and what it reports running."""

    flow_id: str
    desired_hash: Annotated[str | None, msgspec.Meta(description="Hash of the plan in the plans bucket")] = None
    applied_hash: Annotated[str | None, msgspec.Meta(description="Hash of the plan the edge runs")] = None
    state: Annotated[
        str,
        msgspec.Meta(
            description="applied | failed | pending (edge reports), not_reported (desired, the edge has not "
            "answered), undeployed (runs on the edge but is no longer desired)"
        ),
    ] = "not_reported"
    error: str = ""
    in_sync: bool = False
    nodes: Annotated[
        dict[str, Any], msgspec.Meta(description="Per-node metrics from the last heartbeat, by node id")
    ] = msgspec.field(default_factory=dict)


class EdgeStatus(msgspec.Struct, frozen=True, kw_only=True):
    online: bool = False
    last_seen: datetime | None = None
    uptime_s: float | None = None
    outbox_depth: int | None = None
    cpu_percent: float | None = None
    rss_bytes: int | None = None
    devices: Annotated[dict[str, Any], msgspec.Meta(description="Device connection states by '<flow>/<node>'")] = (
        msgspec.field(default_factory=dict)
    )
    flows: list[FlowStatus] = msgspec.field(default_factory=list)
    in_sync: Annotated[bool, msgspec.Meta(description="Every desired plan is applied and nothing else runs")] = True
    error: Annotated[str, msgspec.Meta(description="The last plan bundle error the edge reported")] = ""


class Edge(msgspec.Struct, frozen=True, kw_only=True):
    id: str
    name: str
    description: str
    created_at: datetime
    updated_at: datetime
    devices: Annotated[list[str], msgspec.Meta(description="Ids of the devices assigned to the edge")] = msgspec.field(
        default_factory=list
    )
    status: EdgeStatus = msgspec.field(default_factory=EdgeStatus)


class NatsUserState(msgspec.Struct, frozen=True, kw_only=True):
    applied: Annotated[
        bool, msgspec.Meta(description="The Hub's embedded NATS now accepts (or refuses) this edge's credentials")
    ]
    message: str
    user_config: Annotated[
        str | None,
        msgspec.Meta(description="With an external NATS: the user entry to add to account APP of its config"),
    ] = None


class EdgeCredentials(msgspec.Struct, frozen=True, kw_only=True):
    """What an edge needs to join: shown once, at registration or rotation."""

    edge: Edge
    password: Annotated[str, msgspec.Meta(description="The edge's NATS password: shown this once, store it now")]
    hub_leaf_url: Annotated[str, msgspec.Meta(description="nats-leaf://<id>:<password>@<hub host>:<leaf port>")]
    command: Annotated[str, msgspec.Meta(description="The command that runs the edge")]
    settings_file: Annotated[
        dict[str, Any], msgspec.Meta(description="Settings as JSON, for `proxus edge --config FILE`")
    ]
    nats: NatsUserState


class EdgeRemoved(msgspec.Struct, frozen=True, kw_only=True):
    id: str
    unassigned_devices: list[str] = msgspec.field(default_factory=list)
    nats: NatsUserState
