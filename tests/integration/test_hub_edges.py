"""Edges against a real Hub: per-edge NATS permissions, registration, live status, revocation.

The Hub runs with a hub NATS server that includes the ``auth.conf`` written by HubNatsAuth (as the
embedded server of ``proxus hub`` does), real edge leaf servers and a real in-process EdgeAgent.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import threading
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, TypeVar

import asyncpg  # type: ignore[import-untyped, unused-ignore]
import httpx
import nats
import pytest
from litestar import Litestar
from nats.aio.client import Client as NatsClient

from backend.app import create_app
from backend.edges.natsauth import HubNatsAuth, check_password, hash_password, new_password
from backend.edges.service import ensure_local_edge
from backend.settings import Settings
from proxus.catalog import Catalog
from proxus.plan import PlanBundle
from proxus.services.nats import NatsServer
from runtime.edge import EdgeAgent, EdgeSettings
from tests.integration.hub_support import Client, add_user, hub_settings, setup_admin
from tests.integration.runtime_support import flow, plan_of, sim

T = TypeVar("T")

# -- shared with test_hub_devices.py / test_hub_credentials.py ------------------------------------


async def eventually(check: Callable[[], Awaitable[bool]], timeout: float = 20.0, interval: float = 0.1) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not await check():
        if loop.time() > deadline:
            raise AssertionError("condition not met within the timeout")
        await asyncio.sleep(interval)


@dataclasses.dataclass
class Hub:
    client: Client
    app: Litestar
    nats: NatsServer
    auth: HubNatsAuth
    settings: Settings

    async def login_as(self, username: str, role: str) -> As:
        """Another user (new, with ``role``) on the running Hub."""
        return await login_as(self.client, username, role)


class As:
    """Requests as another user through the test client (the app runs once, in the client's portal),
    authenticated with that user's API token."""

    def __init__(self, client: Client, token: str) -> None:
        self.client = client
        self.auth = {"Authorization": f"Bearer {token}"}

    async def get(self, url: str, **kwargs: Any) -> httpx.Response:
        return await self.client.get(url, headers=self.auth, **kwargs)

    async def post(self, url: str, **kwargs: Any) -> httpx.Response:
        return await self.client.post(url, headers=self.auth, **kwargs)

    async def patch(self, url: str, **kwargs: Any) -> httpx.Response:
        return await self.client.patch(url, headers=self.auth, **kwargs)

    async def delete(self, url: str, **kwargs: Any) -> httpx.Response:
        return await self.client.delete(url, headers=self.auth, **kwargs)


async def login_as(admin: Client, username: str, role: str) -> As:
    """Create a user with ``role``, sign in as them once to make an API token, and act with it."""
    await add_user(admin, username, role)
    cookies, csrf = dict(admin.cookies), admin.headers["X-CSRF-Token"]
    admin.cookies.clear()  # signing in replaces the session the request carries: keep the admin's out of it
    try:
        response = await admin.post("/api/auth/login", json={"username": username, "password": "password-123"})
        assert response.status_code == 200, response.text
        created = await admin.post(
            "/api/tokens", json={"name": "test"}, headers={"X-CSRF-Token": response.json()["csrf_token"]}
        )
        assert created.status_code == 201, created.text
    finally:
        admin.cookies.clear()
        admin.cookies.update(cookies)
        admin.headers["X-CSRF-Token"] = csrf
    return As(admin, created.json()["secret"])


@asynccontextmanager
async def secured_hub(
    tmp_path: Path, database_url: str, redis_url: str, redis_prefix: str, nats_server_factory: Any
) -> AsyncIterator[Hub]:
    """A Hub with NATS set up as ``proxus hub`` sets up its embedded server: ``<data_dir>/nats`` holds
    the server's config, which includes the auth.conf that the Hub rewrites and reloads."""
    base = hub_settings(tmp_path, database_url, "nats://unused:4222", redis_url, redis_prefix)
    auth = HubNatsAuth(base.data_dir / "nats")
    await auth.prepare(database_url)
    server = NatsServer.hub(base.data_dir, name="nats", extra_config=auth.include_directive())
    nats_server_factory.servers.append(server)  # stopped with the fixture's servers
    server.start()
    # The plans bucket with direct gets (what the per-edge permissions allow for kv.get).
    nc = await nats.connect(server.url, user=auth.hub_user, password=auth.hub_password)
    await nc.jetstream(domain="hub").create_key_value(bucket="plans", history=10, direct=True)
    await nc.close()
    settings = dataclasses.replace(base, nats_url=server.url, nats_user=auth.hub_user, nats_password=auth.hub_password)
    app = create_app(settings, hub_nats_server=server)
    async with Client(app=app, base_url="http://hub.test") as client:
        await setup_admin(client)
        yield Hub(client, app, server, auth, settings)


class Background:
    """An event loop in its own thread, for what must keep running while the test waits on the Hub
    (Litestar's test client runs the app in another loop and blocks the test's loop per request)."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="background-loop", daemon=True)
        self.thread.start()

    async def run(self, coro: Coroutine[Any, Any, T]) -> T:
        return await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(coro, self.loop))

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()


@asynccontextmanager
async def background() -> AsyncIterator[Background]:
    loop = Background()
    try:
        yield loop
    finally:
        loop.close()


@asynccontextmanager
async def running_edge(edge_id: str, hub_leaf_url: str, data_dir: Path) -> AsyncIterator[EdgeAgent]:
    """A real edge agent (its own leaf NATS server, its device request handlers) in this process, on
    its own event loop."""
    settings = EdgeSettings(
        edge_id=edge_id, data_dir=data_dir, hub_leaf_url=hub_leaf_url, heartbeat_s=0.3, resync_s=1.0
    )

    async def start() -> tuple[EdgeAgent, asyncio.Task[None]]:
        agent = EdgeAgent(settings, Catalog.load())
        task = asyncio.create_task(agent.run())
        for _ in range(400):
            if agent.host is not None or task.done():
                break
            await asyncio.sleep(0.05)
        if task.done():
            task.result()
        return agent, task

    async def stop(agent: EdgeAgent, task: asyncio.Task[None]) -> None:
        agent.stopped.set()
        await asyncio.wait_for(task, 30)

    async with background() as loop:
        agent, task = await loop.run(start())
        try:
            yield agent
        finally:
            await loop.run(stop(agent, task))


async def register_edge(client: Client, edge_id: str) -> dict[str, Any]:
    response = await client.post("/api/edges", json={"id": edge_id, "name": f"Edge {edge_id}"})
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


async def edge_status(client: Client | As, edge_id: str) -> dict[str, Any]:
    response = await client.get(f"/api/edges/{edge_id}")
    assert response.status_code == 200, response.text
    status: dict[str, Any] = response.json()["status"]
    return status


def leaf_count(server: NatsServer) -> int:
    return int(server.monitor("leafz").get("leafnodes", 0))


# -- fixtures -------------------------------------------------------------------------------------


@pytest.fixture
async def hub(
    tmp_path: Path, database_url: str, redis_url: str, redis_prefix: str, nats_server_factory: Any
) -> AsyncIterator[Hub]:
    async with secured_hub(tmp_path, database_url, redis_url, redis_prefix, nats_server_factory) as running:
        yield running


# -- NATS permissions -----------------------------------------------------------------------------


async def _edge_client(leaf: NatsServer, edge: str) -> NatsClient:
    return await nats.connect(leaf.url, inbox_prefix=f"_INBOX_{edge}".encode(), allow_reconnect=False)


async def test_each_edge_reaches_only_its_own_subjects_and_a_removed_edge_is_locked_out(
    tmp_path: Path, nats_server_factory: Any
) -> None:
    auth = HubNatsAuth(nats_server_factory.base_dir / "hub")
    passwords = {"edgeA": new_password(), "edgeB": new_password()}
    hashes = {edge: hash_password(pw) for edge, pw in passwords.items()}
    auth.write(sorted(hashes.items()))
    assert oct(auth.conf_path.stat().st_mode & 0o777) == "0o600"
    assert oct(auth.secrets_path.stat().st_mode & 0o777) == "0o600"
    text = auth.conf_path.read_text()
    assert all(pw not in text for pw in passwords.values()) and auth.hub_password not in text
    hub = nats_server_factory.hub(extra_config=auth.include_directive())

    hub_nc = await nats.connect(hub.url, user=auth.hub_user, password=auth.hub_password, inbox_prefix=b"_INBOX_hub")
    try:
        kv = await hub_nc.jetstream(domain="hub").create_key_value(bucket="plans", direct=True)
        await kv.put("edgeA", b"plan of A")
        await kv.put("edgeB", b"plan of B")
        statuses: list[str] = []

        async def on_status(msg: Any) -> None:
            statuses.append(msg.subject)

        await hub_nc.subscribe("status.*", cb=on_status)

        # Only leaf-node connections may use an edge's credentials; a wrong password gets nowhere.
        with pytest.raises(Exception):  # noqa: B017 - any refusal will do
            await nats.connect(hub.url, user="edgeA", password=passwords["edgeA"], allow_reconnect=False)
        intruder = nats_server_factory.leaf("edgeX", hub.leaf_url, user="edgeA", password="wrong-password")
        await asyncio.sleep(1.5)
        assert leaf_count(hub) == 0
        intruder.stop()

        leaf = nats_server_factory.leaf("edgeA", hub.leaf_url, user="edgeA", password=passwords["edgeA"])
        leaf.wait_for_leafnodes(1)
        edge_nc = await _edge_client(leaf, "edgeA")
        try:
            js = edge_nc.jetstream(domain="hub", timeout=2.0)
            edge_kv = None
            for _ in range(50):  # interest crosses the leaf link a moment after it is up
                try:
                    edge_kv = await js.key_value("plans")
                    break
                except Exception:
                    await asyncio.sleep(0.1)
            assert edge_kv is not None
            assert (await edge_kv.get("edgeA")).value == b"plan of A"
            with pytest.raises(Exception):  # noqa: B017 - refused: no responders or a timeout
                await edge_kv.get("edgeB")
            with pytest.raises(Exception):  # noqa: B017 - an edge never writes desired state
                await js.publish("$KV.plans.edgeA", b"forged")
            assert (await kv.get("edgeA")).value == b"plan of A"

            await edge_nc.publish("status.edgeA", b"{}")
            await edge_nc.publish("status.edgeB", b"{}")  # impersonating edge B: dropped
            await edge_nc.flush()
            await eventually(lambda: _true("status.edgeA" in statuses), timeout=5)
            await asyncio.sleep(0.5)
            assert statuses == ["status.edgeA"]

            # Requests from the hub reach the edge's own request subjects, and the replies come back.
            async def answer(msg: Any) -> None:
                await msg.respond(b"pong from A")

            await edge_nc.subscribe("proxus.edge.edgeA.req.>", cb=answer)
            spy: list[str] = []

            async def overhear(msg: Any) -> None:
                spy.append(msg.subject)

            await edge_nc.subscribe("proxus.edge.edgeB.req.>", cb=overhear)
            await edge_nc.flush()

            async def ping() -> bool:
                try:
                    reply = await hub_nc.request("proxus.edge.edgeA.req.ping", b"", timeout=0.5)
                except Exception:
                    return False
                return reply.data == b"pong from A"

            await eventually(ping, timeout=10)
            with pytest.raises(Exception):  # noqa: B017 - B's requests never cross into A's leaf
                await hub_nc.request("proxus.edge.edgeB.req.ping", b"", timeout=0.5)
            assert spy == []
        finally:
            await edge_nc.close()

        # Removing edge A: its user disappears from auth.conf, the server reloads and drops the leaf,
        # which cannot come back although it keeps dialling.
        del hashes["edgeA"]
        auth.write(sorted(hashes.items()))
        assert '"edgeA"' not in auth.conf_path.read_text()
        hub.reload()
        assert await auth.disconnect_leafs(hub, keep={"edgeB"}) == ["edgeA"]  # a reload alone keeps it
        await eventually(lambda: _true(leaf_count(hub) == 0), timeout=10)
        await asyncio.sleep(3)  # the leaf reconnects every second: still refused
        assert leaf_count(hub) == 0
        assert 'authentication error - User "edgeA"' in hub.log_tail(20)
    finally:
        await hub_nc.close()


async def _true(value: bool) -> bool:
    return value


# -- registration, live status, removal -----------------------------------------------------------


async def test_register_shows_the_password_once_and_a_live_edge_reports_its_status(
    hub: Hub, tmp_path: Path, database_url: str
) -> None:
    client = hub.client
    viewer = await hub.login_as("vera", "viewer")
    refused = await viewer.post("/api/edges", json={"id": "e9"})
    assert refused.status_code == 403
    bad = await client.post("/api/edges", json={"id": "no spaces!"})
    assert bad.status_code == 400 and "id" in bad.text

    created = await register_edge(client, "line1")
    password = created["password"]
    assert len(password) >= 24
    port = hub.nats.leaf_port
    assert created["hub_leaf_url"] == f"nats-leaf://line1:{password}@127.0.0.1:{port}"
    assert created["command"] == f"proxus edge --id line1 --hub nats-leaf://line1:{password}@127.0.0.1:{port}"
    assert created["settings_file"]["id"] == "line1"
    assert created["settings_file"]["hub_leaf_url"] == created["hub_leaf_url"]
    assert created["nats"]["applied"] is True
    assert (await client.post("/api/edges", json={"id": "line1"})).status_code == 409

    # The password is never shown again, and only its bcrypt hash is stored.
    listed = await viewer.get("/api/edges")
    assert listed.status_code == 200 and [e["id"] for e in listed.json()] == ["line1"]
    assert password not in listed.text and password not in (await client.get("/api/edges/line1")).text
    audit = await client.get("/api/audit", params={"entity_type": "edge"})
    assert password not in audit.text
    conn = await asyncpg.connect(database_url)
    try:
        stored = await conn.fetchval("SELECT nats_password_hash FROM edges WHERE id = 'line1'")
    finally:
        await conn.close()
    assert stored.startswith("$2a$") and check_password(password, stored)
    assert '"line1"' in hub.auth.conf_path.read_text()

    assert (await edge_status(client, "line1"))["online"] is False

    seen: list[tuple[str, str]] = []

    async def listener(edge: str, body: dict[str, Any]) -> None:
        seen.append((edge, body.get("kind", "")))

    hub.app.state.status_listeners.append(listener)  # another domain's hook into status messages

    async with running_edge("line1", created["hub_leaf_url"], tmp_path / "edge-line1") as agent:

        async def online() -> bool:
            status = await edge_status(viewer, "line1")
            return bool(status["online"]) and status["rss_bytes"] is not None

        await eventually(online)
        assert ("line1", "heartbeat") in seen

        # Desired state in the plans bucket vs what the edge applied, with per-node metrics.
        data = flow([("s", "simulator", sim(rate_hz=20, tags=2)), ("d", "sink.debug", {})], [("s", "d")], id="demo")
        data["metadata"] = {"default_edge": "line1"}
        plan = plan_of(data, Catalog.load(), "line1")
        kv = hub.app.state.nats.plans
        await kv.put("line1", PlanBundle(edge="line1", plans={"demo": plan}).encode())

        async def in_sync() -> bool:
            status = await edge_status(client, "line1")
            flows = {f["flow_id"]: f for f in status["flows"]}
            demo = flows.get("demo", {})
            return bool(
                demo.get("in_sync") and demo["nodes"].get("d", {}).get("points_in", 0) > 0 and status["in_sync"]
            )

        await eventually(in_sync, timeout=30)
        status = await edge_status(client, "line1")
        demo = status["flows"][0]
        assert demo["desired_hash"] == demo["applied_hash"] == plan.hash and demo["state"] == "applied"
        assert status["outbox_depth"] is not None and status["cpu_percent"] is not None
        assert status["rss_bytes"] > 0 and status["last_seen"] is not None
        assert agent.flows["demo"].applied_hash == plan.hash

        # A desired plan the edge has not applied yet shows as out of sync.
        data2 = {**data, "id": "other"}
        plan2 = plan_of(data2, Catalog.load(), "line1")
        bundle = PlanBundle(edge="line1", plans={"demo": plan, "other": plan2})
        await kv.put("line1", bundle.encode())
        await eventually(lambda: _in_sync_of(client, "line1", "other"), timeout=30)

    # The agent stopped: offline once no heartbeat came for offline_after_s (2 s in tests).
    async def offline() -> bool:
        return not (await edge_status(client, "line1"))["online"]

    await eventually(offline, timeout=10)
    status = await edge_status(client, "line1")
    assert status["last_seen"] is not None


async def _in_sync_of(client: Client, edge: str, flow_id: str) -> bool:
    flows = {f["flow_id"]: f for f in (await edge_status(client, edge))["flows"]}
    return bool(flows.get(flow_id, {}).get("in_sync"))


async def test_status_is_persisted_and_restored_after_a_restart(
    tmp_path: Path, database_url: str, redis_url: str, redis_prefix: str, nats_server_factory: Any
) -> None:
    async with secured_hub(tmp_path, database_url, redis_url, redis_prefix, nats_server_factory) as hub:
        created = await register_edge(hub.client, "e1")
        async with running_edge("e1", created["hub_leaf_url"], tmp_path / "edge-e1"):
            await eventually(lambda: _online(hub.client, "e1"))
    # The Hub stopped (and wrote what it knew); a new Hub shows the last status, offline.
    conn = await asyncpg.connect(database_url)
    try:
        row = await conn.fetchrow("SELECT last_seen, last_status FROM edges WHERE id = 'e1'")
    finally:
        await conn.close()
    assert row["last_seen"] is not None and json.loads(row["last_status"])["heartbeat"]["rss_bytes"] > 0
    app = create_app(dataclasses.replace(hub.settings))
    async with Client(app=app, base_url="http://hub.test") as client:
        await client.login("admin", "correct horse battery")
        status = await edge_status(client, "e1")
        assert status["online"] is False and status["last_seen"] is not None and status["rss_bytes"] > 0


async def _online(client: Client, edge: str) -> bool:
    return bool((await edge_status(client, edge))["online"])


async def test_removing_an_edge_revokes_its_credentials(hub: Hub, tmp_path: Path) -> None:
    client = hub.client
    created = await register_edge(client, "press")
    leaf = NatsServer.leaf(tmp_path / "leafs", "press", hub.nats.leaf_url, user="press", password=created["password"])
    leaf.start()
    try:
        leaf.wait_for_leafnodes(1)
        assert leaf_count(hub.nats) == 1

        # A new password replaces the old one: the old connection is dropped and cannot come back.
        rotated = await client.post("/api/edges/press/credentials")
        assert rotated.status_code == 201 and rotated.json()["password"] != created["password"]
        await eventually(lambda: _true(leaf_count(hub.nats) == 0), timeout=10)
        await asyncio.sleep(2)
        assert leaf_count(hub.nats) == 0
        leaf.stop()
        leaf = NatsServer.leaf(
            tmp_path / "leafs2", "press", hub.nats.leaf_url, user="press", password=rotated.json()["password"]
        )
        leaf.start()
        leaf.wait_for_leafnodes(1)

        device = {
            "id": "press-plc",
            "name": "Press PLC",
            "protocol": "modbus",
            "edge": "press",
            "settings": {"host": "127.0.0.1", "port": 5020, "registers": [{"tag": "speed", "address": 0}]},
        }
        assert (await client.post("/api/devices", json=device)).status_code == 201
        refused = await client.delete("/api/edges/press")
        assert refused.status_code == 409 and "press-plc" in refused.text

        removed = await client.delete("/api/edges/press", params={"force": "true"})
        assert removed.status_code == 200, removed.text
        assert removed.json()["unassigned_devices"] == ["press-plc"] and removed.json()["nats"]["applied"] is True
        await eventually(lambda: _true(leaf_count(hub.nats) == 0), timeout=10)
        await asyncio.sleep(2.5)  # the leaf keeps dialling, and keeps being refused
        assert leaf_count(hub.nats) == 0
        assert '"press"' not in hub.auth.conf_path.read_text()
        assert (await client.get("/api/edges/press")).status_code == 404
        assert (await client.get("/api/devices/press-plc")).json()["edge"] is None
        audit = await client.get("/api/audit", params={"entity_type": "edge", "entity_id": "press"})
        assert [e["action"] for e in audit.json()] == ["edge.delete", "edge.rotate_credentials", "edge.create"]
    finally:
        leaf.stop()


async def test_edges_without_a_managed_nats_server_get_the_user_entry(
    tmp_path: Path, database_url: str, redis_url: str, redis_prefix: str, nats_server_factory: Any
) -> None:
    server = nats_server_factory.hub()
    app = create_app(hub_settings(tmp_path, database_url, server.url, redis_url, redis_prefix))
    async with Client(app=app, base_url="http://hub.test") as client:
        await setup_admin(client)
        created = await register_edge(client, "far-away")
        assert created["nats"]["applied"] is False
        assert '"far-away"' in created["nats"]["user_config"] and "LEAFNODE" in created["nats"]["user_config"]
        assert created["hub_leaf_url"].endswith("@hub.test:7422")  # the host the browser used, default port
        removed = await client.delete("/api/edges/far-away")
        assert removed.status_code == 200 and removed.json()["nats"]["applied"] is False


async def test_the_local_edge_keeps_its_password_across_starts(hub: Hub, tmp_path: Path, database_url: str) -> None:
    conn = await asyncpg.connect(database_url)
    leaf: NatsServer | None = None
    try:
        edge, password = await ensure_local_edge(conn, hub.settings)
        assert edge == "local" and '"local"' in hub.auth.conf_path.read_text()
        assert await ensure_local_edge(conn, hub.settings) == ("local", password)  # a restart reuses it
        leaf = NatsServer.leaf(tmp_path / "leafs", "local", hub.nats.leaf_url, user="local", password=password)
        leaf.start()
        leaf.wait_for_leafnodes(1)
        assert oct((hub.settings.data_dir / "nats" / "edge-local.password").stat().st_mode & 0o777) == "0o600"

        # The kept password is gone: a new one, and the old connection is ended.
        (hub.settings.data_dir / "nats" / "edge-local.password").unlink()
        _, renewed = await ensure_local_edge(conn, hub.settings)
        assert renewed != password
        await eventually(lambda: _true(leaf_count(hub.nats) == 0), timeout=10)
        stored = await conn.fetchval("SELECT nats_password_hash FROM edges WHERE id = 'local'")
        assert check_password(renewed, stored) and not check_password(password, stored)
    finally:
        await conn.close()
        if leaf is not None:
            leaf.stop()
