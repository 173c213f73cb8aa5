"""The data domain through a real Hub: historian queries over stored rows (exact aggregates with
date_bin), dashboards with roles and audit, and the live SSE stream over a real HTTP server with a
real NATS hub, an edge leaf server and the historian writer."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg  # type: ignore[import-untyped, unused-ignore]
import httpx
import nats
import pytest
import uvicorn
from litestar import Litestar

from backend.app import create_app
from backend.auth.principal import Principal
from backend.data.historian import HistorianOptions
from backend.data.service import aggregate_sql, create_dashboard
from backend.deploy.events import DeployEvent
from backend.settings import Settings
from nodes.points import Batch
from proxus.services.ports import free_port
from tests.integration.hub_support import ADMIN, add_user, hub_settings, running_hub, setup_admin
from tests.integration.test_hub_historian import start_edge

START = datetime(2024, 1, 1, tzinfo=UTC)


@pytest.fixture
def hub_nats(nats_server_factory: Any) -> Any:
    return nats_server_factory.hub()


@pytest.fixture
def settings(tmp_path: Path, database_url: str, hub_nats: Any, redis_url: str, redis_prefix: str) -> Settings:
    return hub_settings(tmp_path, database_url, hub_nats.url, redis_url, redis_prefix)


async def insert_rows(database_url: str) -> None:
    """a/temp: 60 points 10 s apart, value = index; a/state: text; b/flow: 3 points; 3 events."""
    conn = await asyncpg.connect(database_url)
    try:
        rows = [(START + timedelta(seconds=10 * i), "a/temp", float(i), None, 0) for i in range(60)]
        rows += [(START + timedelta(minutes=i), "a/state", None, s, 1) for i, s in enumerate(["run", "stop"])]
        rows += [(START + timedelta(seconds=i), "b/flow", 1.5 * i, None, 2) for i in range(3)]
        await conn.copy_records_to_table(
            "proxus_points", records=rows, columns=["ts", "series", "value", "value_text", "quality"]
        )
        await conn.executemany(
            """INSERT INTO proxus_events (ts, series, alarm, state, severity, value, message)
               VALUES ($1, $2, $3, $4, $5, $6, $7)""",
            [
                (START + timedelta(minutes=1), "a/temp", "high", "raise", "critical", 80.0, "too hot"),
                (START + timedelta(minutes=2), "a/temp", "high", "clear", "critical", 60.0, ""),
                (START + timedelta(minutes=3), "b/flow", "low", "raise", "warning", 0.1, ""),
            ],
        )
        # The catalog as a standalone historian sink would leave it: rebuilt at Hub start.
    finally:
        await conn.close()


def q(**params: Any) -> dict[str, Any]:
    return params


async def test_historian_queries_over_stored_rows(settings: Settings, database_url: str) -> None:
    async with running_hub(settings):  # creates the schema
        pass
    await insert_rows(database_url)
    async with running_hub(settings) as client:  # rebuilds the series catalog from the rows
        await setup_admin(client)
        await add_user(client, "vera", "viewer")
        assert (await client.get("/api/data/series")).status_code == 200
        await client.login("vera", "password-123")
        frm, to = "2024-01-01T00:00:00Z", "2024-01-01T00:10:00Z"

        async def series_names(**params: Any) -> list[str]:
            for _ in range(50):  # the catalog is rebuilt in the background at start
                body = (await client.get("/api/data/series", params=params)).json()
                if body["items"] or params:
                    return [i["series"] for i in body["items"]]
                await asyncio.sleep(0.1)
            return []

        assert await series_names() == ["a/state", "a/temp", "b/flow"]
        assert await series_names(prefix="a/") == ["a/state", "a/temp"]
        assert await series_names(pattern="*TEMP") == ["a/temp"]
        assert await series_names(pattern="flow") == ["b/flow"]
        page = (await client.get("/api/data/series", params=q(limit=2))).json()
        assert [i["series"] for i in page["items"]] == ["a/state", "a/temp"] and page["next_cursor"]
        temp = page["items"][1]
        assert temp["last_value"] == 59.0 and temp["last_quality"] == "good"
        assert temp["first_ts"] == "2024-01-01T00:00:00Z" and temp["last_ts"] == "2024-01-01T00:09:50Z"
        rest = (await client.get("/api/data/series", params=q(limit=2, cursor=page["next_cursor"]))).json()
        assert [i["series"] for i in rest["items"]] == ["b/flow"] and rest["next_cursor"] is None

        # Raw points, paged with a cursor.
        got: list[dict[str, Any]] = []
        cursor = None
        while True:
            params = q(series="a/temp", limit=25, **{"from": frm, "to": to})
            if cursor:
                params["cursor"] = cursor
            body = (await client.get("/api/data/points", params=params)).json()
            got += body["items"]
            cursor = body["next_cursor"]
            if cursor is None:
                break
        assert [p["value"] for p in got] == [float(i) for i in range(60)]
        assert got[0] == {"series": "a/temp", "ts": "2024-01-01T00:00:00Z", "value": 0.0, "quality": "good"}
        desc = (
            await client.get(
                "/api/data/points",
                params=[("series", "a/state"), ("series", "b/flow"), ("order", "desc"), ("from", frm), ("to", to)],
            )
        ).json()
        assert [(p["series"], p["value"]) for p in desc["items"]] == [
            ("a/state", "stop"),
            ("a/state", "run"),
            ("b/flow", 3.0),
            ("b/flow", 1.5),
            ("b/flow", 0.0),
        ]
        assert desc["items"][-1]["quality"] == "bad"

        # Aggregates with date_bin: one-minute buckets hold indices 6k .. 6k+5.
        fns = ["avg", "min", "max", "sum", "count", "first", "last"]
        params_list = [("series", "a/temp"), ("bucket", "1m"), ("from", frm), ("to", to)] + [("fn", f) for f in fns]
        body = (await client.get("/api/data/aggregate", params=params_list)).json()
        assert body["bucket"] == "1m" and body["functions"] == fns
        buckets = body["series"][0]["buckets"]
        assert len(buckets) == 10
        for k, b in enumerate(buckets):
            assert b == {
                "t": f"2024-01-01T00:{k:02d}:00Z",
                "avg": 6 * k + 2.5,
                "min": 6 * k,
                "max": 6 * k + 5,
                "sum": 36 * k + 15,
                "count": 6,
                "first": 6 * k,
                "last": 6 * k + 5,
            }
        # Buckets not dividing an hour are aligned to Monday 2000-01-03 (as time_bucket does).
        seven = (
            await client.get(
                "/api/data/aggregate", params=q(series="a/temp", bucket="7m", fn="count", **{"from": frm, "to": to})
            )
        ).json()["series"][0]["buckets"]
        origin = datetime(2000, 1, 3, tzinfo=UTC)
        width = timedelta(minutes=7)
        expected: dict[datetime, int] = {}
        for i in range(60):
            ts = START + timedelta(seconds=10 * i)
            start = origin + ((ts - origin) // width) * width
            expected[start] = expected.get(start, 0) + 1
        assert [(b["t"], b["count"]) for b in seven] == [
            (t.isoformat().replace("+00:00", "Z"), n) for t, n in sorted(expected.items())
        ]
        # Unset bucket: a round one giving at most ~300 buckets; text series aggregate to counts only.
        auto = (
            await client.get("/api/data/aggregate", params=[("series", "a/state"), ("fn", "count"), ("fn", "avg")])
        ).json()
        assert auto["bucket"] == "30s"  # default range: the last hour
        both = (
            await client.get(
                "/api/data/aggregate", params=[("series", "a/state"), ("fn", "count"), ("from", frm), ("to", to)]
            )
        ).json()
        assert [b["count"] for b in both["series"][0]["buckets"]] == [1, 1]

        latest = (await client.get("/api/data/latest", params=[("series", "a/temp"), ("series", "nope")])).json()
        assert latest[0] == {"series": "a/temp", "ts": "2024-01-01T00:09:50Z", "value": 59.0, "quality": "good"}
        assert latest[1] == {"series": "nope", "ts": None, "value": None, "quality": None}

        events = (await client.get("/api/data/events", params=q(limit=2, **{"from": frm, "to": to}))).json()
        assert [(e["alarm"], e["state"]) for e in events["items"]] == [("low", "raise"), ("high", "clear")]
        more = (
            await client.get("/api/data/events", params=q(limit=2, cursor=events["next_cursor"], **{"from": frm}))
        ).json()
        assert [(e["alarm"], e["message"]) for e in more["items"]] == [("high", "too hot")]
        assert more["next_cursor"] is None
        raised = await client.get("/api/data/events", params=q(state="raise", severity="warning", **{"from": frm}))
        assert [e["series"] for e in raised.json()["items"]] == ["b/flow"]

        # Validation: 400 naming the parameter, never a 500.
        async def problem(path: str, params: Any) -> str:
            response = await client.get(path, params=params)
            assert response.status_code == 400, response.text
            details = response.json()["details"]
            return str(details[0]["field"]) if details else ""

        assert await problem("/api/data/points", q(series="a/temp", **{"from": to, "to": frm})) == "from"
        assert await problem("/api/data/points", q(series="a/temp", **{"from": "yesterday"})) == "from"
        assert await problem("/api/data/points", q(series="a/temp", limit=0)) == "limit"
        assert await problem("/api/data/points", q(series="a/temp", limit=10_001)) == "limit"
        assert await problem("/api/data/points", q(series="a/temp", cursor="garbage")) == "cursor"
        assert await problem("/api/data/points", {}) == "series"
        assert await problem("/api/data/aggregate", q(series="a/temp", bucket="1ms", **{"from": frm})) == "bucket"
        assert await problem("/api/data/aggregate", q(series="a/temp", bucket="fortnight")) == "bucket"
        assert await problem("/api/data/aggregate", q(series="a/temp", fn="median")) == "fn"
        many = [("series", f"s{i}") for i in range(51)]
        assert await problem("/api/data/aggregate", many) == "series"
        relative = await client.get("/api/data/points", params=q(series="a/temp", **{"from": "now-15m", "to": "now"}))
        assert relative.status_code == 200 and relative.json()["items"] == []

        client.cookies.clear()
        assert (await client.get("/api/data/series")).status_code == 401


def test_timescale_sql_uses_time_bucket_and_first_last() -> None:
    sql = aggregate_sql(["avg", "first", "last", "count"], timescale=True)
    assert "time_bucket($4::interval, ts, $5::timestamptz)" in sql
    assert "first(value, ts) AS first" in sql and "last(value, ts) AS last" in sql
    plain = aggregate_sql(["avg", "first"], timescale=False)
    assert "date_bin($4::interval, ts, $5)" in plain and "array_agg(value ORDER BY ts)" in plain


DASHBOARD = {
    "name": "Line 1",
    "description": "overview",
    "time_range": {"last": "6h"},
    "refresh_s": 10,
    "panels": [
        {"title": "Temperature", "series": ["a/temp"], "kind": "line", "aggregate": "avg", "bucket": "5m"},
        {
            "id": "speed",
            "title": "Speed",
            "series": ["a/speed"],
            "kind": "gauge",
            "min": 0,
            "max": 100,
            "thresholds": [{"value": 80, "color": "red", "label": "high"}, {"value": 60, "color": "#ffaa00"}],
            "time_range": {"from": "2024-01-01T00:00:00Z", "to": "2024-01-02T00:00:00Z"},
            "layout": {"x": 6, "y": 0, "w": 6, "h": 4},
        },
    ],
}


async def test_dashboards_crud_roles_and_audit(settings: Settings, database_url: str) -> None:
    async with running_hub(settings) as admin:
        await setup_admin(admin)
        await add_user(admin, "ed", "editor")
        await add_user(admin, "vic", "viewer")
        editor = viewer = admin  # one client; whose session it carries changes with each sign-in

        async def as_user(name: str) -> None:
            await admin.login(name, ADMIN[1] if name == ADMIN[0] else "password-123")

        await as_user("vic")
        assert (await viewer.post("/api/dashboards", json=DASHBOARD)).status_code == 403
        await as_user("ed")
        created = await editor.post("/api/dashboards", json=DASHBOARD)
        assert created.status_code == 201, created.text
        board = created.json()
        assert board["version"] == 1 and board["created_by"] == "ed"
        assert [p["id"] for p in board["panels"]] == ["p1", "speed"]  # a missing id is assigned
        assert board["time_range"] == {"last": "6h"}
        assert board["panels"][1]["time_range"] == {"from": "2024-01-01T00:00:00Z", "to": "2024-01-02T00:00:00Z"}
        assert board["panels"][1]["thresholds"][1] == {"value": 60.0, "color": "#ffaa00", "label": ""}

        await as_user("vic")
        listed = (await viewer.get("/api/dashboards")).json()
        assert [(d["id"], d["name"], d["panels"]) for d in listed] == [(board["id"], "Line 1", 2)]
        assert (await viewer.get(f"/api/dashboards/{board['id']}")).json() == board
        assert (await viewer.get("/api/dashboards/999999")).status_code == 404
        assert (await viewer.delete(f"/api/dashboards/{board['id']}")).status_code == 403
        assert (await viewer.put(f"/api/dashboards/{board['id']}", json=DASHBOARD)).status_code == 403

        await as_user("ed")
        duplicate = await editor.post("/api/dashboards", json={**DASHBOARD, "name": "line 1"})
        assert duplicate.status_code == 409

        async def refused(body: dict[str, Any], field: str) -> None:
            response = await editor.post("/api/dashboards", json=body)
            assert response.status_code == 400, response.text
            problems = [f"{d['field']} {d['message']}" for d in response.json()["details"]]
            assert any(field in p for p in problems), (field, response.json())

        panel = DASHBOARD["panels"][0]  # type: ignore[index]
        await refused({**DASHBOARD, "name": "x", "panels": [{**panel, "kind": "pie"}]}, "kind")
        await refused({**DASHBOARD, "name": "x", "panels": [{**panel, "series": []}]}, "series")
        await refused({**DASHBOARD, "name": "x", "panels": [{**panel, "bucket": "5 minutes"}]}, "bucket")
        await refused({**DASHBOARD, "name": "x", "panels": [{**panel, "id": "a"}, {**panel, "id": "a"}]}, "id")
        both = {"last": "1h", "from": "2024-01-01T00:00:00Z"}
        await refused({**DASHBOARD, "name": "x", "time_range": both}, "time_range")
        backwards = {"from": "2024-01-02T00:00:00Z", "to": "2024-01-01T00:00:00Z"}
        await refused({**DASHBOARD, "name": "x", "time_range": backwards}, "time_range.from")
        await refused({**DASHBOARD, "name": "x", "surprise": 1}, "surprise")
        await refused({**DASHBOARD, "name": "x", "flow_id": "no-such-flow"}, "flow_id")

        update = {**DASHBOARD, "name": "Line 1 (main)", "panels": [panel], "version": 1}
        changed = await editor.put(f"/api/dashboards/{board['id']}", json=update)
        assert changed.status_code == 200, changed.text
        assert changed.json()["version"] == 2 and changed.json()["name"] == "Line 1 (main)"
        stale = await editor.put(f"/api/dashboards/{board['id']}", json=update)
        assert stale.status_code == 409 and stale.json()["extra"] == {"version": 2}
        assert (await editor.delete(f"/api/dashboards/{board['id']}")).status_code == 204
        assert (await editor.get(f"/api/dashboards/{board['id']}")).status_code == 404

        await as_user(ADMIN[0])
        audit = (await admin.get("/api/audit", params={"entity_type": "dashboard"})).json()
        assert [a["action"] for a in audit] == ["dashboard.delete", "dashboard.update", "dashboard.create"]
        assert audit[1]["before"]["version"] == 1 and audit[1]["after"]["version"] == 2
        assert {a["username"] for a in audit} == {"ed"}

    # The templates domain's entry point: a mapping, renamed rather than refused when the name is taken.
    conn = await asyncpg.connect(database_url)
    try:
        from backend.db import _init_connection

        await _init_connection(conn)
        who = Principal(user_id=1, username="admin", role="admin", via="session")
        spec = {"name": "Press overview", "time_range": {"last": "1h"}, "panels": [{"series": ["p/t"], "kind": "stat"}]}
        first = await create_dashboard(conn, who, spec)
        second = await create_dashboard(conn, who, spec)
        assert (first.name, second.name) == ("Press overview", "Press overview (2)")
        assert second.panels[0].id == "p1" and second.time_range.last == "1h"
    finally:
        await conn.close()


# -- live updates over a real HTTP server ------------------------------------------------------------


@contextlib.asynccontextmanager
async def served(app: Litestar) -> AsyncIterator[str]:
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, lifespan="on", log_level="warning"))
    task = asyncio.create_task(server.serve())
    try:
        for _ in range(200):
            if server.started:
                break
            if task.done():
                task.result()
            await asyncio.sleep(0.05)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        server.force_exit = True
        with contextlib.suppress(BaseException):
            await asyncio.wait_for(task, 15)


class Events:
    """A reader of one SSE response: parsed events in a queue."""

    def __init__(self) -> None:
        self.queue: asyncio.Queue[tuple[str, Any]] = asyncio.Queue()
        self.comments: list[str] = []

    async def read(self, response: httpx.Response) -> None:
        event, data = "message", []
        async for line in response.aiter_lines():
            if line.startswith(":"):
                self.comments.append(line[1:].strip())
            elif line.startswith("event:"):
                event = line[6:].strip()
            elif line.startswith("data:"):
                data.append(line[5:].strip())
            elif line == "" and data:
                await self.queue.put((event, json.loads("\n".join(data))))
                event, data = "message", []

    async def next(self, kind: str, timeout: float = 20.0) -> Any:
        deadline = asyncio.get_running_loop().time() + timeout
        while True:
            remaining = deadline - asyncio.get_running_loop().time()
            if remaining <= 0:
                raise AssertionError(f"no {kind!r} event within {timeout:g} s")
            event, data = await asyncio.wait_for(self.queue.get(), remaining)
            if event == kind:
                return data


async def test_live_stream_relays_debug_status_deploy_and_latest(
    settings: Settings, hub_nats: Any, nats_server_factory: Any
) -> None:
    app = create_app(settings)
    app.state.historian_options = HistorianOptions(sync_interval_s=1.0, watchdog_interval_s=0.5, ack_wait_s=5.0)
    edge = await start_edge(nats_server_factory, hub_nats.leaf_url)
    probe = await nats.connect(hub_nats.url)
    taps: list[dict[str, Any]] = []

    async def tap_requests(msg: Any) -> None:  # the edge agent's request handler, as seen from the hub
        taps.append(json.loads(msg.data))
        await msg.respond(b'{"ok": true}')

    await probe.subscribe("proxus.edge.e1.req.taps", cb=tap_requests)
    try:
        async with served(app) as url, httpx.AsyncClient(base_url=url, timeout=30) as http:
            setup = await http.post("/api/auth/setup", json={"username": ADMIN[0], "password": ADMIN[1]})
            assert setup.status_code == 201
            csrf = setup.json()["csrf_token"]
            registered = await http.post("/api/edges", json={"id": "e1"}, headers={"X-CSRF-Token": csrf})
            assert registered.status_code == 201, registered.text

            bad = await http.get("/api/live", params={"topics": "debug:e1/only-two"})
            assert bad.status_code == 400 and bad.json()["details"][0]["field"] == "topics"

            topics = "debug:e1/f1/n1,edges,deploy,latest:line/temp"
            events = Events()
            async with http.stream("GET", "/api/live", params={"topics": topics}) as response:
                assert response.status_code == 200
                assert response.headers["content-type"].startswith("text/event-stream")
                reader = asyncio.create_task(events.read(response))
                try:
                    await _until(lambda: taps == [{"taps": [{"flow": "f1", "node": "n1"}]}], "taps request")
                    live = app.state.live
                    assert set(live.debug_subs) == {"e1/f1/n1"}

                    # A debug message on the real subject.
                    await probe.publish("proxus.debug.e1.f1.n1", json.dumps({"count": 3, "label": "x"}).encode())
                    debug = await events.next("debug")
                    assert debug == {"edge": "e1", "flow": "f1", "node": "n1", "message": {"count": 3, "label": "x"}}

                    # An edge status message.
                    await probe.publish("status.e1", json.dumps({"kind": "heartbeat", "uptime_s": 12.0}).encode())
                    status = await events.next("edge")
                    assert status["edge"] == "e1" and status["status"]["uptime_s"] == 12.0

                    # A deployment event from the deploy domain's broadcaster.
                    app.state.deploy_events.publish(
                        DeployEvent(
                            deployment_id=7,
                            flow_id="f1",
                            version=3,
                            action="deploy",
                            edge="e1",
                            edge_action="apply",
                            state="applied",
                            hash="sha256:abc",
                            error="",
                            deployment_state="applied",
                            at=datetime.now(UTC),
                        )
                    )
                    deploy = await events.next("deploy")
                    assert deploy["deployment_id"] == 7 and deploy["state"] == "applied"

                    # A new value through the real path: edge outbox -> HIST -> writer -> live.
                    now_ns = int(datetime.now(UTC).timestamp() * 1e9)
                    await edge.append(Batch([now_ns, now_ns + 10**6], ["line/temp"] * 2, [20.5, 21.0], [0, 1]))
                    latest = await events.next("latest", timeout=40)
                    assert latest["series"] == "line/temp" and latest["value"] == 21.0
                    assert latest["quality"] == "uncertain"
                finally:
                    reader.cancel()
                    with contextlib.suppress(BaseException):
                        await reader

            # The last client left: the NATS subscription goes and the edge is told to stop tapping.
            await _until(lambda: not app.state.live.debug_subs, "debug subscription released")
            await _until(lambda: taps[-1] == {"taps": []}, "taps cleared")

            # A reconnecting client gets the current value first.
            events = Events()
            async with http.stream("GET", "/api/live", params={"topics": "latest:line/temp"}) as response:
                reader = asyncio.create_task(events.read(response))
                try:
                    first = await events.next("latest")
                    assert first["series"] == "line/temp" and first["value"] == 21.0
                finally:
                    reader.cancel()
                    with contextlib.suppress(BaseException):
                        await reader
    finally:
        await probe.close()
        await edge.nc.close()


async def _until(predicate: Any, what: str, timeout: float = 20.0) -> None:
    for _ in range(int(timeout / 0.05)):
        if predicate():
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"{what}: not within {timeout:g} s")


async def test_slow_clients_lose_oldest_events_counted() -> None:
    from backend.data.live import LiveHub, Topic, parse_topics

    hub = LiveHub(None, queue_size=3)
    client = await hub.connect(parse_topics(["edges"]))
    for i in range(5):
        hub.publish(Topic("edges"), "edge", json.dumps({"n": i}).encode())
    first = await client.next(0.1)
    assert first is not None and first.event == "dropped" and json.loads(first.data) == {"dropped": 2}
    rest = [json.loads(e.data)["n"] for e in [await client.next(0.1) for _ in range(3)] if e is not None]
    assert rest == [2, 3, 4]
    assert await client.next(0.05) is None  # a keep-alive tick
    hub.disconnect(client)
    assert hub.client_count == 0
