"""The data domain's API shapes: historian queries, dashboards, the live stream."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

import msgspec

# -- common -----------------------------------------------------------------------------------------

SeriesKey = Annotated[
    str,
    msgspec.Meta(
        min_length=1,
        max_length=512,
        description="A series key: device/tag, or its unified-namespace path",
        examples=["line1/press/temperature"],
    ),
]
DURATION_PATTERN = r"^[1-9][0-9]{0,5}(ms|s|m|h|d|w)$"
Duration = Annotated[
    str,
    msgspec.Meta(
        pattern=DURATION_PATTERN,
        description="A duration: a number and a unit (ms, s, m, h, d, w)",
        examples=["10s", "5m", "1h"],
    ),
]
QualityName = Literal["good", "uncertain", "bad"]
Value = float | str | None
AggregateFn = Literal["avg", "min", "max", "sum", "count", "first", "last"]
Order = Literal["asc", "desc"]


# -- historian queries ------------------------------------------------------------------------------


class SeriesInfo(msgspec.Struct, frozen=True, kw_only=True):
    series: str
    first_ts: datetime
    last_ts: datetime
    points: Annotated[int, msgspec.Meta(description="Points stored (an estimate: replays count again)")]
    last_value: Value
    last_quality: QualityName


class SeriesPage(msgspec.Struct, frozen=True, kw_only=True):
    items: list[SeriesInfo]
    next_cursor: Annotated[str | None, msgspec.Meta(description="Pass as `cursor` for the next page")] = None


class PointRow(msgspec.Struct, frozen=True, kw_only=True):
    series: str
    ts: datetime
    value: Value
    quality: QualityName


class PointsPage(msgspec.Struct, frozen=True, kw_only=True):
    """Points ordered by series, then time (descending with order=desc)."""

    items: list[PointRow]
    next_cursor: str | None = None


class Bucket(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """One time bucket; the requested functions only (null results left out)."""

    t: Annotated[datetime, msgspec.Meta(description="The bucket's start")]
    avg: float | None = None
    min: float | None = None
    max: float | None = None
    sum: float | None = None
    count: int | None = None
    first: float | None = None
    last: float | None = None


class SeriesBuckets(msgspec.Struct, frozen=True, kw_only=True):
    series: str
    buckets: list[Bucket]


class AggregateResult(msgspec.Struct, frozen=True, kw_only=True):
    start: datetime
    end: datetime
    bucket: str
    functions: list[AggregateFn]
    series: list[SeriesBuckets]


class LatestValue(msgspec.Struct, frozen=True, kw_only=True):
    series: str
    ts: datetime | None
    value: Value
    quality: QualityName | None


class EventRow(msgspec.Struct, frozen=True, kw_only=True):
    ts: datetime
    series: str
    alarm: str
    state: str
    severity: str
    value: Value
    message: str


class EventsPage(msgspec.Struct, frozen=True, kw_only=True):
    """Events, newest first."""

    items: list[EventRow]
    next_cursor: str | None = None


class SourceStatus(msgspec.Struct, frozen=True, kw_only=True):
    edge: str
    lag: int
    active_s: Annotated[float | None, msgspec.Meta(description="Seconds since the hub last heard from the source")]
    error: str = ""
    stored_origin_seq: int = 0
    purged_origin_seq: int = 0


class HistorianStatus(msgspec.Struct, frozen=True, kw_only=True):
    running: bool
    stream: str
    edges: list[str]
    sources: list[SourceStatus]
    pending: int
    ack_pending: int
    messages_stored: int
    rows_inserted: int
    rows_duplicate: int
    rejected: int
    redelivered: int
    kicks: int
    last_commit_at: datetime | None
    last_error: str


# -- dashboards -------------------------------------------------------------------------------------

ChartKind = Literal["line", "area", "bar", "stat", "gauge", "table"]
PanelAggregate = Literal["none", "avg", "min", "max", "sum", "count", "first", "last"]
PanelId = Annotated[str, msgspec.Meta(pattern=r"^[A-Za-z0-9_-]{1,64}$")]
Color = Annotated[
    str,
    msgspec.Meta(pattern=r"^(#[0-9a-fA-F]{6}|[a-z]{3,20})$", description="#rrggbb or a color name", examples=["red"]),
]


class TimeRange(msgspec.Struct, frozen=True, forbid_unknown_fields=True, omit_defaults=True, kw_only=True):
    """Either relative (``last``: the last hour, ...) or absolute (``from`` and ``to``)."""

    last: Annotated[Duration | None, msgspec.Meta(description="Relative: up to now", examples=["1h"])] = None
    start: datetime | None = msgspec.field(default=None, name="from")
    end: datetime | None = msgspec.field(default=None, name="to")


def _last_hour() -> TimeRange:
    return TimeRange(last="1h")


class Threshold(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    value: float
    color: Color
    label: Annotated[str, msgspec.Meta(max_length=100)] = ""


class PanelLayout(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """Grid position and size (columns and rows of the dashboard grid)."""

    x: Annotated[int, msgspec.Meta(ge=0, le=1000)] = 0
    y: Annotated[int, msgspec.Meta(ge=0, le=1000)] = 0
    w: Annotated[int, msgspec.Meta(ge=1, le=1000)] = 6
    h: Annotated[int, msgspec.Meta(ge=1, le=1000)] = 4


class Panel(msgspec.Struct, frozen=True, forbid_unknown_fields=True, omit_defaults=True, kw_only=True):
    id: Annotated[PanelId | None, msgspec.Meta(description="Stable within the dashboard; assigned when unset")] = None
    title: Annotated[str, msgspec.Meta(max_length=200)] = ""
    kind: ChartKind = "line"
    series: Annotated[list[SeriesKey], msgspec.Meta(min_length=1, max_length=20)]
    time_range: Annotated[
        TimeRange | None, msgspec.Meta(description="This panel's own range; the dashboard's when unset")
    ] = None
    aggregate: PanelAggregate = "none"
    bucket: Annotated[Duration | None, msgspec.Meta(description="Bucket width when aggregating; auto when unset")] = (
        None
    )
    thresholds: Annotated[list[Threshold], msgspec.Meta(max_length=20)] = []
    unit: Annotated[str, msgspec.Meta(max_length=32)] = ""
    min: float | None = None
    max: float | None = None
    decimals: Annotated[int, msgspec.Meta(ge=0, le=10)] | None = None
    layout: PanelLayout | None = None


DashboardName = Annotated[str, msgspec.Meta(min_length=1, max_length=200)]
FlowRef = Annotated[str, msgspec.Meta(pattern=r"^[A-Za-z0-9_-]{1,64}$")]


class DashboardSpec(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """What is accepted to create a dashboard (also from templates)."""

    name: DashboardName
    description: Annotated[str, msgspec.Meta(max_length=2000)] = ""
    time_range: TimeRange = msgspec.field(default_factory=_last_hour)
    refresh_s: Annotated[int, msgspec.Meta(ge=0, le=86400, description="Auto refresh; 0: off")] = 0
    panels: Annotated[list[Panel], msgspec.Meta(max_length=50)] = []
    flow_id: Annotated[FlowRef | None, msgspec.Meta(description="The flow this dashboard belongs to")] = None


class DashboardUpdate(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """A full replacement; ``version`` (when given) must be the stored one, else 409."""

    name: DashboardName
    description: Annotated[str, msgspec.Meta(max_length=2000)] = ""
    time_range: TimeRange = msgspec.field(default_factory=_last_hour)
    refresh_s: Annotated[int, msgspec.Meta(ge=0, le=86400)] = 0
    panels: Annotated[list[Panel], msgspec.Meta(max_length=50)] = []
    flow_id: FlowRef | None = None
    version: Annotated[int, msgspec.Meta(ge=1, le=2**31 - 1)] | None = None


class Dashboard(msgspec.Struct, frozen=True, kw_only=True):
    id: int
    name: str
    description: str
    time_range: TimeRange
    refresh_s: int
    panels: list[Panel]
    flow_id: str | None
    version: int
    created_at: datetime
    created_by: str
    updated_at: datetime
    updated_by: str


class DashboardSummary(msgspec.Struct, frozen=True, kw_only=True):
    id: int
    name: str
    description: str
    panels: int
    flow_id: str | None
    version: int
    updated_at: datetime
    updated_by: str
