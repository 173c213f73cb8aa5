"""Monitoring and alerts against a real Hub (PostgreSQL, NATS, Redis) and a real HTTP receiver.

Edge status arrives the way edges send it: heartbeat messages published with nats-py on
``status.<edge>`` to the Hub's NATS. Series thresholds and alarm events read rows written into the
historian's tables. Webhooks go to an ``http.server`` running in a thread.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import asyncpg  # type: ignore[import-untyped, unused-ignore]
import nats
import pytest

from backend.app import create_app
from backend.settings import Settings
from tests.integration.hub_support import ADMIN, Client, add_user, hub_settings, setup_admin

INTERVAL_S = 0.2


@pytest.fixture
def hub_nats(nats_server_factory: Any) -> Any:
    return nats_server_factory.hub()


@pytest.fixture
def settings(tmp_path: Path, database_url: str, hub_nats: Any, redis_url: str, redis_prefix: str) -> Settings:
    return hub_settings(tmp_path, database_url, hub_nats.url, redis_url, redis_prefix)


@asynccontextmanager
async def alerts_hub(settings: Settings, *, setup: bool = True) -> AsyncIterator[Client]:
    """A Hub whose evaluator runs every 0.2 s and whose retries back off from 0.2 s."""
    app = create_app(settings)
    app.state.alert_interval_s = INTERVAL_S
    app.state.alert_backoff_s = 0.2
    async with Client(app=app, base_url="http://hub.test") as client:
        if setup:
            await setup_admin(client)
        else:
            await client.login(*ADMIN)
        yield client


async def eventually(check: Callable[[], Awaitable[Any]], timeout: float = 15.0, what: str = "") -> Any:
    deadline = time.monotonic() + timeout
    while True:
        result = await check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what or check}")
        await asyncio.sleep(0.1)


async def alerts(client: Client, state: str = "all") -> list[dict[str, Any]]:
    response = await client.get("/api/alerts", params={"state": state})
    assert response.status_code == 200, response.text
    found: list[dict[str, Any]] = response.json()
    return found


def heartbeat(
    edge: str,
    *,
    devices: dict[str, bool] | None = None,
    errors: dict[str, int] | None = None,
    outbox_depth: int = 0,
) -> bytes:
    """A heartbeat as runtime/edge.py publishes it (flows → nodes metrics, devices, outbox depth)."""
    nodes: dict[str, dict[str, Any]] = {}
    for key, count in (errors or {}).items():
        nodes.setdefault(key, {})["errors"] = count
    for key in devices or {}:
        nodes.setdefault(key, {})
    flows: dict[str, Any] = {}
    for key, extra in nodes.items():
        flow, node = key.split("/")
        metrics = {
            "points_in": 0,
            "points_out": 0,
            "batches_in": 0,
            "errors": 0,
            "health": "ok",
            "message": "",
            "last_error": "",
            "counters": {},
            "gauges": {},
            "rate_in": 0.0,
            "rate_out": 0.0,
            **extra,
        }
        if devices and key in devices:
            metrics["gauges"]["connected"] = 1.0 if devices[key] else 0.0
            if not devices[key]:
                metrics["health"], metrics["message"] = "error", "connection refused"
        flows.setdefault(flow, {"hash": "sha256:x", "desired_hash": "sha256:x", "state": "applied", "error": ""})
        flows[flow].setdefault("nodes", {})[node] = metrics
    body = {
        "edge": edge,
        "at": time.time(),
        "kind": "heartbeat",
        "uptime_s": 1.0,
        "flows": flows,
        "devices": {
            key: {"connected": up, "message": "" if up else "connection refused"} for key, up in (devices or {}).items()
        },
        "outbox_depth": outbox_depth,
        "cpu_percent": 1.0,
        "rss_bytes": 50_000_000,
        "pid": 1,
    }
    return json.dumps(body).encode()


class FakeEdge:
    """Publishes heartbeats on status.<edge> every 0.1 s while running; the content can change."""

    def __init__(self, url: str, edge: str) -> None:
        self.url = url
        self.edge = edge
        self.devices: dict[str, bool] = {}
        self.errors: dict[str, int] = {}
        self.outbox_depth = 0
        self.running = False
        self._task: asyncio.Task[None] | None = None
        self._nc: Any = None

    async def __aenter__(self) -> FakeEdge:
        self._nc = await nats.connect(self.url)
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()
        await self._nc.close()

    def start(self) -> None:
        self.running = True
        self._task = asyncio.create_task(self._loop())

    async def stop(self) -> None:
        self.running = False
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _loop(self) -> None:
        while self.running:
            body = heartbeat(self.edge, devices=self.devices, errors=self.errors, outbox_depth=self.outbox_depth)
            await self._nc.publish(f"status.{self.edge}", body)
            await self._nc.flush()
            await asyncio.sleep(0.1)


class Receiver:
    """A real HTTP server in a thread answering with scripted statuses (then 200), recording requests."""

    def __init__(self) -> None:
        self.script: list[int] = []
        self.default = 200
        self.requests: list[dict[str, Any]] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", "0"))
                body = json.loads(self.rfile.read(length) or b"{}")
                status = receiver.script.pop(0) if receiver.script else receiver.default
                receiver.requests.append({"headers": dict(self.headers), "body": body, "status": status})
                self.send_response(status)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/hook"

    def delivered(self) -> list[dict[str, Any]]:
        return [r for r in self.requests if 200 <= r["status"] < 300]


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    server = Receiver()
    server.thread.start()
    try:
        yield server
    finally:
        server.server.shutdown()
        server.server.server_close()


async def create_rule(client: Client, condition: dict[str, Any], **fields: Any) -> dict[str, Any]:
    response = await client.post(
        "/api/alert-rules", json={"name": f"rule {condition['kind']}", **fields, "condition": condition}
    )
    assert response.status_code == 201, response.text
    rule: dict[str, Any] = response.json()
    return rule


async def execute(database_url: str, sql: str, *args: Any) -> None:
    conn = await asyncpg.connect(database_url)
    try:
        await conn.execute(sql, *args)
    finally:
        await conn.close()


# -- rules ---------------------------------------------------------------------------------------


async def test_rules_crud_validation_and_roles(settings: Settings) -> None:
    async with alerts_hub(settings) as client:
        await add_user(client, "vera", "viewer")
        rule = await create_rule(
            client, {"kind": "edge_offline", "edge": "edge-1", "silent_s": 30}, severity="critical"
        )
        assert rule["condition"] == {"kind": "edge_offline", "edge": "edge-1", "silent_s": 30.0}
        assert rule["enabled"] and rule["severity"] == "critical"
        for condition in (
            {"kind": "device_disconnected", "flow": "f", "for_s": 5},
            {"kind": "node_error_rate", "errors_per_min": 10, "window_s": 60},
            {"kind": "outbox_depth", "above": 1000},
            {"kind": "series_threshold", "series": "line1/temperature", "above": 80, "below": 10, "hysteresis": 2},
        ):
            await create_rule(client, condition)
        assert len((await client.get("/api/alert-rules")).json()) == 5

        for bad, field in (
            ({"kind": "edge_offline", "silent_s": 0}, "condition.silent_s"),
            ({"kind": "nope"}, "condition.kind"),
            ({"kind": "series_threshold", "series": "a/b"}, "condition.above"),
            ({"kind": "series_threshold", "series": "a/b", "above": 5, "below": 10}, "condition.below"),
            ({"kind": "node_error_rate"}, "condition"),
            ({"kind": "device_disconnected", "edge": "bad edge"}, "condition.edge"),
        ):
            response = await client.post("/api/alert-rules", json={"name": "bad", "condition": bad})
            assert response.status_code == 400, (bad, response.text)
            assert field in response.text, (bad, response.text)
        assert (
            await client.post("/api/alert-rules", json={"name": "", "condition": {"kind": "outbox_depth", "above": 1}})
        ).status_code == 400

        changed = await client.patch(f"/api/alert-rules/{rule['id']}", json={"name": "Edge 1 down", "enabled": False})
        assert changed.status_code == 200 and changed.json()["name"] == "Edge 1 down" and not changed.json()["enabled"]
        assert changed.json()["condition"]["silent_s"] == 30.0
        assert (await client.get("/api/alert-rules/999")).status_code == 404

        await client.login("vera", "password-123")
        assert (await client.get("/api/alert-rules")).status_code == 200
        assert (await client.get("/api/alerts")).status_code == 200
        assert (await client.get("/api/alert-channels")).status_code == 200
        refused = await client.post(
            "/api/alert-rules", json={"name": "x", "condition": {"kind": "outbox_depth", "above": 1}}
        )
        assert refused.status_code == 403
        assert (await client.delete(f"/api/alert-rules/{rule['id']}")).status_code == 403

        await client.login(*ADMIN)
        assert (await client.delete(f"/api/alert-rules/{rule['id']}")).status_code == 204
        assert (await client.get(f"/api/alert-rules/{rule['id']}")).status_code == 404
        actions = {a["action"] for a in (await client.get("/api/audit", params={"action": "alert_rule."})).json()}
        assert actions == {"alert_rule.create", "alert_rule.update", "alert_rule.delete"}


# -- status rules, from real heartbeats ------------------------------------------------------------


async def test_edge_offline_raised_when_heartbeats_stop_and_cleared_when_they_resume(
    settings: Settings, hub_nats: Any
) -> None:
    async with alerts_hub(settings) as client, FakeEdge(hub_nats.url, "edge-a") as edge:
        rule = await create_rule(client, {"kind": "edge_offline", "edge": "edge-a", "silent_s": 1}, severity="critical")
        edge.start()
        await asyncio.sleep(2.0)  # heartbeats flow: nothing is raised
        assert await alerts(client) == []

        await edge.stop()
        raised = await eventually(lambda: alerts(client, "active"), what="edge offline")
        alert = raised[0]
        assert alert["rule_id"] == rule["id"] and alert["kind"] == "edge_offline" and alert["subject"] == "edge-a"
        assert alert["severity"] == "critical" and alert["title"] == "Edge edge-a is offline"
        assert alert["value"]["silent_s"] >= 1 and "no status from edge edge-a" in alert["message"]

        edge.start()
        await eventually(lambda: _state_is(client, alert["id"], "cleared"), what="edge back online")
        detail = (await client.get(f"/api/alerts/{alert['id']}")).json()
        assert [t["transition"] for t in detail["transitions"]] == ["raised", "cleared"]
        assert detail["alert"]["cleared_at"] >= detail["alert"]["raised_at"]
        assert await alerts(client, "active") == []


async def _state_is(client: Client, alert_id: int, state: str) -> bool:
    response = await client.get(f"/api/alerts/{alert_id}")
    return bool(response.json()["alert"]["state"] == state)


async def test_device_disconnected_node_error_rate_and_outbox_depth(settings: Settings, hub_nats: Any) -> None:
    async with alerts_hub(settings) as client, FakeEdge(hub_nats.url, "edge-b") as edge:
        device_rule = await create_rule(client, {"kind": "device_disconnected", "edge": "edge-b", "for_s": 0.5})
        rate_rule = await create_rule(
            client, {"kind": "node_error_rate", "flow": "line", "node": "udf", "errors_per_min": 100, "window_s": 1}
        )
        outbox_rule = await create_rule(client, {"kind": "outbox_depth", "edge": "edge-b", "above": 100})
        edge.devices = {"line/plc": True}
        edge.errors = {"line/udf": 0}
        edge.start()
        await asyncio.sleep(1.5)
        assert await alerts(client) == []

        # the PLC drops: raised once it has been disconnected for 0.5 s
        edge.devices = {"line/plc": False}
        found = await eventually(lambda: _of_rule(client, device_rule["id"], "active"), what="device alert")
        device_alert = found[0]
        assert device_alert["subject"] == "edge-b/line/plc"
        assert device_alert["value"]["connected"] is False and "connection refused" in device_alert["message"]
        edge.devices = {"line/plc": True}
        await eventually(lambda: _state_is(client, device_alert["id"], "cleared"), what="device reconnected")

        # the UDF fails 10 times per heartbeat (0.1 s): about 6000 errors per minute
        async def failing() -> None:
            while True:
                edge.errors["line/udf"] += 10
                await asyncio.sleep(0.1)

        counting = asyncio.create_task(failing())
        try:
            found = await eventually(lambda: _of_rule(client, rate_rule["id"], "active"), what="error rate alert")
        finally:
            counting.cancel()
        rate_alert = found[0]
        assert rate_alert["subject"] == "edge-b/line/udf" and rate_alert["value"]["errors_per_min"] > 100
        await eventually(lambda: _state_is(client, rate_alert["id"], "cleared"), what="errors stopped")

        edge.outbox_depth = 5000
        found = await eventually(lambda: _of_rule(client, outbox_rule["id"], "active"), what="outbox alert")
        assert found[0]["value"] == {"outbox_depth": 5000}
        edge.outbox_depth = 3
        await eventually(lambda: _state_is(client, found[0]["id"], "cleared"), what="outbox drained")

        # disabling a rule clears its active alerts
        edge.devices = {"line/plc": False}
        found = await eventually(lambda: _of_rule(client, device_rule["id"], "active"), what="device alert again")
        await client.patch(f"/api/alert-rules/{device_rule['id']}", json={"enabled": False})
        detail = (await client.get(f"/api/alerts/{found[0]['id']}")).json()
        assert detail["alert"]["state"] == "cleared" and detail["alert"]["clear_message"] == "rule disabled"


async def _of_rule(client: Client, rule_id: int, state: str) -> list[dict[str, Any]]:
    response = await client.get("/api/alerts", params={"state": state, "rule_id": rule_id})
    found: list[dict[str, Any]] = response.json()
    return found


# -- the historian: series thresholds and analytics alarm events ----------------------------------


async def test_series_threshold_from_the_historian(settings: Settings, database_url: str) -> None:
    async with alerts_hub(settings) as client:
        rule = await create_rule(
            client, {"kind": "series_threshold", "series": "line1/temperature", "above": 80, "hysteresis": 2}
        )
        now = datetime.now(UTC)
        insert = "INSERT INTO proxus_points (ts, series, value, quality) VALUES ($1, $2, $3, 0)"
        await execute(database_url, insert, now - timedelta(seconds=5), "line1/temperature", 75.0)
        await execute(database_url, insert, now, "line1/other", 99.0)
        await asyncio.sleep(1.0)
        assert await alerts(client) == []

        await execute(database_url, insert, now + timedelta(milliseconds=1), "line1/temperature", 91.5)
        found = await eventually(lambda: _of_rule(client, rule["id"], "active"), what="threshold alert")
        alert = found[0]
        assert alert["subject"] == "line1/temperature" and alert["value"]["value"] == 91.5
        assert alert["title"] == "line1/temperature above 80"

        # inside the hysteresis band: still active
        await execute(database_url, insert, now + timedelta(milliseconds=2), "line1/temperature", 79.0)
        await asyncio.sleep(1.0)
        assert (await client.get(f"/api/alerts/{alert['id']}")).json()["alert"]["state"] == "active"
        await execute(database_url, insert, now + timedelta(milliseconds=3), "line1/temperature", 70.0)
        await eventually(lambda: _state_is(client, alert["id"], "cleared"), what="back below the limit")
        detail = (await client.get(f"/api/alerts/{alert['id']}")).json()
        assert detail["alert"]["clear_value"]["value"] == 70.0


async def test_alarm_events_raise_and_clear_and_acknowledge(settings: Settings, database_url: str) -> None:
    insert = """INSERT INTO proxus_events (ts, series, alarm, state, severity, value, message)
                VALUES ($1, $2, $3, $4, $5, $6, $7)"""
    async with alerts_hub(settings) as client:
        await add_user(client, "vera", "viewer")
        now = datetime.now(UTC)
        await execute(
            database_url, insert, now, "line1/temperature", "overheat", "raise", "critical", 85.5, "temperature high"
        )
        found = await eventually(lambda: alerts(client, "active"), what="alarm event alert")
        alert = found[0]
        assert alert["source"] == "alarm" and alert["kind"] == "alarm" and alert["rule_id"] is None
        assert alert["title"] == "overheat on line1/temperature" and alert["severity"] == "critical"
        assert alert["value"] == 85.5 and alert["message"] == "temperature high"
        assert datetime.fromisoformat(alert["raised_at"]) == now  # the event's own time

        # acknowledge: editors only, once
        await client.login("vera", "password-123")
        assert (await client.post(f"/api/alerts/{alert['id']}/ack", json={})).status_code == 403
        await client.login(*ADMIN)
        acked = await client.post(f"/api/alerts/{alert['id']}/ack", json={"comment": "on it"})
        assert acked.status_code == 200, acked.text
        assert acked.json()["acknowledged_by"] == ADMIN[0] and acked.json()["ack_comment"] == "on it"
        assert (await client.post(f"/api/alerts/{alert['id']}/ack")).status_code == 409
        assert (await client.post("/api/alerts/424242/ack")).status_code == 404
        unacked = (await client.get("/api/alerts", params={"state": "all", "acknowledged": "false"})).json()
        assert unacked == []

        # a duplicate raise of an active alarm changes nothing; the clear clears it
        await execute(
            database_url,
            insert,
            now + timedelta(seconds=1),
            "line1/temperature",
            "overheat",
            "raise",
            "critical",
            86.0,
            "still high",
        )
        await execute(
            database_url,
            insert,
            now + timedelta(seconds=2),
            "line1/temperature",
            "overheat",
            "clear",
            "critical",
            70.0,
            "temperature normal",
        )
        await eventually(lambda: _state_is(client, alert["id"], "cleared"), what="alarm cleared")
        assert len(await alerts(client)) == 1
        detail = (await client.get(f"/api/alerts/{alert['id']}")).json()
        assert [t["transition"] for t in detail["transitions"]] == ["raised", "acknowledged", "cleared"]
        assert detail["transitions"][1]["by"] == ADMIN[0]
        assert detail["alert"]["clear_message"] == "temperature normal" and detail["alert"]["clear_value"] == 70.0

        # an event replayed late (older than the cursor) is still taken, once
        await execute(
            database_url,
            insert,
            now + timedelta(seconds=5),
            "line2/pressure",
            "low",
            "raise",
            "warning",
            1.0,
            "pressure low",
        )
        await eventually(lambda: alerts(client, "active"), what="second alarm")
        await execute(
            database_url,
            insert,
            now + timedelta(seconds=3),
            "line3/speed",
            "stall",
            "raise",
            "info",
            0.0,
            "stalled (replayed late)",
        )
        found = await eventually(lambda: _with_subject(client, "line3/speed"), what="late event")
        assert found[0]["state"] == "active"
        await asyncio.sleep(0.6)
        assert len(await alerts(client)) == 3


async def _with_subject(client: Client, subject: str) -> list[dict[str, Any]]:
    return [a for a in await alerts(client) if a["subject"] == subject]


# -- notifications ---------------------------------------------------------------------------------


async def test_channel_validation(settings: Settings, receiver: Receiver) -> None:
    async with alerts_hub(settings) as client:
        base = {"name": "ops", "target": {"kind": "webhook", "url": receiver.url}}
        for target, field in (
            ({"kind": "webhook", "url": receiver.url, "headers": {"Authorization": "Bearer x"}}, "target.headers"),
            ({"kind": "webhook", "url": "http://user:pw@example.com/x"}, "target.url"),
            ({"kind": "webhook", "url": "ftp://example.com/x"}, "target.url"),
            ({"kind": "webhook", "url": "https://example.com/x?token=abc"}, "target.url"),
            ({"kind": "webhook", "url": receiver.url, "credential": "nope"}, "target.credential"),
            ({"kind": "email", "to": "a@b"}, "target.kind"),
        ):
            response = await client.post("/api/alert-channels", json={**base, "target": target})
            assert response.status_code == 400, (target, response.text)
            assert field in response.text, (target, response.text)
        bad_rule = await client.post("/api/alert-channels", json={**base, "rule_ids": [12345]})
        assert bad_rule.status_code == 400 and "rule_ids" in bad_rule.text

        made = await client.post(
            "/api/alert-channels", json={**base, "target": {**base["target"], "headers": {"X-Plant": "berlin"}}}
        )
        assert made.status_code == 201, made.text
        channel = made.json()
        assert channel["send_on"] == ["clear", "raise"] and channel["rule_ids"] is None
        assert (await client.post("/api/alert-channels", json=base)).status_code == 409  # same name

        tested = await client.post(f"/api/alert-channels/{channel['id']}/test")
        assert tested.status_code == 200, tested.text
        assert tested.json()["ok"] is True and tested.json()["status"] == 200
        assert receiver.requests[-1]["body"]["type"] == "test"
        assert receiver.requests[-1]["headers"]["X-Plant"] == "berlin"

        receiver.default = 404
        tested = (await client.post(f"/api/alert-channels/{channel['id']}/test")).json()
        assert tested["ok"] is False and tested["status"] == 404 and "404" in tested["error"]
        history = (await client.get(f"/api/alert-channels/{channel['id']}/notifications")).json()
        assert [(n["event"], n["state"], n["attempts"]) for n in history] == [
            ("test", "failed", 1),
            ("test", "sent", 1),
        ]

        changed = await client.patch(
            f"/api/alert-channels/{channel['id']}", json={"enabled": False, "send_on": ["raise"]}
        )
        assert changed.status_code == 200 and changed.json()["send_on"] == ["raise"] and not changed.json()["enabled"]
        assert (await client.delete(f"/api/alert-channels/{channel['id']}")).status_code == 204


async def test_webhook_retried_with_backoff_until_delivered_once(
    settings: Settings, database_url: str, receiver: Receiver
) -> None:
    receiver.script = [500, 500]  # fails twice, then succeeds
    async with alerts_hub(settings) as client:
        made = await client.post(
            "/api/alert-channels",
            json={
                "name": "ops",
                "target": {"kind": "webhook", "url": receiver.url},
                "send_on": ["raise"],
                "max_attempts": 5,
            },
        )
        assert made.status_code == 201, made.text
        await execute(
            database_url,
            "INSERT INTO proxus_events (ts, series, alarm, state, severity, value, message) "
            "VALUES (now(), 'press/oil', 'low_oil', 'raise', 'warning', 0.2, 'oil low')",
        )
        alert = (await eventually(lambda: alerts(client, "active"), what="alert"))[0]

        async def sent() -> list[dict[str, Any]]:
            detail = (await client.get(f"/api/alerts/{alert['id']}")).json()
            return [n for n in detail["notifications"] if n["state"] == "sent"]

        notification = (await eventually(sent, what="delivery"))[0]
        assert notification["attempts"] == 3 and notification["event"] == "raise"
        assert [a["status"] for a in notification["attempt_log"]] == [500, 500, 200]
        assert "500" in notification["attempt_log"][0]["error"]
        assert len(receiver.delivered()) == 1  # delivered once
        assert [r["status"] for r in receiver.requests] == [500, 500, 200]
        request = receiver.delivered()[0]
        assert request["body"]["type"] == "alert.raised"
        assert (
            request["body"]["alert"]["id"] == alert["id"]
            and request["body"]["alert"]["title"] == "low_oil on press/oil"
        )
        assert request["headers"]["X-Proxus-Notification"] == str(notification["id"])
        # the backoff grows: the second pause is longer than the first
        at = [datetime.fromisoformat(a["at"]) for a in notification["attempt_log"]]
        assert (at[2] - at[1]) > (at[1] - at[0]) * 1.2


async def test_a_pending_notification_survives_a_hub_restart(
    settings: Settings, database_url: str, receiver: Receiver
) -> None:
    receiver.default = 503  # down while the first Hub runs
    async with alerts_hub(settings) as client:
        made = await client.post(
            "/api/alert-channels",
            json={"name": "ops", "target": {"kind": "webhook", "url": receiver.url}, "send_on": ["raise", "ack"]},
        )
        assert made.status_code == 201
        await execute(
            database_url,
            "INSERT INTO proxus_events (ts, series, alarm, state, severity, value, message) "
            "VALUES (now(), 'press/oil', 'low_oil', 'raise', 'critical', 0.2, 'oil low')",
        )
        alert = (await eventually(lambda: alerts(client, "active"), what="alert"))[0]
        await eventually(lambda: asyncio.sleep(0, bool(receiver.requests)), what="a first attempt")

        async def pending_after_attempt() -> bool:
            detail = (await client.get(f"/api/alerts/{alert['id']}")).json()
            return any(n["state"] == "pending" and n["attempts"] >= 1 for n in detail["notifications"])

        await eventually(pending_after_attempt, what="a recorded failed attempt")
    # the Hub is gone with the notification still pending; the receiver recovers meanwhile
    receiver.default = 200
    assert not receiver.delivered()
    async with alerts_hub(settings, setup=False) as client:

        async def sent() -> list[dict[str, Any]]:
            detail = (await client.get(f"/api/alerts/{alert['id']}")).json()
            return [n for n in detail["notifications"] if n["state"] == "sent"]

        notification = (await eventually(sent, timeout=30, what="delivery after the restart"))[0]
        assert notification["attempt_log"][-1]["status"] == 200
        assert all(a["status"] == 503 for a in notification["attempt_log"][:-1])
        assert len(receiver.delivered()) == 1
        assert receiver.delivered()[0]["body"]["alert"]["id"] == alert["id"]

        # acknowledging sends the ack to the channels that asked for it
        await client.post(f"/api/alerts/{alert['id']}/ack", json={"comment": "refilled"})
        await eventually(lambda: asyncio.sleep(0, len(receiver.delivered()) == 2), what="ack delivered")
        assert receiver.delivered()[1]["body"]["type"] == "alert.acknowledged"


async def test_openapi_describes_the_alerts_api(settings: Settings) -> None:
    async with alerts_hub(settings) as client:
        schema = (await client.get("/api/schema/openapi.json")).json()
        assert {
            "/api/alerts",
            "/api/alerts/{alert_id}/ack",
            "/api/alert-rules",
            "/api/alert-channels/{channel_id}/test",
        } <= set(schema["paths"])
        condition = schema["components"]["schemas"]["RuleCreate"]["properties"]["condition"]
        assert len(condition["oneOf"]) == 5
