"""The service fixtures and launchers really work: PostgreSQL, Redis, NATS JetStream, hub + leaf topology."""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path
from typing import Any

import asyncpg
import harness
import nats
import pytest
import redis.asyncio as aioredis
from nats.js.api import ExternalStream, StreamConfig, StreamSource

from proxus.services import EmbeddedPostgres, LocalRedis, NatsServer, free_port, is_reachable

pytestmark = pytest.mark.services


def _gone(pid: int | None) -> bool:
    """The process no longer exists (or is a zombie awaiting its reaper)."""
    assert pid is not None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] in ("Z", "X")
    except OSError:
        return True


def _wait_gone(pid: int | None, timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while not _gone(pid):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


async def _wait_for_messages(js: Any, stream: str, count: int, within: float = 20.0) -> int:
    deadline = time.monotonic() + within
    messages = 0
    while time.monotonic() < deadline:
        info = await js.stream_info(stream)
        messages = int(info.state.messages)
        if messages >= count:
            return messages
        await asyncio.sleep(0.1)
    return messages


# ---------------------------------------------------------------------- fixtures against real services
async def test_database_url_is_a_fresh_database(database_url: str, postgres_admin_dsn: str) -> None:
    name = database_url.rsplit("/", 1)[1]
    assert name.startswith("proxus_test_")
    conn = await asyncpg.connect(database_url)
    try:
        assert await conn.fetchval("SELECT current_database()") == name
        assert await conn.fetchval("SHOW server_encoding") == "UTF8"
        await conn.execute("CREATE TABLE t (id int PRIMARY KEY, note text)")
        await conn.execute("INSERT INTO t VALUES (1, 'grüß dich')")
        assert await conn.fetchval("SELECT note FROM t WHERE id = 1") == "grüß dich"
    finally:
        await conn.close()


async def test_database_is_dropped_after_use(postgres_admin_dsn: str) -> None:
    from proxus.services import create_database, drop_database

    name = harness.new_database_name()
    dsn = await create_database(postgres_admin_dsn, name)
    lingering = await asyncpg.connect(dsn)  # an open connection must not block the drop
    try:
        await drop_database(postgres_admin_dsn, name)
    finally:
        await lingering.close(timeout=2)
    admin = await asyncpg.connect(postgres_admin_dsn)
    try:
        assert await admin.fetchval("SELECT count(*) FROM pg_database WHERE datname = $1", name) == 0
    finally:
        await admin.close()


async def test_redis_with_prefix(redis_url: str, redis_prefix: str) -> None:
    assert redis_prefix.startswith("proxus_test:")
    client = aioredis.Redis.from_url(redis_url)
    try:
        await client.set(redis_prefix + "greeting", "hello")
        await client.hset(redis_prefix + "tag:1", mapping={"value": "42"})
        assert await client.get(redis_prefix + "greeting") == b"hello"
        assert await client.hget(redis_prefix + "tag:1", "value") == b"42"
    finally:
        await client.aclose()


def test_redis_prefix_cleanup_deletes_only_that_prefix(redis_server_url: str) -> None:
    import redis as syncredis

    mine, other = harness.new_redis_prefix(), harness.new_redis_prefix()
    client = syncredis.Redis.from_url(redis_server_url)
    try:
        for i in range(3):
            client.set(f"{mine}k{i}", i)
        client.set(other + "keep", 1)
        assert harness.delete_redis_prefix(redis_server_url, mine) == 3
        assert list(client.scan_iter(match=mine + "*")) == []
        assert client.get(other + "keep") == b"1"
    finally:
        client.delete(other + "keep")
        client.close()


async def test_jetstream_pull_consumer(nats_url: str, js_prefix: str) -> None:
    stream = js_prefix + "ORDERS"
    subject = f"{js_prefix}orders.created"
    nc = await nats.connect(nats_url)
    try:
        js = nc.jetstream()
        await js.add_stream(StreamConfig(name=stream, subjects=[f"{js_prefix}orders.>"]))
        ack = await js.publish(subject, b'{"id": 1}')
        assert ack.stream == stream and ack.seq == 1
        sub = await js.pull_subscribe(subject, durable=js_prefix + "worker", stream=stream)
        msgs = await sub.fetch(1, timeout=5)
        assert [m.data for m in msgs] == [b'{"id": 1}']
        await msgs[0].ack()
        kv = await js.create_key_value(bucket=js_prefix + "state")
        await kv.put("k", b"v")
    finally:
        await nc.close()


async def test_js_prefix_cleanup(nats_url: str) -> None:
    prefix = harness.new_js_prefix()
    nc = await nats.connect(nats_url)
    try:
        js = nc.jetstream()
        await js.add_stream(StreamConfig(name=prefix + "A", subjects=[prefix + "a"]))
        await js.create_key_value(bucket=prefix + "bucket")
        deleted = await harness.delete_js_prefix(nats_url, prefix)
        assert sorted(deleted) == sorted([prefix + "A", "KV_" + prefix + "bucket"])
        names = [s.config.name for s in await js.streams_info()]
        assert not [n for n in names if prefix in (n or "")]
    finally:
        await nc.close()


# ---------------------------------------------------------------------- NatsServer topologies
async def test_hub_and_leaf_sourcing(nats_server_factory: harness.NatsServerFactory) -> None:
    hub = nats_server_factory.hub("hub")
    edge = nats_server_factory.leaf("edge1", hub.leaf_url)
    assert hub.leaf_port is not None and edge.domain == "edge1"
    assert hub.version().startswith("2.")
    await asyncio.to_thread(edge.wait_for_leafnodes, 1)
    await asyncio.to_thread(hub.wait_for_leafnodes, 1)

    nc_edge = await nats.connect(edge.url)
    nc_hub = await nats.connect(hub.url)
    try:
        js_edge = nc_edge.jetstream()
        await js_edge.add_stream(StreamConfig(name="TELEMETRY", subjects=["edge1.telemetry.>"]))
        await js_edge.publish("edge1.telemetry.temp", b"21.5")

        js_hub = nc_hub.jetstream()
        source = StreamSource(name="TELEMETRY", external=ExternalStream(api="$JS.edge1.API"))
        await js_hub.add_stream(StreamConfig(name="EDGE1_TELEMETRY", sources=[source]))
        assert await _wait_for_messages(js_hub, "EDGE1_TELEMETRY", 1) == 1

        sub = await js_hub.pull_subscribe("", durable="reader", stream="EDGE1_TELEMETRY")
        msgs = await sub.fetch(1, timeout=5)
        assert [(m.subject, m.data) for m in msgs] == [("edge1.telemetry.temp", b"21.5")]

        # The hub reaches the edge's JetStream API through the leaf connection, and vice versa.
        info = await nc_hub.jetstream(domain="edge1").stream_info("TELEMETRY")
        assert info.state.messages == 1
        assert (await nc_edge.jetstream(domain="hub").stream_info("EDGE1_TELEMETRY")).state.messages == 1
    finally:
        await nc_edge.close()
        await nc_hub.close()
    assert hub.store_dir.is_dir() and edge.store_dir.is_dir()
    assert "Leafnode connection created" in hub.log_path.read_text()


ACCOUNTS = """
accounts {
  ACME {
    jetstream: enabled
    users: [ {user: app, password: app-pw}, {user: leaf, password: "leaf-pw"} ]
  }
}
"""


async def test_leaf_with_account_user_and_password(nats_server_factory: harness.NatsServerFactory) -> None:
    hub = nats_server_factory.hub("hub", accounts=ACCOUNTS)
    edge = nats_server_factory.leaf(
        "edge1",
        hub.leaf_url,
        account="ACME",
        user="leaf",
        password="leaf-pw",
        accounts=ACCOUNTS,
        extra_config="no_auth_user: app",
    )
    await asyncio.to_thread(hub.wait_for_leafnodes, 1)
    nc_edge = await nats.connect(edge.url)  # no_auth_user: lands in ACME
    nc_hub = await nats.connect(hub.url, user="app", password="app-pw")
    try:
        await nc_edge.jetstream().add_stream(StreamConfig(name="S", subjects=["data.>"]))
        await nc_edge.jetstream().publish("data.x", b"1")
        source = StreamSource(name="S", external=ExternalStream(api="$JS.edge1.API"))
        await nc_hub.jetstream().add_stream(StreamConfig(name="AGG", sources=[source]))
        assert await _wait_for_messages(nc_hub.jetstream(), "AGG", 1) == 1
    finally:
        await nc_edge.close()
        await nc_hub.close()
    assert "ACME" in str(hub.monitor("leafz"))


def test_nats_start_failure_reports_log(tmp_path: Path) -> None:
    server = NatsServer(tmp_path / "bad", extra_config="this is { not valid")
    with pytest.raises(RuntimeError, match=r"nats\.log"):
        server.start()
    assert not server.running
    assert server.log_path.exists()


def test_nats_server_context_manager(tmp_path: Path) -> None:
    with NatsServer(tmp_path / "n", jetstream=False) as server:
        assert is_reachable(server.url)
        pid = server.pid
    assert _wait_gone(pid)
    assert not is_reachable(server.url)


# ---------------------------------------------------------------------- launchers directly
def test_embedded_postgres_keeps_data_across_restarts(tmp_path: Path) -> None:
    import tempfile

    data_dir = Path(tempfile.mkdtemp(prefix="proxus-pg-restart-"))

    async def write() -> None:
        conn = await asyncpg.connect(pg.dsn)
        try:
            await conn.execute("CREATE TABLE kept (v int); INSERT INTO kept VALUES (7)")
        finally:
            await conn.close()

    async def read() -> int:
        conn = await asyncpg.connect(pg.dsn)
        try:
            return int(await conn.fetchval("SELECT v FROM kept"))
        finally:
            await conn.close()

    try:
        with EmbeddedPostgres(data_dir) as pg:
            assert pg.dsn.startswith("postgresql://postgres@127.0.0.1:")
            asyncio.run(write())
            first_pid = pg.pid
        assert _wait_gone(first_pid)
        with EmbeddedPostgres(data_dir) as pg:
            assert asyncio.run(read()) == 7
            second_pid = pg.pid
        assert _wait_gone(second_pid)
    finally:
        import shutil

        shutil.rmtree(data_dir, ignore_errors=True)


def test_local_redis_without_persistence(tmp_path: Path) -> None:
    import redis as syncredis

    with LocalRedis(tmp_path / "r") as server:
        client = syncredis.Redis.from_url(server.url)
        try:
            assert client.config_get("save") == {"save": ""}
            assert client.config_get("appendonly") == {"appendonly": "no"}
            assert client.config_get("bind")["bind"] == "127.0.0.1"
        finally:
            client.close()
        pid = server.pid
    assert _wait_gone(pid)


# ---------------------------------------------------------------------- the fallback path
def test_machine_services_are_used_when_reachable(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv(harness.ENV_OWN_SERVICES, raising=False)
    url = harness.configured_url(harness.ENV_REDIS_URL, harness.DEFAULT_REDIS_URL)
    if not is_reachable(url):
        pytest.skip("no machine Redis to select")
    service = harness.select_redis(tmp_path)
    try:
        assert not service.own and service.url == url
    finally:
        service.stop()


async def test_forced_own_services(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """PROXUS_TEST_OWN_SERVICES=1: private postgres, redis and nats are started, work, and go away."""
    monkeypatch.setenv(harness.ENV_OWN_SERVICES, "1")
    services: list[harness.Service] = []
    try:
        for select in (harness.select_postgres, harness.select_redis, harness.select_nats):
            services.append(await asyncio.to_thread(select, tmp_path))
        pg, rd, ns = services
        assert all(s.own for s in services)
        assert "127.0.0.1:5432/" not in pg.url and ":6379/" not in rd.url and not ns.url.endswith(":4222")

        conn = await asyncpg.connect(pg.url)
        try:
            assert int((await conn.fetchval("SHOW server_version")).split(".")[0]) >= 18
        finally:
            await conn.close()
        client = aioredis.Redis.from_url(rd.url)
        try:
            await client.set("k", "v")
            assert await client.get("k") == b"v"
        finally:
            await client.aclose()
        nc = await nats.connect(ns.url)
        try:
            assert nc.connected_server_version.minor >= 10 or nc.connected_server_version.major > 2
            js = nc.jetstream()
            await js.add_stream(StreamConfig(name="FALLBACK", subjects=["fb.>"]))
            assert (await js.publish("fb.1", b"x")).seq == 1
        finally:
            await nc.close()
    finally:
        pids = [s.pid for s in services]
        for service in services:
            await asyncio.to_thread(service.stop)
    assert len(pids) == 3
    for pid in pids:
        assert _wait_gone(pid), f"process {pid} still alive after stop"
    assert (tmp_path / "postgres.log").exists()


def test_unreachable_urls_fall_back(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv(harness.ENV_OWN_SERVICES, raising=False)
    monkeypatch.setenv(harness.ENV_REDIS_URL, f"redis://127.0.0.1:{free_port()}/0")
    monkeypatch.setenv(harness.ENV_NATS_URL, f"nats://127.0.0.1:{free_port()}")
    services = []
    try:
        services.append(harness.select_redis(tmp_path))
        services.append(harness.select_nats(tmp_path))
        assert all(s.own and is_reachable(s.url) for s in services)
    finally:
        for service in services:
            service.stop()
    for service in services:
        assert not is_reachable(service.url)
