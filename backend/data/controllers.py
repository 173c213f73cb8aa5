"""/api/data (historian, viewer), /api/dashboards (viewer reads, editor edits), /api/live (SSE)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated

import msgspec
from litestar import Controller, delete, get, post, put
from litestar.datastructures import State
from litestar.params import JSONBody, PathParameter, QueryParameter
from litestar.response import ServerSentEvent, ServerSentEventMessage

from backend.auth.guards import editor, viewer
from backend.data import service
from backend.data.live import LiveHub, parse_topics
from backend.data.schemas import (
    AggregateFn,
    AggregateResult,
    Dashboard,
    DashboardSpec,
    DashboardSummary,
    DashboardUpdate,
    EventsPage,
    HistorianStatus,
    LatestValue,
    Order,
    PointsPage,
    SeriesPage,
)
from backend.deps import Address, Caller, Db
from backend.errors import ApiError

Id = Annotated[int, PathParameter(ge=1, le=2**62)]
SeriesParam = Annotated[
    list[str] | None, QueryParameter(description="Series keys (repeat the parameter for several)", max_items=500)
]
From = Annotated[
    str | None,
    QueryParameter(
        name="from",
        max_length=64,
        description="Start (inclusive): ISO 8601, `now`, or relative like `now-1h` / `-15m`; default: to - 1h",
    ),
]
To = Annotated[
    str | None,
    QueryParameter(name="to", max_length=64, description="End (exclusive), same forms; default: now"),
]
Cursor = Annotated[str | None, QueryParameter(max_length=2048, description="next_cursor of the previous page")]


class DataController(Controller):
    path = "/api/data"
    tags = ["data"]
    guards = [viewer]

    @get("/series", summary="List stored series with their time span, size and latest value")
    async def list_series(
        self,
        db: Db,
        prefix: Annotated[str | None, QueryParameter(max_length=512, description="Series starting with")] = None,
        pattern: Annotated[
            str | None,
            QueryParameter(max_length=512, description="Case-insensitive; * and ? wildcards, else a substring"),
        ] = None,
        limit: Annotated[int, QueryParameter(ge=1, le=1000)] = 200,
        cursor: Cursor = None,
    ) -> SeriesPage:
        return await service.list_series(db, prefix=prefix, pattern=pattern, limit=limit, cursor=cursor)

    @get("/points", summary="Raw points of series in a time range (paged)")
    async def points(
        self,
        db: Db,
        series: SeriesParam = None,
        start: From = None,
        end: To = None,
        limit: Annotated[int, QueryParameter(ge=1, le=service.MAX_POINTS)] = 1000,
        cursor: Cursor = None,
        order: Annotated[Order, QueryParameter(description="Time order within each series")] = "asc",
    ) -> PointsPage:
        frm, to = service.time_range(start, end)
        return await service.points(db, series or [], frm, to, limit=limit, cursor=cursor, order=order)

    @get("/aggregate", summary="Time-bucketed aggregates (avg, min, max, sum, count, first, last)")
    async def aggregate(
        self,
        db: Db,
        state: State,
        series: SeriesParam = None,
        start: From = None,
        end: To = None,
        bucket: Annotated[
            str | None, QueryParameter(max_length=16, description="Bucket width like 10s, 5m, 1h; auto when unset")
        ] = None,
        fn: Annotated[
            list[AggregateFn] | None, QueryParameter(description="Functions (repeat for several); default avg")
        ] = None,
    ) -> AggregateResult:
        frm, to = service.time_range(start, end)
        timescale = bool(getattr(state, "data_timescale", False))
        return await service.aggregate(
            db, series or [], frm, to, bucket=bucket, functions=fn or ["avg"], timescale=timescale
        )

    @get("/latest", summary="The latest value of each series")
    async def latest(self, db: Db, series: SeriesParam = None) -> list[LatestValue]:
        return await service.latest(db, series or [])

    @get("/events", summary="Alarm events in a time range, newest first (paged)")
    async def events(
        self,
        db: Db,
        start: From = None,
        end: To = None,
        series: Annotated[list[str] | None, QueryParameter(max_items=50)] = None,
        alarm: Annotated[str | None, QueryParameter(max_length=200)] = None,
        event_state: Annotated[str | None, QueryParameter(name="state", max_length=32)] = None,
        severity: Annotated[str | None, QueryParameter(max_length=32)] = None,
        limit: Annotated[int, QueryParameter(ge=1, le=service.MAX_POINTS)] = 200,
        cursor: Cursor = None,
    ) -> EventsPage:
        frm, to = service.time_range(start, end)
        return await service.events(
            db,
            frm,
            to,
            series=series or [],
            alarm=alarm,
            state=event_state,
            severity=severity,
            limit=limit,
            cursor=cursor,
        )

    @get("/historian", summary="The historian writer: sourced edges, lag, backlog, counters")
    async def historian(self, state: State) -> HistorianStatus:
        writer = getattr(state, "historian", None)
        if writer is None:
            raise ApiError(503, "unavailable", "the historian writer is not running")
        status: HistorianStatus = await writer.status()
        return status


class DashboardController(Controller):
    path = "/api/dashboards"
    tags = ["dashboards"]
    guards = [viewer]

    @get("/", summary="List dashboards")
    async def list_dashboards(
        self, db: Db, flow_id: Annotated[str | None, QueryParameter(max_length=64)] = None
    ) -> list[DashboardSummary]:
        return await service.list_dashboards(db, flow_id)

    @get("/{dashboard_id:int}", summary="Get a dashboard with its panels")
    async def get_dashboard(self, db: Db, dashboard_id: Id) -> Dashboard:
        return await service.get_dashboard(db, dashboard_id)

    @post("/", summary="Create a dashboard", guards=[editor])
    async def create_dashboard(
        self, db: Db, principal: Caller, address: Address, data: JSONBody[DashboardSpec]
    ) -> Dashboard:
        return await service.create_dashboard(db, principal, data, address=address, rename_on_conflict=False)

    @put("/{dashboard_id:int}", summary="Replace a dashboard (send the version you edited)", guards=[editor])
    async def update_dashboard(
        self, db: Db, principal: Caller, address: Address, dashboard_id: Id, data: JSONBody[DashboardUpdate]
    ) -> Dashboard:
        return await service.update_dashboard(db, principal, dashboard_id, data, address)

    @delete("/{dashboard_id:int}", summary="Delete a dashboard", guards=[editor])
    async def delete_dashboard(self, db: Db, principal: Caller, address: Address, dashboard_id: Id) -> None:
        await service.delete_dashboard(db, principal, dashboard_id, address)


class LiveController(Controller):
    path = "/api/live"
    tags = ["live"]
    guards = [viewer]

    @get(
        "/",
        summary="Live updates (Server-Sent Events): latest values, debug messages, edge status, deployments",
        description=(
            "topics (comma separated or repeated): latest:<series>, debug:<edge>/<flow>/<node>, edges, "
            "edge:<id>, deploy, deploy:<flow>. Events: latest, debug, edge, deploy, dropped (events lost "
            "because the client fell behind); a comment every 15 s keeps the connection open."
        ),
    )
    async def live(
        self,
        state: State,
        topics: Annotated[list[str] | None, QueryParameter(max_items=200, description="Topics to follow")] = None,
    ) -> ServerSentEvent:
        hub: LiveHub | None = getattr(state, "live", None)
        if hub is None:
            raise ApiError(503, "unavailable", "live updates are not running")
        parsed = parse_topics(topics or [])
        initial = [t.key for t in parsed if t.kind == "latest"]
        pool = state.pool

        async def events() -> AsyncIterator[ServerSentEventMessage]:
            # Subscribed on the first iteration: a client gone before it started leaves nothing behind.
            client = await hub.connect(parsed)
            try:
                yield ServerSentEventMessage(comment="connected", data=None, retry=3000)
                if initial:  # the current values first (no connection is held while streaming)
                    async with pool.acquire() as conn:
                        current = await service.latest(conn, initial)
                    for value in current:
                        if value.ts is not None:
                            yield ServerSentEventMessage(data=msgspec.json.encode(value).decode(), event="latest")
            except BaseException:
                hub.disconnect(client)
                raise
            async for item in hub.stream(client):
                if item is None:
                    yield ServerSentEventMessage(comment="keep-alive", data=None)
                else:
                    yield ServerSentEventMessage(data=item.data.decode(), event=item.event)

        return ServerSentEvent(events(), headers={"Cache-Control": "no-store"})
