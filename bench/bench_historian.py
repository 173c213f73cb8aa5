"""Historian writer throughput: rows/s from the HIST stream into PostgreSQL, against asyncpg COPY.

Run: .venv/bin/python bench/bench_historian.py [--rows 2000000] [--batch 5000] [--series 500]
                                               [--workers 2] [--fetch 200]

Starts its own NATS hub and edge leaf servers and uses PROXUS_DATABASE_URL (admin DSN; a scratch
database is created and dropped) or the local PostgreSQL on 5432, else an embedded one. Measures:

1. ``COPY``: asyncpg ``copy_records_to_table`` of the same rows into an empty table shaped like
   ``proxus_points``, without any index (the raw COPY figure) and with the primary key the
   historian needs for idempotent writes (the physical ceiling for one connection: maintaining the
   (series, ts) B-tree, not COPY, is what costs);
2. ``write_batch``: ``nodes.sink.historian.write_batch`` directly (COPY into a staging table, then
   ``INSERT .. ON CONFLICT DO NOTHING``), one transaction per 200k rows — the idempotent path;
3. ``edge -> HIST``: the edge's outbox sourced into the hub's HIST stream across the leaf link;
4. ``writer``: the Hub's HistorianWriter draining a pre-filled HIST (decode, merge, one binary COPY
   per group into proxus_points — ``write_batch`` when a group conflicts —, series catalog, ack
   after commit).

Rounds are interleaved and medians printed: on a shared machine the figures drift.

Prints figures and the writer/COPY ratio; asserts nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import secrets
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg  # type: ignore[import-untyped, unused-ignore]
import nats

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT)]

from backend.data.historian import HistorianOptions, HistorianWriter  # noqa: E402
from backend.db import create_pool, migrate  # noqa: E402
from nodes.points import Batch  # noqa: E402
from nodes.sink.historian import ensure_schema, write_batch  # noqa: E402
from proxus.services import EmbeddedPostgres, NatsServer, create_database, drop_database, is_reachable  # noqa: E402
from runtime.outbox import Outbox, OutboxLimits  # noqa: E402

EDGE = "bench"
T0 = 1_700_000_000 * 10**9
LOCAL_PG = "postgresql://postgres@127.0.0.1:5432/postgres"
COLUMNS = ["ts", "series", "value", "value_text", "quality"]


@contextlib.asynccontextmanager
async def database() -> AsyncIterator[str]:
    admin = os.environ.get("PROXUS_DATABASE_URL") or (LOCAL_PG if is_reachable(LOCAL_PG) else None)
    server = None
    data_dir = None
    if admin is None:
        data_dir = Path(tempfile.mkdtemp(prefix="proxus-pg-"))
        server = EmbeddedPostgres(data_dir, settings={"fsync": "off", "synchronous_commit": "off"})
        server.start()
        admin = server.dsn
    name = f"proxus_bench_{secrets.token_hex(4)}"
    dsn = await create_database(admin, name)
    try:
        yield dsn
    finally:
        await drop_database(admin, name)
        if server is not None:
            server.stop()
        if data_dir is not None:
            shutil.rmtree(data_dir, ignore_errors=True)


def make_batches(rows: int, size: int, series: int) -> list[Batch]:
    """Polls of ``series`` tags, ``size`` points per batch, 1 ms apart per tag (distinct keys)."""
    names = [f"plant/line{i % 10}/dev{i // 10}/tag" for i in range(series)]
    batches = []
    for b in range(rows // size):
        base = b * size
        idx = range(base, base + size)
        batches.append(
            Batch(
                ts=[T0 + (i // series) * 1_000_000 for i in idx],
                series=[names[i % series] for i in idx],
                values=[float(i % 1000) for i in idx],
                quality=[0] * size,
            )
        )
    return batches


async def bench_copy(pool: asyncpg.Pool, records: list[tuple[Any, ...]], indexed: bool = True) -> float:
    async with pool.acquire() as conn:
        await conn.execute("DROP TABLE IF EXISTS bench_copy")
        await conn.execute(f"CREATE TABLE bench_copy (LIKE proxus_points {'INCLUDING ALL' if indexed else ''})")
        chunk = 100_000
        start = time.perf_counter()
        for i in range(0, len(records), chunk):
            await conn.copy_records_to_table("bench_copy", records=records[i : i + chunk], columns=COLUMNS)
        took = time.perf_counter() - start
        await conn.execute("DROP TABLE bench_copy")
    return len(records) / took


async def bench_write_batch(pool: asyncpg.Pool, batches: list[Batch]) -> float:
    async with pool.acquire() as conn:
        await conn.execute("TRUNCATE proxus_points")
        per_group = max(1, 100_000 // len(batches[0]))
        start = time.perf_counter()
        rows = 0
        for i in range(0, len(batches), per_group):
            group = Batch.empty()
            for b in batches[i : i + per_group]:
                group.extend(b)
            rows += await write_batch(conn, group)
        took = time.perf_counter() - start
        await conn.execute("TRUNCATE proxus_points")
    return rows / took


async def bench_writer(writer: HistorianWriter, pool: asyncpg.Pool, total: int) -> float:
    """Drain the whole of HIST (a fresh durable consumer) into empty tables."""
    async with pool.acquire() as conn:
        await conn.execute("TRUNCATE proxus_points, historian_series")
    with contextlib.suppress(Exception):
        await writer.js.delete_consumer(writer.options.stream, writer.options.durable)
    await writer.sync()
    start = time.perf_counter()
    writer.start()
    while True:
        async with pool.acquire() as conn:
            count = await conn.fetchval("SELECT count(*) FROM proxus_points")
        if count >= total:
            break
        await asyncio.sleep(0.01)
    took = time.perf_counter() - start
    await writer.stop()
    return total / took


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=2_000_000)
    parser.add_argument("--batch", type=int, default=5000, help="points per outbox message")
    parser.add_argument("--series", type=int, default=500)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--fetch", type=int, default=1000, help="most messages per fetch")
    parser.add_argument("--group-rows", type=int, default=100_000, help="rows per transaction")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    batches = make_batches(args.rows, args.batch, args.series)
    total = len(batches) * args.batch
    print(f"historian bench: {total:,} rows in {len(batches)} messages of {args.batch} points, {args.series} series")

    base = Path(tempfile.mkdtemp(prefix="proxus-bench-nats-"))
    hub = NatsServer.hub(base, max_file_store="8GB")
    edge: NatsServer | None = None
    try:
        hub.start()
        edge = NatsServer.leaf(base, EDGE, hub.leaf_url, max_file_store="8GB")
        edge.start()
        await asyncio.to_thread(hub.wait_for_leafnodes, 1)
        async with database() as dsn:
            pool = await create_pool(dsn)
            async with pool.acquire() as conn:
                await migrate(conn)
                timescale = await ensure_schema(conn)
            print(f"  database: PostgreSQL{' + TimescaleDB' if timescale else ''}")

            epoch = datetime(1970, 1, 1, tzinfo=UTC)
            records = [
                (epoch + timedelta(microseconds=t // 1000), s, v, None, q)
                for b in batches
                for t, s, v, q in zip(b.ts, b.series, b.values, b.quality, strict=True)
            ]

            enc = await nats.connect(edge.url)
            outbox = Outbox(enc.jetstream(), EDGE, OutboxLimits(max_bytes=4 << 30))
            await outbox.ensure()
            hnc = await nats.connect(hub.url, inbox_prefix=b"_INBOX_hub")
            options = HistorianOptions(
                workers=args.workers,
                fetch_batch=args.fetch,
                max_group_rows=args.group_rows,
                max_bytes=4 << 30,
                purge_interval_s=3600.0,
            )
            writer = HistorianWriter(pool, hnc, "hub", options, static_edges=[EDGE], dsn=dsn)
            await writer.sync()  # HIST with its source; workers start later
            start = time.perf_counter()
            for b in batches:
                await outbox.append("hub", "flow", "hist", b)
            appended = time.perf_counter() - start
            hjs = hnc.jetstream(domain="hub")
            while (await hjs.stream_info("HIST")).state.messages < len(batches):
                await asyncio.sleep(0.05)
            sourced = time.perf_counter() - start
            print(f"  edge outbox append               {total / appended:12,.0f} rows/s")
            print(f"  edge -> HIST (append + source)   {total / sourced:12,.0f} rows/s")

            bare_rates, copy_rates, wb_rates, writer_rates = [], [], [], []
            for _ in range(args.rounds):  # interleaved, so drifts of the machine hit all alike
                bare_rates.append(await bench_copy(pool, records, indexed=False))
                copy_rates.append(await bench_copy(pool, records))
                wb_rates.append(await bench_write_batch(pool, batches))
                writer_rates.append(await bench_writer(writer, pool, total))
            bare, copy_rate, wb_rate, rate = (
                statistics.median(r) for r in (bare_rates, copy_rates, wb_rates, writer_rates)
            )
            print(f"  medians of {args.rounds} rounds:")
            print(f"  asyncpg COPY (no index)          {bare:12,.0f} rows/s   (the raw COPY figure; no idempotence)")
            print(f"  asyncpg COPY (table with its PK) {copy_rate:12,.0f} rows/s   (records prepared beforehand)")
            print(f"  write_batch (staging + merge)    {wb_rate:12,.0f} rows/s   (100k rows per transaction)")
            print(
                f"  HistorianWriter (HIST -> DB)     {rate:12,.0f} rows/s   "
                f"({args.workers} workers, up to {args.group_rows:,} rows per transaction)"
            )
            print(f"  writer / COPY                    {rate / copy_rate:12.2f}")
            print(f"  writer / write_batch             {rate / wb_rate:12.2f}")
            print(f"  writer / COPY without index      {rate / bare:12.2f}")
            await enc.close()
            await hnc.close()
            await pool.close()
    finally:
        if edge is not None:
            edge.stop()
        hub.stop()
        shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    asyncio.run(main())
