"""The Hub's historian writer: edges' outboxes -> the ``HIST`` stream -> PostgreSQL/TimescaleDB.

Streams. Each edge keeps its historian records in ``OUT_<edge>`` (its own JetStream domain,
subjects ``outbox.<edge>.hub.<flow>.<node>``, limits retention, discard new). The hub stream
``HIST`` (domain ``hub``, file storage, discard new) *sources* every registered edge's
``OUT_<edge>`` across the leaf link. Sourcing reads without acknowledging, so a link outage only
delays: the edge keeps buffering, and the source resumes where it stopped.

Consumer. A durable pull consumer (``historian``, explicit acks) on ``HIST`` is drained by a few
workers. Each fetched group is decoded (header ``Proxus-Kind``: points | events), its point
batches merged into one, and written with :func:`nodes.sink.historian.write_batch` in ONE
transaction, together with the series catalog upsert. Messages are acknowledged only after the
commit. A crash between commit and ack replays the group: the historian's primary keys with
``ON CONFLICT DO NOTHING`` make the replay insert nothing (exactly-once rows from at-least-once
delivery). Undecodable records, and records the database refuses even alone, are kept in
``historian_rejects`` and acknowledged, so one bad record never blocks an edge's stream.

Purge. ``OUT_<edge>`` fills unless someone removes what the Hub has stored. Every committed
message carries ``Nats-Stream-Source: <source> <origin seq> ...``; per edge the writer tracks the
highest origin sequence whose HIST sequence is at or below the consumer's ack floor (so every
record before it is stored too), and periodically purges ``OUT_<edge>`` up to it
(``$JS.<edge>.API.STREAM.PURGE.OUT_<edge>`` with ``seq`` = stored + 1) and ``HIST`` of that edge up
to (not including) the last stored message. That last message stays as the bookmark from which
the server resumes the source after a hub restart. Before purging, the edge's ``OUT`` is checked:
if its last sequence is below what the Hub stored, the stream was recreated (edge reinstalled) and
the source is reset instead of purging records the Hub never saw.

Fast resume. nats-server retries a stalled source with a back-off (up to ~35 s seen after a hub
restart); nats-py exposes no setting for it. A watchdog looks at ``HIST``'s source info: a source
not heard from for ``stale_source_s`` whose edge answers on ``$JS.<edge>.API.INFO`` is restarted
at once by removing and re-adding it (the server resumes it after the bookmark).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import asyncpg  # type: ignore[import-untyped, unused-ignore]
import msgspec
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.errors import NoRespondersError
from nats.errors import TimeoutError as NatsTimeout
from nats.js import JetStreamContext
from nats.js.api import (
    AckPolicy,
    ConsumerConfig,
    DeliverPolicy,
    DiscardPolicy,
    ExternalStream,
    RetentionPolicy,
    StorageType,
    StreamConfig,
    StreamSource,
)
from nats.js.errors import APIError, NotFoundError, ServiceUnavailableError

from backend.data import service
from backend.data.schemas import HistorianStatus, SourceStatus
from nodes.points import Batch, EventBatch
from nodes.sink.historian import write_batch

log = logging.getLogger("proxus.hub.historian")

KIND_HEADER = "Proxus-Kind"  # runtime.outbox.KIND_HEADER (backend does not import runtime)
SOURCE_HEADER = "Nats-Stream-Source"
# HIST's own subject, never published to: a stream without subjects and sources would listen on its
# name, and HIST must stay valid while it sources no edge (none registered yet, or one being reset).
PARKING_SUBJECT = "proxus.historian.parked"
EDGE_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")

_batch_decoder = msgspec.msgpack.Decoder(Batch)
_events_decoder = msgspec.msgpack.Decoder(EventBatch)

# (series, first_us, last_us, count, value, value_text, quality): one row of the series catalog.
SeriesSummary = tuple[str, int, int, int, float | None, str | None, int]
SummaryListener = Callable[[list[SeriesSummary]], None]


def out_stream(edge: str) -> str:
    return f"OUT_{edge}"


def out_filter(edge: str) -> str:
    return f"outbox.{edge}.hub.>"


def source_for(edge: str) -> StreamSource:
    return StreamSource(
        name=out_stream(edge),
        filter_subject=out_filter(edge),
        external=ExternalStream(api=f"$JS.{edge}.API", deliver=f"deliver.{edge}"),
    )


def origin_seq(msg: Msg) -> int:
    """The sequence in the edge's OUT stream, from ``Nats-Stream-Source: <source> <seq> ...``."""
    header = (msg.headers or {}).get(SOURCE_HEADER, "")
    parts = header.split(" ")
    if len(parts) >= 2 and parts[1].isdigit():
        return int(parts[1])
    return 0


