"""What the alerts API accepts and returns: rules, alerts with history, channels, notifications."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

import msgspec

Severity = Literal["info", "warning", "critical"]
SEVERITY_RANK: dict[str, int] = {"info": 0, "warning": 1, "critical": 2}
Event = Literal["raise", "clear", "ack"]
RuleKind = Literal["edge_offline", "device_disconnected", "node_error_rate", "outbox_depth", "series_threshold"]

_Id = Annotated[str, msgspec.Meta(pattern=r"^[A-Za-z0-9_-]{1,64}$")]
EdgeFilter = Annotated[_Id | None, msgspec.Meta(description="Only this edge (default: every edge)")]
FlowFilter = Annotated[_Id | None, msgspec.Meta(description="Only nodes of this flow (default: every flow)")]
NodeFilter = Annotated[_Id | None, msgspec.Meta(description="Only this node id (default: every node)")]
ForS = Annotated[
    float,
    msgspec.Meta(ge=0, le=7 * 86400, description="How long the condition must hold before the alert is raised, in s"),
]
Name = Annotated[str, msgspec.Meta(min_length=1, max_length=200)]
Description = Annotated[str, msgspec.Meta(max_length=5000)]


class _Condition(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True, tag_field="kind"):
    pass


class EdgeOffline(_Condition, frozen=True, kw_only=True, forbid_unknown_fields=True, tag="edge_offline"):
    """An edge sent no status message (heartbeat or plan report) for silent_s seconds."""

    edge: EdgeFilter = None
    silent_s: Annotated[float, msgspec.Meta(ge=1, le=7 * 86400, description="Silence that counts as offline, in s")] = (
        30.0
    )


class DeviceDisconnected(_Condition, frozen=True, kw_only=True, forbid_unknown_fields=True, tag="device_disconnected"):
    """A device node reported connected = false for for_s seconds."""

    edge: EdgeFilter = None
    flow: FlowFilter = None
    node: NodeFilter = None
    for_s: ForS = 10.0


class NodeErrorRate(_Condition, frozen=True, kw_only=True, forbid_unknown_fields=True, tag="node_error_rate"):
    """A node's errors per minute, measured over window_s, are above errors_per_min."""

    edge: EdgeFilter = None
    flow: FlowFilter = None
    node: NodeFilter = None
    errors_per_min: Annotated[float, msgspec.Meta(gt=0, le=1e9, description="Errors per minute above which to alert")]
    window_s: Annotated[float, msgspec.Meta(ge=1, le=3600, description="Period the rate is measured over, in s")] = 60.0
    for_s: ForS = 0.0


class OutboxDepth(_Condition, frozen=True, kw_only=True, forbid_unknown_fields=True, tag="outbox_depth"):
    """An edge's outbox (data buffered for the Hub) holds more than `above` messages."""

    edge: EdgeFilter = None
    above: Annotated[int, msgspec.Meta(ge=0, le=2**62, description="Depth above which to alert")]
    for_s: ForS = 0.0


class SeriesThreshold(_Condition, frozen=True, kw_only=True, forbid_unknown_fields=True, tag="series_threshold"):
    """The latest value of a historian series is above `above` or below `below`."""

    series: Annotated[str, msgspec.Meta(min_length=1, max_length=1000, description="Series key, e.g. line1/temp")]
    above: Annotated[float | None, msgspec.Meta(description="Alert when the value is above this")] = None
    below: Annotated[float | None, msgspec.Meta(description="Alert when the value is below this")] = None
    hysteresis: Annotated[
        float, msgspec.Meta(ge=0, description="How far back inside the limit the value must be to clear")
    ] = 0.0
    max_age_s: Annotated[
        Annotated[float, msgspec.Meta(gt=0)] | None,
        msgspec.Meta(description="Ignore a latest value older than this, in s (default: any age)"),
    ] = None
    for_s: ForS = 0.0


Condition = EdgeOffline | DeviceDisconnected | NodeErrorRate | OutboxDepth | SeriesThreshold


