"""The Hub's historian writer against real servers: a hub NATS server, an edge leaf server with the
runtime's Outbox, and PostgreSQL. Rows land exactly once through replays, writer restarts, link
outages and hub restarts; stored records are purged from the edge's outbox; bad records are set
aside."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import asyncpg  # type: ignore[import-untyped, unused-ignore]
import nats
import pytest
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.js.errors import NotFoundError

from backend.data.historian import HistorianOptions, HistorianWriter
from backend.db import create_pool, migrate
from nodes.points import Batch, Event, EventBatch
from nodes.sink.historian import ensure_schema
from proxus.services.nats import NatsServer
from proxus.services.ports import free_port
from runtime.outbox import Outbox, OutboxLimits

EDGE = "e1"
DSNS: dict[int, str] = {}  # pool -> its DSN
T0 = 1_700_000_000 * 10**9  # ns


async def _quiet(_: Exception) -> None:
    pass


async def eventually(check: Callable[[], Awaitable[bool]], timeout: float = 30.0, what: str = "condition") -> float:
    """Wait until ``check()`` is true; returns the seconds it took."""
    start = time.monotonic()
    while True:
        if await check():
            return time.monotonic() - start
        if time.monotonic() - start > timeout:
            raise AssertionError(f"{what} not met within {timeout:g} s")
        await asyncio.sleep(0.1)


def batch(index: int, points: int = 100, series: str = "dev/tag") -> Batch:
    """Points ``index*points ..`` of one series, one millisecond apart (distinct primary keys)."""
    base = index * points
    return Batch(
        ts=[T0 + (base + i) * 1_000_000 for i in range(points)],
        series=[series] * points,
        values=[float(base + i) for i in range(points)],
        quality=[0] * points,
    )


def fast_options(**overrides: Any) -> HistorianOptions:
    values: dict[str, Any] = {
        "ack_wait_s": 2.0,
        "purge_interval_s": 0.5,
        "watchdog_interval_s": 0.5,
        "stale_source_s": 2.0,
        "kick_min_interval_s": 3.0,
        "sync_interval_s": 2.0,
        "max_bytes": 64 * 1024 * 1024,
        "fetch_timeout_s": 0.5,
    }
    values.update(overrides)
    return HistorianOptions(**values)


class Proxy:
    """A TCP relay for the leaf link that can cut it (a network outage) and restore it."""

    def __init__(self, port: int) -> None:
        self.target = port
        self.up = True
        self.server: asyncio.Server | None = None
        self.port = 0
        self.writers: set[asyncio.StreamWriter] = set()

    async def start(self) -> None:
        self.server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.port = self.server.sockets[0].getsockname()[1]

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if not self.up:
            writer.close()
            return
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.target)
        except OSError:
            writer.close()
            return
        self.writers |= {writer, up_writer}

        async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            with contextlib.suppress(Exception):
                while data := await src.read(65536):
                    dst.write(data)
                    await dst.drain()
            dst.close()

        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer), return_exceptions=True)
        self.writers -= {writer, up_writer}

    def cut(self) -> None:
        self.up = False
        for writer in list(self.writers):
            writer.close()

    def restore(self) -> None:
        self.up = True

    async def close(self) -> None:
        self.cut()
        if self.server is not None:
            self.server.close()


def hub_server(factory: Any, leaf_port: int, port: int | None = None, http_port: int | None = None) -> NatsServer:
    """A hub (JetStream domain hub) whose leaf listener does not advertise itself, so a leaf that dials
    it through a relay stays behind the relay (the relay can then cut the link)."""
    server: NatsServer = factory(
        "hub",
        domain="hub",
        port=port,
        http_port=http_port,
        extra_config=f'leafnodes {{ listen: "127.0.0.1:{leaf_port}", no_advertise: true }}',
    )
    return server


@dataclass
class EdgeSide:
    server: NatsServer
    nc: Client
    outbox: Outbox

    async def append(self, data: Batch | EventBatch, flow: str = "f1", node: str = "hist") -> None:
        await self.outbox.append("hub", flow, node, data)

    async def out_state(self) -> Any:
        return (await self.nc.jetstream().stream_info(f"OUT_{EDGE}")).state


async def start_edge(factory: Any, hub_leaf_url: str, name: str = EDGE) -> EdgeSide:
    server = factory.leaf(name, hub_leaf_url)
    nc = await nats.connect(server.url, max_reconnect_attempts=-1, reconnect_time_wait=0.2, error_cb=_quiet)
    outbox = Outbox(nc.jetstream(), name, OutboxLimits(max_bytes=64 * 1024 * 1024))
    await outbox.ensure()
    return EdgeSide(server, nc, outbox)


@pytest.fixture
async def pool(database_url: str) -> AsyncIterator[asyncpg.Pool]:
    pool = await create_pool(database_url)
    DSNS[id(pool)] = database_url  # the writer opens its own COPY connections
    async with pool.acquire() as conn:
        await migrate(conn)
        await ensure_schema(conn)
    try:
        yield pool
    finally:
        await pool.close()
        DSNS.pop(id(pool), None)


async def count_points(pool: asyncpg.Pool) -> int:
    async with pool.acquire() as conn:
        return int(await conn.fetchval("SELECT count(*) FROM proxus_points"))


async def hub_client(url: str) -> Client:
    return await nats.connect(
        url, inbox_prefix=b"_INBOX_hub", max_reconnect_attempts=-1, reconnect_time_wait=0.2, error_cb=_quiet
    )


@contextlib.asynccontextmanager
async def running_writer(
    pool: asyncpg.Pool, nc: Client, options: HistorianOptions | None = None, edges: tuple[str, ...] = (EDGE,)
) -> AsyncIterator[HistorianWriter]:
    writer = HistorianWriter(pool, nc, "hub", options or fast_options(), static_edges=edges, dsn=DSNS.get(id(pool)))
    writer.start()
    try:
        await writer.wait_ready(20)
        yield writer
    finally:
        await writer.stop()


# ---------------------------------------------------------------------------------------------------


async def test_rows_land_once_outbox_is_purged_and_a_bookmark_kept(
    pool: asyncpg.Pool, nats_server_factory: Any
) -> None:
    hub = nats_server_factory.hub()
    edge = await start_edge(nats_server_factory, hub.leaf_url)
    nc = await hub_client(hub.url)
    try:
        await asyncio.to_thread(hub.wait_for_leafnodes, 1)
        for i in range(40):
            await edge.append(batch(i))
        await edge.append(
            EventBatch([Event(ts=T0, series="dev/tag", alarm="high", state="raise", severity="critical", value=9.5)])
        )
        await edge.append(_text_batch())
        async with running_writer(pool, nc) as writer:
            await eventually(lambda: _count_is(pool, 4000 + 3), what="all points stored")
            async with pool.acquire() as conn:
                assert await conn.fetchval("SELECT count(*) FROM proxus_events") == 1
                rows = await conn.fetch("SELECT * FROM historian_series ORDER BY series")
                assert [r["series"] for r in rows] == ["dev/tag", "dev/text"]
                tag = rows[0]
                assert tag["points"] == 4000 and tag["last_value"] == 3999.0
                assert tag["last_ts"] > tag["first_ts"]
                assert rows[1]["last_value_text"] == "c" and rows[1]["last_quality"] == 1
                assert await conn.fetchval("SELECT value_text FROM proxus_points WHERE series = 'dev/text' LIMIT 1")

            # The edge's outbox is emptied up to what the database holds; HIST keeps one bookmark.
            async def purged() -> bool:
                state = await edge.out_state()
                hist = await nc.jetstream(domain="hub").stream_info("HIST")
                return state.messages == 0 and hist.state.messages == 1

            await eventually(purged, what="OUT_e1 purged")
            assert writer.counters.purges >= 1

            # The same points again (a replay from the edge, new message ids): nothing new is stored.
            for i in range(5):
                await edge.append(batch(i))
            await eventually(lambda: _committed(writer, 45), what="replayed batches consumed")
            assert await count_points(pool) == 4003
            assert writer.counters.rows_duplicate >= 500

            status = await writer.status()
            assert status.edges == [EDGE] and status.sources[0].edge == EDGE
    finally:
        await nc.close()
        await edge.nc.close()


def _text_batch() -> Batch:
    return Batch(ts=[T0, T0 + 1000, T0 + 2000], series=["dev/text"] * 3, values=["a", "b", "c"], quality=[0, 0, 1])


async def _count_is(pool: asyncpg.Pool, expected: int) -> bool:
    count = await count_points(pool)
    assert count <= expected, f"{count} rows: more than the {expected} sent (duplicates?)"
    return count == expected


async def _committed(writer: HistorianWriter, messages: int) -> bool:
    return writer.counters.messages >= messages


async def test_crash_between_commit_and_ack_replays_without_duplicates(
    pool: asyncpg.Pool, nats_server_factory: Any
) -> None:
    hub = nats_server_factory.hub()
    edge = await start_edge(nats_server_factory, hub.leaf_url)
    nc = await hub_client(hub.url)
    try:
        await asyncio.to_thread(hub.wait_for_leafnodes, 1)
        for i in range(20):
            await edge.append(batch(i))
        crashed: list[int] = []

        async def crash_once(msgs: list[Msg]) -> None:
            if not crashed:
                crashed.append(len(msgs))
                raise RuntimeError("simulated crash after the commit, before the acks")

        async with running_writer(pool, nc, fast_options(workers=1)) as writer:
            writer.after_commit = crash_once
            await eventually(lambda: _count_is(pool, 2000), what="first pass")
            # The crashed group was committed but not acknowledged: it comes back after ack_wait ...
            await eventually(lambda: _redelivered(writer), what="redelivery")
            await eventually(lambda: _no_pending(nc), what="all acknowledged")
            # ... and inserts nothing twice.
            assert await count_points(pool) == 2000
            assert writer.counters.rows_duplicate >= crashed[0] * 100

        # Restart the writer mid-way while the edge keeps producing.
        async def produce() -> None:
            for i in range(20, 120):
                await edge.append(batch(i))
                await asyncio.sleep(0.01)

        producer = asyncio.create_task(produce())
        async with running_writer(pool, nc) as writer:
            await eventually(lambda: _count_above(pool, 4000), what="second writer stores")
        async with running_writer(pool, nc) as writer:
            await producer
            await eventually(lambda: _count_is(pool, 12000), what="restarted writer stores the rest")

            # A full replay: drop the durable consumer; the new one starts from the first record HIST holds.
            await nc.jetstream(domain="hub").delete_consumer("HIST", "historian")
        async with running_writer(pool, nc) as writer:
            await eventually(lambda: _no_pending(nc), what="replay consumed")
            assert await count_points(pool) == 12000
    finally:
        await nc.close()
        await edge.nc.close()


async def _redelivered(writer: HistorianWriter) -> bool:
    return writer.counters.redelivered > 0


async def _count_above(pool: asyncpg.Pool, n: int) -> bool:
    return await count_points(pool) > n


async def _no_pending(nc: Client) -> bool:
    try:
        info = await nc.jetstream(domain="hub").consumer_info("HIST", "historian")
    except NotFoundError:
        return False
    return (info.num_pending or 0) == 0 and (info.num_ack_pending or 0) == 0


async def test_link_outage_buffers_on_the_edge_and_resumes(pool: asyncpg.Pool, nats_server_factory: Any) -> None:
    leaf_port = free_port()
    hub = hub_server(nats_server_factory, leaf_port)
    proxy = Proxy(leaf_port)
    await proxy.start()
    edge = await start_edge(nats_server_factory, f"nats-leaf://127.0.0.1:{proxy.port}")
    nc = await hub_client(hub.url)
    try:
        await asyncio.to_thread(hub.wait_for_leafnodes, 1)
        async with running_writer(pool, nc) as writer:
            for i in range(10):
                await edge.append(batch(i))
            await eventually(lambda: _count_is(pool, 1000), what="before the outage")

            proxy.cut()
            await eventually(lambda: _no_leaf(hub), what="leaf link down")
            for i in range(10, 30):  # the edge keeps producing: its outbox buffers
                await edge.append(batch(i))
            await asyncio.sleep(3)
            assert await count_points(pool) == 1000
            assert (await edge.out_state()).messages >= 20

            proxy.restore()
            took = await eventually(lambda: _count_is(pool, 3000), timeout=60, what="after the outage")
            print(f"link outage: buffered records stored {took:.2f} s after the link came back")
            await eventually(lambda: _out_empty(edge), what="outbox purged after the outage")
            assert writer.counters.rejected == 0
    finally:
        await nc.close()
        await edge.nc.close()
        await proxy.close()


def _leafs(server: NatsServer) -> int:
    try:
        return int(server.monitor("leafz").get("leafnodes", 0))
    except OSError:
        return 0


async def _no_leaf(server: NatsServer) -> bool:
    return await asyncio.to_thread(_leafs, server) == 0


async def _out_empty(edge: EdgeSide) -> bool:
    return (await edge.out_state()).messages == 0


async def test_hub_restart_resumes_the_source_and_the_writer(pool: asyncpg.Pool, nats_server_factory: Any) -> None:
    leaf_port, port, http_port = free_port(), free_port(), free_port()
    hub = hub_server(nats_server_factory, leaf_port, port, http_port)
    edge = await start_edge(nats_server_factory, f"nats-leaf://127.0.0.1:{leaf_port}")
    nc = await hub_client(hub.url)
    try:
        await asyncio.to_thread(hub.wait_for_leafnodes, 1)
        async with running_writer(pool, nc) as writer:
            for i in range(10):
                await edge.append(batch(i))
            await eventually(lambda: _count_is(pool, 1000), what="before the restart")
            await eventually(lambda: _out_empty(edge), what="purged before the restart")

            await asyncio.to_thread(hub.stop)
            for i in range(10, 30):
                await edge.append(batch(i))
            await asyncio.to_thread(hub.start)
            took = await eventually(lambda: _count_is(pool, 3000), timeout=90, what="after the hub restart")
            print(f"hub restart: stored again {took:.2f} s after the restart ({writer.counters.kicks} source restarts)")
    finally:
        await nc.close()
        await edge.nc.close()


async def test_recreated_outbox_is_reset_not_skipped(pool: asyncpg.Pool, nats_server_factory: Any) -> None:
    hub = nats_server_factory.hub()
    edge = await start_edge(nats_server_factory, hub.leaf_url)
    nc = await hub_client(hub.url)
    try:
        await asyncio.to_thread(hub.wait_for_leafnodes, 1)
        async with running_writer(pool, nc) as writer:
            for i in range(30):
                await edge.append(batch(i))
            await eventually(lambda: _count_is(pool, 3000), what="first outbox stored")
            await eventually(lambda: _out_empty(edge), what="purged")
            # The edge is reinstalled: its outbox starts again at sequence 1.
            await edge.nc.jetstream().delete_stream(f"OUT_{EDGE}")
            await edge.outbox.ensure()
            for i in range(30, 35):
                await edge.append(batch(i))
            await eventually(lambda: _count_is(pool, 3500), timeout=60, what="new outbox stored")
            await eventually(lambda: _resets(writer), what="source reset")
            for i in range(35, 40):  # still flowing after the reset
                await edge.append(batch(i))
            await eventually(lambda: _count_is(pool, 4000), timeout=60, what="stored after the reset")
            await eventually(lambda: _out_empty(edge), what="new outbox purged")
            assert (await edge.out_state()).last_seq == 10
    finally:
        await nc.close()
        await edge.nc.close()


async def _resets(writer: HistorianWriter) -> bool:
    return writer.counters.resets >= 1


async def test_bad_records_are_set_aside(pool: asyncpg.Pool, nats_server_factory: Any) -> None:
    hub = nats_server_factory.hub()
    edge = await start_edge(nats_server_factory, hub.leaf_url)
    nc = await hub_client(hub.url)
    try:
        await asyncio.to_thread(hub.wait_for_leafnodes, 1)
        js = edge.nc.jetstream()
        await edge.append(batch(0))
        await js.publish(f"outbox.{EDGE}.hub.f1.hist", b"\xc1 not msgpack", headers={"Proxus-Kind": "points"})
        nul = Batch(ts=[T0], series=["dev/nul"], values=["bad\x00text"], quality=[0])  # PostgreSQL refuses NUL
        await edge.append(nul)
        await edge.append(batch(1))
        async with running_writer(pool, nc) as writer:
            await eventually(lambda: _count_is(pool, 200), what="good records stored")
            await eventually(lambda: _no_pending(nc), what="all acknowledged")
            async with pool.acquire() as conn:
                rejects = await conn.fetch("SELECT edge, error FROM historian_rejects ORDER BY id")
            assert [r["edge"] for r in rejects] == [EDGE, EDGE], rejects
            errors = sorted(r["error"] for r in rejects)  # two workers: either may come first
            assert "refused" in errors[0] and "undecodable" in errors[1], errors
            assert writer.counters.rejected == 2
    finally:
        await nc.close()
        await edge.nc.close()