def edge_of(subject: str) -> str:
    parts = subject.split(".")
    return parts[1] if len(parts) > 2 and parts[0] == "outbox" else ""


# The database is not reachable: keep the records (nak) and try again later; never reject them.
_OFFLINE = (OSError, asyncpg.InterfaceError, asyncpg.PostgresConnectionError)
_ROLLBACK_RETRIES = 4


_COLUMNS = ["ts", "series", "value", "value_text", "quality"]
_PG_EPOCH_US = 946_684_800 * 1_000_000  # 2000-01-01 UTC: the origin of PostgreSQL timestamps
_MERGE_AFTER_CONFLICT = 5  # replays come in runs: merge the next groups instead of trying COPY


async def _microsecond_timestamps(conn: asyncpg.Connection) -> None:
    await conn.set_type_codec(
        "timestamptz",
        schema="pg_catalog",
        encoder=lambda us: (us,),
        decoder=lambda value: value[0],
        format="tuple",
    )


def _copy_records(batch: Batch) -> list[tuple[int, str, float | None, str | None, int]]:
    """Rows for a COPY into proxus_points on a microsecond-timestamp connection."""
    origin = _PG_EPOCH_US * 1000
    return [
        ((t - origin) // 1000, s, None, v, q) if isinstance(v, str) else ((t - origin) // 1000, s, float(v), None, q)
        for t, s, v, q in zip(batch.ts, batch.series, batch.values, batch.quality, strict=True)
    ]


class Rejected(Exception):
    """A record that can never be stored (undecodable or malformed)."""


def decode(msg: Msg) -> Batch | EventBatch:
    kind = (msg.headers or {}).get(KIND_HEADER)
    try:
        data: Batch | EventBatch = (
            _events_decoder.decode(msg.data) if kind == "events" else _batch_decoder.decode(msg.data)
        )
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        raise Rejected(f"undecodable {kind or 'points'} record: {exc}") from None
    if isinstance(data, Batch):
        n = len(data.ts)
        if not (len(data.series) == len(data.values) == len(data.quality) == n):
            raise Rejected("malformed batch: its columns differ in length")
    return data


def summarize(batch: Batch) -> dict[str, list[Any]]:
    """Per series: [first_us, last_us, count, value at last, quality at last] (exact, one pass in C)."""
    ts, series, values, quality = batch.ts, batch.series, batch.values, batch.quality
    n = len(ts)
    out: dict[str, list[Any]] = {}
    if n == 0:
        return out
    if ts == sorted(ts):  # the usual case: a poll, in time order; positions give first and last
        last = dict(zip(series, range(n), strict=True))
        first = dict(zip(reversed(series), range(n - 1, -1, -1), strict=True))
        counts = Counter(series)
        for key, li in last.items():
            out[key] = [ts[first[key]] // 1000, ts[li] // 1000, counts[key], values[li], quality[li]]
        return out
    for i in range(n):
        key, t = series[i], ts[i] // 1000
        entry = out.get(key)
        if entry is None:
            out[key] = [t, t, 1, values[i], quality[i]]
            continue
        entry[2] += 1
        entry[0] = min(entry[0], t)
        if t >= entry[1]:
            entry[1], entry[3], entry[4] = t, values[i], quality[i]
    return out


def merge_summary(into: dict[str, list[Any]], part: dict[str, list[Any]]) -> None:
    for key, entry in part.items():
        have = into.get(key)
        if have is None:
            into[key] = entry
            continue
        have[0] = min(have[0], entry[0])
        have[2] += entry[2]
        if entry[1] >= have[1]:
            have[1], have[3], have[4] = entry[1], entry[3], entry[4]


def summary_rows(summary: dict[str, list[Any]]) -> list[SeriesSummary]:
    rows: list[SeriesSummary] = []
    for key in sorted(summary):  # one lock order for every writer: no deadlocks between workers
        first, last, count, value, quality = summary[key]
        if isinstance(value, str):
            rows.append((key, first, last, count, None, value, int(quality)))
        else:
            rows.append((key, first, last, count, None if value is None else float(value), None, int(quality)))
    return rows


@dataclass(frozen=True)
class HistorianOptions:
    stream: str = "HIST"
    durable: str = "historian"
    max_bytes: int = 512 * 1024 * 1024  # HIST backlog before sourcing pauses (edges keep buffering)
    workers: int = 2
    fetch_batch: int = 1000  # most messages per fetch (fewer when they are large: see max_group_rows)
    max_group_rows: int = 100_000  # rows per transaction (a fetch is split into groups of this size)
    fetch_timeout_s: float = 1.0
    ack_wait_s: float = 30.0
    max_ack_pending: int = 20_000
    purge_interval_s: float = 5.0
    watchdog_interval_s: float = 2.0
    stale_source_s: float = 5.0
    kick_min_interval_s: float = 10.0
    sync_interval_s: float = 15.0
    edge_request_timeout_s: float = 2.0
    retry_backoff_s: float = 1.0


@dataclass
class EdgeProgress:
    marks: list[tuple[int, int]] = field(default_factory=list)  # (HIST seq, origin seq) acknowledged
    stored_hist: int = 0  # highest HIST seq at or below the ack floor
    stored_origin: int = 0  # its origin sequence: every record up to here is stored
    purged_hist: int = 0
    purged_origin: int = 0
    out_created: datetime | None = None
    last_kick: float = 0.0


@dataclass
class Counters:
    messages: int = 0
    rows_inserted: int = 0
    rows_duplicate: int = 0
    rejected: int = 0
    redelivered: int = 0
    kicks: int = 0
    resets: int = 0
    purges: int = 0
    copy_conflicts: int = 0
    last_commit_at: datetime | None = None
    last_error: str = ""


class HistorianWriter:
    """Sources edges' outboxes into ``HIST`` and writes it to the database, exactly once per row."""

    def __init__(
        self,
        pool: asyncpg.Pool,
        nc: Client,
        domain: str = "hub",
        options: HistorianOptions | None = None,
        *,
        static_edges: Sequence[str] = (),
        dsn: str | None = None,
    ) -> None:
        self.pool = pool
        self.dsn = dsn
        self._copy_pool: asyncpg.Pool | None = None
        self._copy_pool_lock = asyncio.Lock()
        self._merge_groups = 0  # after a conflict, this many groups take the merge path
        self._rows_per_msg = 100.0  # running average, to size fetches
        self.nc = nc
        self.domain = domain
        self.options = options or HistorianOptions()
        self.js: JetStreamContext = nc.jetstream(domain=domain)
        self.static_edges = {e for e in static_edges if EDGE_ID.match(e)}
        self.discovered: set[str] = set()
        self.registered: set[str] | None = None  # None: there is no edges table
        self.sourced: set[str] = set()
        self.resetting: dict[str, int] = {}  # edge -> last HIST seq to be acknowledged before re-adding
        self.progress: dict[str, EdgeProgress] = {}
        self.counters = Counters()
        self.listeners: list[SummaryListener] = []
        # Called after each commit and before the acknowledgements (tests use it to crash there).
        self.after_commit: Callable[[list[Msg]], Awaitable[None]] | None = None
        self._ready = asyncio.Event()
        self._stopping = False
        self._sync_now = asyncio.Event()
        self._config_lock = asyncio.Lock()
        self._tasks: list[asyncio.Task[None]] = []
        self._subs: list[JetStreamContext.PullSubscription] = []

    # -- lifecycle ------------------------------------------------------------------------------

    def start(self) -> list[asyncio.Task[None]]:
        if self._tasks:
            return self._tasks
        self._tasks = [
            asyncio.create_task(self._sync_loop(), name="historian-sync"),
            asyncio.create_task(self._maintenance_loop(), name="historian-maintenance"),
            *(
                asyncio.create_task(self._worker(i), name=f"historian-worker-{i}")
                for i in range(max(1, self.options.workers))
            ),
        ]
        return self._tasks

    async def stop(self) -> None:
        self._stopping = True
        self._ready.set()  # wake workers waiting for the stream: they see the flag and leave
        pending = set(self._tasks)
        while pending:
            # A cancellation can be lost in a race inside a library's wait_for (Python 3.11), so it
            # is repeated; the loops also check the flag.
            for task in pending:
                task.cancel()
            _, pending = await asyncio.wait(pending, timeout=2.0)
        self._tasks = []
        self._stopping = False
        self._ready.clear()
        for sub in self._subs:
            with contextlib.suppress(Exception):
                await sub.unsubscribe()
        self._subs.clear()
        if self._copy_pool is not None:
            try:
                await asyncio.wait_for(self._copy_pool.close(), 10)
            except Exception:  # a connection did not come back: close them all the hard way
                self._copy_pool.terminate()
            self._copy_pool = None

    @property
    def running(self) -> bool:
        return any(not t.done() for t in self._tasks)

    async def wait_ready(self, timeout: float) -> None:
        await asyncio.wait_for(self._ready.wait(), timeout)

    # -- edges and the HIST stream --------------------------------------------------------------

    def request_sync(self) -> None:
        """Re-read the edges table now (the edges domain may call this after a registration)."""
        self._sync_now.set()

    def add_edge(self, edge: str) -> None:
        """Source this edge too (besides the edges table); takes effect at once."""
        if EDGE_ID.match(edge):
            self.static_edges.add(edge)
            self._sync_now.set()

    async def on_status(self, edge: str, body: dict[str, Any]) -> None:
        """A status listener: an edge we do not source yet is (re)checked at once."""
        if edge in self.sourced or not EDGE_ID.match(edge):
            return
        if self.registered is None:
            self.discovered.add(edge)  # no edges table: every edge that reports is sourced
        self._sync_now.set()

    def desired_edges(self) -> set[str]:
        base = self.registered if self.registered is not None else self.discovered
        return {e for e in (base | self.static_edges) if EDGE_ID.match(e)} - set(self.resetting)

    async def _sync_loop(self) -> None:
        while not self._stopping:
            try:
                await self.sync()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self.counters.last_error = f"sync: {exc}"
                log.warning("historian: syncing the HIST stream failed: %s", exc)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._sync_now.wait(), self.options.sync_interval_s)
            self._sync_now.clear()

    async def sync(self) -> None:
        """Make HIST source exactly the desired edges; create it and the consumer when missing."""
        async with self.pool.acquire() as conn:
            self.registered = await service.registered_edges(conn)
        async with self._config_lock:
            desired = self.desired_edges()
            opts = self.options
            try:
                info = await self.js.stream_info(opts.stream)
            except NotFoundError:
                info = None
            if info is None:
                await self.js.add_stream(
                    StreamConfig(
                        name=opts.stream,
                        description="Proxus historian: records sourced from every edge's OUT stream",
                        subjects=[PARKING_SUBJECT],
                        retention=RetentionPolicy.LIMITS,
                        storage=StorageType.FILE,
                        discard=DiscardPolicy.NEW,
                        max_bytes=opts.max_bytes,
                        duplicate_window=120.0,
                        sources=[source_for(e) for e in sorted(desired)] or None,
                    )
                )
                self.sourced = set(desired)
                log.info("historian: created %s sourcing %s", opts.stream, sorted(desired))
            else:
                config = info.config
                current = {s.name[4:]: s for s in (config.sources or []) if s.name.startswith("OUT_")}
                if (
                    set(current) != desired
                    or (config.max_bytes or -1) != opts.max_bytes
                    or config.subjects != [PARKING_SUBJECT]
                ):
                    # Unchanged sources keep their exact config (the server would restart a changed one).
                    config.sources = [current[e] if e in current else source_for(e) for e in sorted(desired)]
                    config.max_bytes = opts.max_bytes
                    config.subjects = [PARKING_SUBJECT]
                    await self.js.update_stream(config)
                    log.info("historian: %s now sources %s", opts.stream, sorted(desired))
                self.sourced = set(desired)
            await self._ensure_consumer()
        self._ready.set()

    async def _ensure_consumer(self) -> None:
        opts = self.options
        try:
            await self.js.consumer_info(opts.stream, opts.durable)
        except NotFoundError:
            await self.js.add_consumer(
                opts.stream,
                ConsumerConfig(
                    durable_name=opts.durable,
                    description="Proxus historian writer (acknowledges after the database commit)",
                    ack_policy=AckPolicy.EXPLICIT,
                    deliver_policy=DeliverPolicy.ALL,
                    ack_wait=opts.ack_wait_s,
                    max_ack_pending=opts.max_ack_pending,
                    max_deliver=-1,
                ),
            )

    # -- draining -------------------------------------------------------------------------------

    async def _worker(self, index: int) -> None:
        opts = self.options
        sub: JetStreamContext.PullSubscription | None = None
        backoff = opts.retry_backoff_s
        while not self._stopping:
            try:
                if sub is None:
                    await self._ready.wait()
                    if self._stopping:
                        break
                    sub = await self.js.pull_subscribe_bind(durable=opts.durable, stream=opts.stream)
                    self._subs.append(sub)
                # About one transaction's worth of messages, so that every worker gets a share.
                want = max(1, min(opts.fetch_batch, int(opts.max_group_rows / max(1.0, self._rows_per_msg))))
                try:
                    msgs = await sub.fetch(want, timeout=opts.fetch_timeout_s)
                except (NatsTimeout, TimeoutError):
                    continue
                if msgs:
                    await self.handle(msgs)
                backoff = opts.retry_backoff_s
            except asyncio.CancelledError:
                raise
            except (NotFoundError, ServiceUnavailableError) as exc:
                # The consumer is gone (deleted, or HIST recreated): have sync make it, then bind again.
                self.counters.last_error = f"worker {index}: {type(exc).__name__}"
                log.info(
                    "historian worker %d: the consumer is not there (%s); re-creating it", index, type(exc).__name__
                )
                self._ready.clear()
                self._sync_now.set()
                if sub is not None:
                    with contextlib.suppress(Exception):
                        await sub.unsubscribe()
                sub = None
                await asyncio.sleep(backoff)
            except Exception as exc:
                self.counters.last_error = f"worker {index}: {type(exc).__name__}: {exc}"
                log.warning("historian worker %d: %s: %s", index, type(exc).__name__, exc)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 30.0)

    async def handle(self, msgs: list[Msg]) -> None:
        """Store fetched messages, one transaction per group of at most ``max_group_rows`` rows;
        each group is acknowledged after its commit."""
        decoded: list[tuple[Msg, Batch | EventBatch | None, str]] = []
        for msg in msgs:
            if msg.metadata.num_delivered > 1:
                self.counters.redelivered += 1
            try:
                data = decode(msg)
            except Rejected as exc:
                decoded.append((msg, None, str(exc)))
                continue
            decoded.append((msg, data, ""))
            self._rows_per_msg = 0.9 * self._rows_per_msg + 0.1 * len(data)
        group: list[tuple[Msg, Batch | EventBatch | None, str]] = []
        rows = 0
        for item in decoded:
            size = len(item[1]) if item[1] is not None else 0
            if group and rows + size > self.options.max_group_rows:
                await self._handle_group(group)
                group, rows = [], 0
            group.append(item)
            rows += size
        if group:
            await self._handle_group(group)

    async def _handle_group(self, group: list[tuple[Msg, Batch | EventBatch | None, str]]) -> None:
        msgs = [msg for msg, _, _ in group]
        good = [(msg, data) for msg, data, _ in group if data is not None]
        rejects = [(msg, error) for msg, data, error in group if data is None]
        keepalive = asyncio.create_task(self._keep_in_progress(msgs))
        try:
            summary = await self._store(good, rejects)
        except _OFFLINE:
            for msg in msgs:  # the database is away: have them again after a pause
                with contextlib.suppress(Exception):
                    await msg.nak(delay=self.options.retry_backoff_s * 5)
            raise
        finally:
            keepalive.cancel()
        if self.after_commit is not None:
            await self.after_commit(msgs)
        for msg in msgs:
            await msg.ack()
        self._note_acked(msgs)
        self.counters.messages += len(msgs)
        self.counters.last_commit_at = datetime.now(UTC)
        if summary and self.listeners:
            summary_list = summary_rows(summary)
            for listener in list(self.listeners):
                try:
                    listener(summary_list)
                except Exception:
                    log.exception("historian listener failed")

    async def _store(
        self, good: list[tuple[Msg, Batch | EventBatch]], rejects: list[tuple[Msg, str]]
    ) -> dict[str, list[Any]]:
        for attempt in range(_ROLLBACK_RETRIES):
            try:
                return await self._store_group(good, rejects)
            except asyncpg.TransactionRollbackError:  # deadlock or serialization failure: try again
                if attempt == _ROLLBACK_RETRIES - 1:
                    raise
                await asyncio.sleep(0.05 * (attempt + 1))
            except _OFFLINE:
                raise
            except (asyncpg.PostgresError, ValueError) as exc:
                log.warning("historian: a group of %d was refused (%s); storing record by record", len(good), exc)
                break
        return await self._store_one_by_one(good, rejects)

    async def _keep_in_progress(self, msgs: list[Msg]) -> None:
        """While a slow write runs, tell the server we are still at it (no redelivery meanwhile)."""
        interval = max(0.5, self.options.ack_wait_s / 3)
        while True:
            await asyncio.sleep(interval)
            for msg in msgs:
                with contextlib.suppress(Exception):
                    await msg.in_progress()

    async def _writer_pool(self) -> asyncpg.Pool:
        """Connections of the writer's own, where timestamptz travels as integer microseconds.

        With that codec a group's points go into ``proxus_points`` by one binary COPY, without a
        datetime object per point. Only the writer uses these connections (the codec would surprise
        anyone else); without a DSN the shared pool and the merge path are used.
        """
        if self.dsn is None:
            return self.pool
        async with self._copy_pool_lock:
            if self._copy_pool is None:
                self._copy_pool = await asyncpg.create_pool(
                    self.dsn, min_size=1, max_size=max(1, self.options.workers), init=_microsecond_timestamps
                )
        return self._copy_pool

    async def _store_group(
        self, good: list[tuple[Msg, Batch | EventBatch]], rejects: list[tuple[Msg, str]]
    ) -> dict[str, list[Any]]:
        points = Batch.empty()
        events = EventBatch([])
        summary: dict[str, list[Any]] = {}
        replayed = False
        for msg, data in good:
            replayed = replayed or msg.metadata.num_delivered > 1
            if isinstance(data, Batch):
                merge_summary(summary, summarize(data))
                points.extend(data)
            else:
                events.events.extend(data.events)
        pool = await self._writer_pool()
        try_copy = pool is self._copy_pool and not replayed and self._merge_groups == 0 and len(points) > 0
        self._merge_groups = max(0, self._merge_groups - 1)
        async with pool.acquire() as conn, conn.transaction():
            inserted = 0
            if try_copy:
                try:
                    async with conn.transaction():  # a savepoint: a conflict undoes the COPY only
                        await conn.copy_records_to_table(
                            "proxus_points", records=_copy_records(points), columns=_COLUMNS
                        )
                    inserted += len(points)
                except asyncpg.UniqueViolationError:  # some rows are stored already: a replay
                    self._merge_groups = _MERGE_AFTER_CONFLICT
                    self.counters.copy_conflicts += 1
                    inserted += await write_batch(conn, points)
            elif len(points):
                inserted += await write_batch(conn, points)
            if len(events):
                inserted += await write_batch(conn, events)
            await service.upsert_series(conn, summary_rows(summary))
            for msg, error in rejects:
                await self._reject(conn, msg, error)
        self.counters.rows_inserted += inserted
        self.counters.rows_duplicate += len(points) + len(events) - inserted
        return summary

    async def _store_one_by_one(
        self, good: list[tuple[Msg, Batch | EventBatch]], rejects: list[tuple[Msg, str]]
    ) -> dict[str, list[Any]]:
        summary: dict[str, list[Any]] = {}
        async with self.pool.acquire() as conn:
            for msg, data in good:
                part = summarize(data) if isinstance(data, Batch) else {}
                try:
                    inserted = await self._store_single(conn, data, part)
                except (*_OFFLINE, asyncpg.TransactionRollbackError):
                    raise
                except (asyncpg.PostgresError, ValueError) as exc:
                    rejects.append((msg, f"refused by the database: {exc}"))
                    continue
                merge_summary(summary, part)
                self.counters.rows_inserted += inserted
                self.counters.rows_duplicate += len(data) - inserted
            async with conn.transaction():
                for msg, error in rejects:
                    await self._reject(conn, msg, error)
        return summary

    async def _store_single(
        self, conn: asyncpg.Connection, data: Batch | EventBatch, part: dict[str, list[Any]]
    ) -> int:
        for attempt in range(_ROLLBACK_RETRIES):
            try:
                async with conn.transaction():
                    inserted = await write_batch(conn, data)
                    await service.upsert_series(conn, summary_rows(part))
                return inserted
            except asyncpg.TransactionRollbackError:
                if attempt == _ROLLBACK_RETRIES - 1:
                    raise
                await asyncio.sleep(0.05 * (attempt + 1))
        raise AssertionError("unreachable")

    async def _reject(self, conn: asyncpg.Connection, msg: Msg, error: str) -> None:
        self.counters.rejected += 1
        log.error("historian: rejected record %s #%d: %s", msg.subject, msg.metadata.sequence.stream, error)
        await service.record_reject(
            conn,
            edge_of(msg.subject),
            msg.subject,
            msg.metadata.sequence.stream,
            (msg.headers or {}).get(KIND_HEADER, ""),
            error,
            msg.data,
        )

    def _note_acked(self, msgs: list[Msg]) -> None:
        best: dict[str, tuple[int, int]] = {}
        for msg in msgs:
            edge = edge_of(msg.subject)
            mark = (msg.metadata.sequence.stream, origin_seq(msg))
            if edge and mark > best.get(edge, (0, 0)):
                best[edge] = mark
        for edge, mark in best.items():
            self.progress.setdefault(edge, EdgeProgress()).marks.append(mark)

    # -- purge, watchdog, reset -----------------------------------------------------------------

    async def _maintenance_loop(self) -> None:
        opts = self.options
        next_purge = time.monotonic() + opts.purge_interval_s
        while not self._stopping:
            await asyncio.sleep(opts.watchdog_interval_s)
            if not self._ready.is_set():
                continue
            try:
                await self.watchdog()
                await self.continue_resets()
                if time.monotonic() >= next_purge:
                    next_purge = time.monotonic() + opts.purge_interval_s
                    await self.purge()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self.counters.last_error = f"maintenance: {type(exc).__name__}: {exc}"
                log.warning("historian maintenance: %s: %s", type(exc).__name__, exc)

    def _edge_js(self, edge: str) -> JetStreamContext:
        return self.nc.jetstream(domain=edge, timeout=self.options.edge_request_timeout_s)

    async def _edge_reachable(self, edge: str) -> bool:
        try:
            await self.nc.request(f"$JS.{edge}.API.INFO", b"", timeout=self.options.edge_request_timeout_s)
        except (NatsTimeout, NoRespondersError, TimeoutError):
            return False
        return True

    async def watchdog(self) -> None:
        """Restart sources the server has not heard from while their edge answers."""
        info = await self.js.stream_info(self.options.stream)
        if info.state.bytes >= 0.95 * self.options.max_bytes:
            return  # HIST is full (the database is behind): sources wait, by design; nothing to restart
        now = time.monotonic()
        for source in info.sources or []:
            edge = source.name[4:]
            if not source.name.startswith("OUT_") or edge in self.resetting:
                continue
            active = source.active
            stale = active is None or active < 0 or active / 1e9 > self.options.stale_source_s or bool(source.error)
            progress = self.progress.setdefault(edge, EdgeProgress())
            if not stale or now - progress.last_kick < self.options.kick_min_interval_s:
                continue
            progress.last_kick = now
            if not await self._edge_reachable(edge):
                continue
            recreated, _ = await self._out_was_recreated(edge)
            if recreated:
                await self.begin_reset(edge)
                continue
            await self.kick(edge)

    async def kick(self, edge: str) -> None:
        """Restart the edge's source now: remove it and add it again (it resumes after the bookmark)."""
        async with self._config_lock:
            info = await self.js.stream_info(self.options.stream)
            config = info.config
            sources = list(config.sources or [])
            mine = [s for s in sources if s.name == out_stream(edge)]
            if not mine:
                return
            config.sources = [s for s in sources if s.name != out_stream(edge)]
            await self.js.update_stream(config)
            config.sources = sources
            await self.js.update_stream(config)
        self.counters.kicks += 1
        log.info("historian: restarted the stalled source of edge %s", edge)

    async def _bookmark_origin(self, edge: str) -> int:
        """The origin sequence of the last record HIST holds from ``edge`` (0: none)."""
        try:
            last = await self.js.get_last_msg(self.options.stream, out_filter(edge))
        except NotFoundError:
            return 0
        header = (last.headers or {}).get(SOURCE_HEADER, "")
        parts = header.split(" ")
        return int(parts[1]) if len(parts) >= 2 and parts[1].isdigit() else 0

    async def _out_info(self, edge: str) -> Any:
        try:
            return await self._edge_js(edge).stream_info(out_stream(edge))
        except (NatsTimeout, NoRespondersError, TimeoutError, ServiceUnavailableError, NotFoundError):
            return None

    async def _out_was_recreated(self, edge: str) -> tuple[bool, Any]:
        """Whether the edge's OUT stream is younger than what HIST has from it; and its info (None: away).

        What HIST holds is read first: every record in it was in OUT before, so OUT's last sequence,
        read afterwards, can only be at least that high, unless OUT was created anew.
        """
        progress = self.progress.setdefault(edge, EdgeProgress())
        known = max(progress.stored_origin, await self._bookmark_origin(edge))
        info = await self._out_info(edge)
        if info is None:
            return False, None
        created = info.created
        if progress.out_created is not None and created is not None and created != progress.out_created:
            log.warning("historian: OUT_%s was created again (%s, before %s)", edge, created, progress.out_created)
            return True, info
        progress.out_created = created
        if known and info.state.last_seq < known:
            log.warning("historian: OUT_%s ends at %d, below %d the Hub has from it", edge, info.state.last_seq, known)
            return True, info
        return False, info

    async def begin_reset(self, edge: str) -> None:
        """The edge's OUT stream was recreated: stop sourcing it until HIST holds none of its old records."""
        async with self._config_lock:
            try:
                last = await self.js.get_last_msg(self.options.stream, out_filter(edge))
                last_seq = last.seq or 0
            except NotFoundError:
                last_seq = 0
            self.resetting[edge] = last_seq
        log.warning("historian: OUT_%s was recreated on the edge; resetting its source", edge)
        self._sync_now.set()  # drops the source (desired_edges leaves resetting edges out)

    async def continue_resets(self) -> None:
        if not self.resetting:
            return
        info = await self.js.consumer_info(self.options.stream, self.options.durable)
        floor = info.ack_floor.stream_seq if info.ack_floor else 0
        for edge, last_seq in list(self.resetting.items()):
            if edge in self.sourced or floor < last_seq:
                continue  # the source is still there, or old records still wait for the writer
            await self.js.purge_stream(self.options.stream, subject=out_filter(edge))
            self.progress[edge] = EdgeProgress(out_created=None)
            del self.resetting[edge]
            self.counters.resets += 1
            self._sync_now.set()  # re-adds the source: no bookmark, so it starts at the new OUT's first record
            log.info("historian: edge %s source reset; sourcing its new OUT stream from the start", edge)

    async def purge(self) -> None:
        """Remove what the database holds from the edges' OUT streams and from HIST (keeping a bookmark)."""
        opts = self.options
        info = await self.js.consumer_info(opts.stream, opts.durable)
        floor = info.ack_floor.stream_seq if info.ack_floor else 0
        for edge, progress in list(self.progress.items()):
            eligible = [m for m in progress.marks if m[0] <= floor]
            if eligible:
                hist_seq, origin = max(eligible)
                progress.marks = [m for m in progress.marks if m[0] > floor]
                progress.stored_hist = max(progress.stored_hist, hist_seq)
                progress.stored_origin = max(progress.stored_origin, origin)
            if edge in self.resetting or edge not in self.sourced:
                continue
            if progress.stored_origin > progress.purged_origin:
                recreated, out = await self._out_was_recreated(edge)
                if recreated:
                    await self.begin_reset(edge)
                    continue
                if out is not None:
                    await self._edge_js(edge).purge_stream(
                        out_stream(edge), seq=progress.stored_origin + 1, subject=out_filter(edge)
                    )
                    progress.purged_origin = progress.stored_origin
                    self.counters.purges += 1
            if progress.stored_hist > progress.purged_hist:
                await self.js.purge_stream(opts.stream, seq=progress.stored_hist, subject=out_filter(edge))
                progress.purged_hist = progress.stored_hist

    # -- status ---------------------------------------------------------------------------------

    async def status(self) -> HistorianStatus:
        opts = self.options
        sources: list[SourceStatus] = []
        pending = ack_pending = 0
        with contextlib.suppress(NotFoundError, APIError, NatsTimeout, TimeoutError):
            info = await self.js.stream_info(opts.stream)
            for s in info.sources or []:
                edge = s.name[4:]
                progress = self.progress.get(edge, EdgeProgress())
                sources.append(
                    SourceStatus(
                        edge=edge,
                        lag=s.lag or 0,
                        active_s=None if s.active is None or s.active < 0 else s.active / 1e9,
                        error=str((s.error or {}).get("description", "")) if s.error else "",
                        stored_origin_seq=progress.stored_origin,
                        purged_origin_seq=progress.purged_origin,
                    )
                )
            consumer = await self.js.consumer_info(opts.stream, opts.durable)
            pending, ack_pending = consumer.num_pending or 0, consumer.num_ack_pending or 0
        c = self.counters
        return HistorianStatus(
            running=self.running,
            stream=opts.stream,
            edges=sorted(self.sourced),
            sources=sources,
            pending=pending,
            ack_pending=ack_pending,
            messages_stored=c.messages,
            rows_inserted=c.rows_inserted,
            rows_duplicate=c.rows_duplicate,
            rejected=c.rejected,
            redelivered=c.redelivered,
            kicks=c.kicks,
            last_commit_at=c.last_commit_at,
            last_error=c.last_error,
        )