class RuleCreate(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    name: Name
    description: Description = ""
    severity: Severity = "warning"
    enabled: bool = True
    condition: Condition


class RuleUpdate(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True, omit_defaults=True):
    name: Name | None = None
    description: Description | None = None
    severity: Severity | None = None
    enabled: bool | None = None
    condition: Condition | None = None


class Rule(msgspec.Struct, frozen=True, kw_only=True):
    id: int
    name: str
    description: str
    severity: Severity
    enabled: bool
    condition: Condition
    created_by: str
    created_at: datetime
    updated_at: datetime


class Alert(msgspec.Struct, frozen=True, kw_only=True):
    id: int
    source: Literal["rule", "alarm"]
    rule_id: int | None
    rule_name: str
    kind: str
    subject: Annotated[str, msgspec.Meta(description="The edge, device (edge/flow/node), node or series concerned")]
    title: str
    severity: Severity
    state: Literal["active", "cleared"]
    raised_at: datetime
    value: Any | None
    message: str
    cleared_at: datetime | None
    clear_value: Any | None
    clear_message: str
    acknowledged_at: datetime | None
    acknowledged_by: str | None
    ack_comment: str


class Transition(msgspec.Struct, frozen=True, kw_only=True):
    at: datetime
    transition: Literal["raised", "cleared", "acknowledged"]
    by: Annotated[str, msgspec.Meta(description="User who acknowledged; '' for the Hub")]
    value: Any | None
    message: str


class Attempt(msgspec.Struct, frozen=True, kw_only=True):
    at: datetime
    status: int | None
    error: str
    duration_ms: int


class Notification(msgspec.Struct, frozen=True, kw_only=True):
    id: int
    alert_id: int | None
    channel_id: int
    event: Literal["raise", "clear", "ack", "test"]
    state: Literal["pending", "sent", "failed"]
    attempts: int
    next_attempt_at: datetime
    created_at: datetime
    sent_at: datetime | None
    last_error: str
    attempt_log: list[Attempt] = msgspec.field(default_factory=list)


class AlertDetail(msgspec.Struct, frozen=True, kw_only=True):
    alert: Alert
    transitions: list[Transition]
    notifications: list[Notification]


class Ack(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    comment: Annotated[str, msgspec.Meta(max_length=2000)] = ""


HeaderName = Annotated[str, msgspec.Meta(min_length=1, max_length=200)]


class Webhook(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True, tag="webhook", tag_field="kind"):
    """POST a JSON message to a URL. Secrets come from a stored credential, never from this form."""

    url: Annotated[str, msgspec.Meta(min_length=1, max_length=2048, examples=["https://example.com/hooks/proxus"])]
    headers: Annotated[
        dict[HeaderName, Annotated[str, msgspec.Meta(max_length=2000)]],
        msgspec.Meta(description="Additional, non-secret headers"),
    ] = msgspec.field(default_factory=dict)
    credential: Annotated[
        _Id | None, msgspec.Meta(description="Id of a stored credential for the auth header; none when not set")
    ] = None
    auth_scheme: Annotated[
        Literal["bearer", "basic", "header"],
        msgspec.Meta(description="bearer: 'Bearer <token>'; basic: user name and password; header: the value as is"),
    ] = "bearer"
    auth_header: Annotated[str, msgspec.Meta(min_length=1, max_length=200)] = "Authorization"
    timeout_ms: Annotated[int, msgspec.Meta(ge=100, le=60_000, description="Per attempt, in ms")] = 10_000


Target = Webhook
SendOn = Annotated[
    list[Event],
    msgspec.Meta(max_length=3, description="Which transitions are sent: raise, clear, ack"),
]
RuleIds = Annotated[
    Annotated[list[Annotated[int, msgspec.Meta(ge=1, le=2**62)]], msgspec.Meta(max_length=1000)] | None,
    msgspec.Meta(description="Only alerts of these rules (default: every rule)"),
]


class ChannelCreate(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    name: Name
    enabled: bool = True
    target: Target
    min_severity: Annotated[Severity, msgspec.Meta(description="Only alerts at least this severe")] = "info"
    send_on: SendOn = msgspec.field(default_factory=lambda: ["raise", "clear"])
    rule_ids: RuleIds = None
    alarm_events: Annotated[bool, msgspec.Meta(description="Also alerts from analytics alarm events")] = True
    max_attempts: Annotated[int, msgspec.Meta(ge=1, le=20, description="Delivery attempts before giving up")] = 8


class ChannelUpdate(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True, omit_defaults=True):
    name: Name | None = None
    enabled: bool | None = None
    target: Target | None = None
    min_severity: Severity | None = None
    send_on: SendOn | None = None
    rule_ids: RuleIds = None
    clear_rule_ids: Annotated[bool, msgspec.Meta(description="Set rule_ids back to every rule")] = False
    alarm_events: bool | None = None
    max_attempts: Annotated[int, msgspec.Meta(ge=1, le=20)] | None = None


class Channel(msgspec.Struct, frozen=True, kw_only=True):
    id: int
    name: str
    enabled: bool
    target: Target
    min_severity: Severity
    send_on: list[Event]
    rule_ids: list[int] | None
    alarm_events: bool
    max_attempts: int
    created_by: str
    created_at: datetime
    updated_at: datetime


class ChannelTest(msgspec.Struct, frozen=True, kw_only=True):
    ok: bool
    status: int | None
    error: str
    duration_ms: int
    notification_id: int
