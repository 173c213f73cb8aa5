"""``sink.historian``: store points and events in the Hub's historian database."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any

from msgspec import Meta

from nodes.host import Data, NodeContext, NotConnected, Sink
from nodes.points import EventBatch
from nodes.spec import Category, NodeConfig, NodeSpec, any_in

if TYPE_CHECKING:
    import asyncpg  # type: ignore[import-untyped, unused-ignore]

# The historian's tables. The primary keys make every write idempotent: a batch replayed after a
# crash between commit and acknowledgement inserts nothing twice (ON CONFLICT DO NOTHING).
SCHEMA = """
CREATE TABLE IF NOT EXISTS proxus_points (
    ts         timestamptz      NOT NULL,
    series     text             NOT NULL,
    value      double precision,
    value_text text,
    quality    smallint         NOT NULL DEFAULT 0,
    PRIMARY KEY (series, ts)
);
CREATE TABLE IF NOT EXISTS proxus_events (
    ts         timestamptz      NOT NULL,
    series     text             NOT NULL,
    alarm      text             NOT NULL,
    state      text             NOT NULL,
    severity   text             NOT NULL,
    value      double precision,
    value_text text,
    message    text             NOT NULL DEFAULT '',
    PRIMARY KEY (series, alarm, ts, state)
);
"""

# Timestamps travel as integer microseconds and are turned into timestamptz by the database, so
# no datetime object is built per point and no precision is lost to floating point.
_STAGE_POINTS = """
CREATE TEMP TABLE IF NOT EXISTS _proxus_stage_points
    (ts_us bigint, series text, value double precision, value_text text, quality smallint) ON COMMIT DELETE ROWS
"""
_MERGE_POINTS = """
INSERT INTO proxus_points (ts, series, value, value_text, quality)
SELECT timestamptz 'epoch' + ts_us * interval '1 microsecond', series, value, value_text, quality
FROM _proxus_stage_points
ON CONFLICT DO NOTHING
"""
_INSERT_EVENT = """
INSERT INTO proxus_events (ts, series, alarm, state, severity, value, value_text, message)
VALUES (timestamptz 'epoch' + $1::bigint * interval '1 microsecond', $2, $3, $4, $5, $6, $7, $8)
ON CONFLICT DO NOTHING
"""


async def ensure_schema(conn: asyncpg.Connection) -> bool:
    """Create the historian tables; make them hypertables when TimescaleDB is present. Returns that."""
    await conn.execute(SCHEMA)
    has_timescale = bool(await conn.fetchval("SELECT count(*) FROM pg_extension WHERE extname = 'timescaledb'"))
    if has_timescale:
        for table in ("proxus_points", "proxus_events"):
            await conn.execute(
                "SELECT create_hypertable($1::regclass, 'ts', if_not_exists => TRUE, migrate_data => TRUE)", table
            )
    return has_timescale


def _split(value: Any) -> tuple[float | None, str | None]:
    if isinstance(value, str):
        return None, value
    if value is None:
        return None, None
    return float(value), None


async def write_batch(conn: asyncpg.Connection, data: Data) -> int:
    """Write a batch idempotently in one transaction; returns the rows newly inserted."""
    async with conn.transaction():
        if isinstance(data, EventBatch):
            rows = [
                (e.ts // 1000, e.series, e.alarm, e.state, e.severity, *_split(e.value), e.message) for e in data.events
            ]
            await conn.executemany(_INSERT_EVENT, rows)
            return len(rows)
        await conn.execute(_STAGE_POINTS)
        records = [
            (t // 1000, s, None, v, q) if isinstance(v, str) else (t // 1000, s, float(v), None, q)
            for t, s, v, q in zip(data.ts, data.series, data.values, data.quality, strict=True)
        ]
        await conn.copy_records_to_table("_proxus_stage_points", records=records)
        status = await conn.execute(_MERGE_POINTS)
        return int(status.rsplit(" ", 1)[-1])


class HistorianConfig(NodeConfig, frozen=True):
    """
    Stores points and alarm events in the historian on the Hub: a TimescaleDB hypertable, or plain
    PostgreSQL where TimescaleDB is not installed. Writes are batched for throughput.
    """

    batch_size: Annotated[
        int,
        Meta(ge=1, le=100_000, description="Largest number of rows written in one database transaction."),
    ] = 5000
    flush_interval_ms: Annotated[
        int,
        Meta(
            ge=10,
            le=60_000,
            description="Longest time rows wait before being written, in milliseconds, "
            "even when fewer than batch_size are pending.",
        ),
    ] = 1000
    store_events: Annotated[
        bool, Meta(description="Also store alarm events arriving on the input; when off they are dropped.")
    ] = True


class HistorianSink(Sink):
    """Writes to PostgreSQL/TimescaleDB. On an edge under a Hub its records go to the Hub instead."""

    hub_delivered = True

    def __init__(self, config: HistorianConfig, context: NodeContext) -> None:
        self.config = config
        self.context = context
        self.max_batch_points = config.batch_size
        self._conn: asyncpg.Connection | None = None

    async def connect(self) -> None:
        import asyncpg

        dsn = self.context.setting("historian_url")
        if not dsn:
            raise NotConnected("no historian database configured (set PROXUS_HISTORIAN_URL)")
        try:
            self._conn = await asyncpg.connect(dsn, timeout=10)
            await ensure_schema(self._conn)
        except (OSError, asyncpg.PostgresError) as exc:
            raise NotConnected(f"historian database: {exc}") from exc

    async def write(self, data: Data, key: str = "") -> None:
        if isinstance(data, EventBatch) and not self.config.store_events:
            return
        if self._conn is None or self._conn.is_closed():
            raise NotConnected("historian database connection lost")
        try:
            inserted = await write_batch(self._conn, data)
        except (OSError, ConnectionError) as exc:
            raise NotConnected(f"historian database: {exc}") from exc
        self.context.count("rows_inserted", inserted)
        self.context.count("rows_duplicate", len(data) - inserted)

    async def close(self) -> None:
        if self._conn is not None:
            await self._conn.close()
            self._conn = None


EXAMPLE = HistorianConfig(batch_size=5000, flush_interval_ms=1000, store_events=True)

SPEC = NodeSpec(
    type_id="sink.historian",
    version=1,
    category=Category.SINK,
    title="Historian",
    description="Stores points and events in the Hub's time-series database.",
    config=HistorianConfig,
    example=EXAMPLE,
    inputs=(any_in(),),
    stateful=False,
    icon="database",
    behaviour=HistorianSink,
)
