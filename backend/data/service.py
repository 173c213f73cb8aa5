"""The data domain's SQL: historian queries (viewer), the series catalog, rejects, dashboards (editor).

Historian queries bucket time with ``time_bucket`` when TimescaleDB is installed and with
``date_bin`` (PostgreSQL 14+) otherwise; both with the same origin (Monday 2000-01-03 UTC), so a
dashboard shows the same buckets on either database.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg  # type: ignore[import-untyped, unused-ignore]
import msgspec

from backend.audit.service import record
from backend.auth.principal import Principal
from backend.data.schemas import (
    AggregateFn,
    AggregateResult,
    Bucket,
    Dashboard,
    DashboardSpec,
    DashboardSummary,
    DashboardUpdate,
    EventRow,
    EventsPage,
    LatestValue,
    Order,
    Panel,
    PointRow,
    PointsPage,
    QualityName,
    SeriesBuckets,
    SeriesInfo,
    SeriesPage,
    TimeRange,
)
from backend.errors import ApiError, FieldProblem, conflict, not_found
from nodes.points import QUALITY_NAMES

# -- limits -----------------------------------------------------------------------------------------

MAX_POINTS = 10_000  # rows per raw-points response
MAX_SERIES = 50  # series per points / aggregate request
MAX_LATEST = 500  # series per latest request
MAX_BUCKETS = 10_000  # buckets per series
MAX_CELLS = 200_000  # buckets x series per response
MIN_BUCKET = timedelta(milliseconds=1)
MAX_BUCKET = timedelta(days=366)
DEFAULT_RANGE = timedelta(hours=1)
AUTO_BUCKETS = 300  # an unset bucket is chosen to give about this many buckets
BUCKET_ORIGIN = datetime(2000, 1, 3, tzinfo=UTC)  # a Monday: week buckets start on Mondays

_UNITS = {
    "ms": timedelta(milliseconds=1),
    "s": timedelta(seconds=1),
    "m": timedelta(minutes=1),
    "h": timedelta(hours=1),
    "d": timedelta(days=1),
    "w": timedelta(weeks=1),
}
_DURATION = re.compile(r"^([1-9][0-9]{0,5})(ms|s|m|h|d|w)$")
_RELATIVE = re.compile(r"^(?:now)?(?:-([1-9][0-9]{0,5})(ms|s|m|h|d|w))?$")
_NICE_BUCKETS = [
    "1ms", "10ms", "100ms", "1s", "5s", "10s", "30s", "1m", "5m", "10m", "15m", "30m",
    "1h", "3h", "6h", "12h", "1d", "7d", "30d", "366d",
]  # fmt: skip


def bad_request(field: str, message: str) -> ApiError:
    return ApiError(400, "invalid_request", f"{field}: {message}", field=field)


def parse_duration(text: str, field: str) -> timedelta:
    match = _DURATION.match(text.strip())
    if match is None:
        raise bad_request(field, f"{text!r} is not a duration like 10s, 5m, 1h, 7d")
    return int(match.group(1)) * _UNITS[match.group(2)]


def parse_instant(text: str | None, now: datetime, field: str) -> datetime | None:
    """An ISO 8601 time (UTC when no offset is given), ``now``, or relative: ``now-1h`` / ``-15m``."""
    if text is None or text == "":
        return None
    text = text.strip()
    relative = _RELATIVE.match(text)
    if relative is not None and text:
        if relative.group(1) is None:
            return now
        return now - int(relative.group(1)) * _UNITS[relative.group(2)]
    try:
        value = datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        raise bad_request(field, f"{text!r} is neither an ISO 8601 time nor relative like now-1h") from None
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


def time_range(start: str | None, end: str | None, now: datetime | None = None) -> tuple[datetime, datetime]:
    """Resolve ``from``/``to`` (default: the last hour) and check from < to."""
    now = now or datetime.now(UTC)
    to = parse_instant(end, now, "to") or now
    frm = parse_instant(start, now, "from") or (to - DEFAULT_RANGE)
    if frm >= to:
        raise bad_request("from", f"must be before to ({frm.isoformat()} is not before {to.isoformat()})")
    return frm, to


def choose_bucket(frm: datetime, to: datetime, bucket: str | None) -> tuple[str, timedelta]:
    """The bucket to use: the requested one (checked against the limits) or a round one."""
    span = to - frm
    if bucket is None:
        for name in _NICE_BUCKETS:
            width = parse_duration(name, "bucket")
            if span / width <= AUTO_BUCKETS:
                return name, width
        return _NICE_BUCKETS[-1], MAX_BUCKET
    width = parse_duration(bucket, "bucket")
    if width < MIN_BUCKET or width > MAX_BUCKET:
        raise bad_request("bucket", "must be between 1ms and 366d")
    if span / width > MAX_BUCKETS:
        raise bad_request(
            "bucket", f"{bucket} gives {int(span / width)} buckets over this range; at most {MAX_BUCKETS} are allowed"
        )
    return bucket, width


def encode_cursor(*parts: Any) -> str:
    return base64.urlsafe_b64encode(msgspec.json.encode(list(parts))).decode().rstrip("=")


def decode_cursor(cursor: str, types: Sequence[type]) -> list[Any]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        parts = msgspec.json.decode(raw, type=list[Any])
        if len(parts) != len(types):
            raise ValueError("wrong length")
        return [msgspec.convert(p, t) for p, t in zip(parts, types, strict=True)]
    except (ValueError, binascii.Error, msgspec.ValidationError, msgspec.DecodeError):
        raise bad_request("cursor", "is not a cursor this endpoint returned") from None


def quality_name(code: int | None) -> QualityName:
    if code is not None and 0 <= code < len(QUALITY_NAMES):
        name: QualityName = QUALITY_NAMES[code]  # type: ignore[assignment]
        return name
    return "bad"


def _value(number: float | None, text: str | None) -> float | str | None:
    return text if text is not None else number


def _check_series(series: Sequence[str], limit: int) -> list[str]:
    if not series:
        raise bad_request("series", "give at least one series")
    if len(series) > limit:
        raise bad_request("series", f"at most {limit} series per request")
    for name in series:
        if not name or len(name) > 512:
            raise bad_request("series", "a series key has 1 to 512 characters")
    return list(dict.fromkeys(series))


# -- schema -----------------------------------------------------------------------------------------


async def has_timescale(conn: asyncpg.Connection) -> bool:
    return bool(await conn.fetchval("SELECT count(*) FROM pg_extension WHERE extname = 'timescaledb'"))


async def ensure_indexes(conn: asyncpg.Connection) -> None:
    """Indexes the viewer's queries need beyond the historian's primary keys."""
    await conn.execute("CREATE INDEX IF NOT EXISTS proxus_events_ts ON proxus_events (ts DESC)")


async def registered_edges(conn: asyncpg.Connection) -> set[str] | None:
    """Ids of registered edges; None while there is no ``edges`` table."""
    if await conn.fetchval("SELECT to_regclass('public.edges')") is None:
        return None
    return {r["id"] for r in await conn.fetch("SELECT id FROM edges")}


# -- the series catalog -----------------------------------------------------------------------------

_UPSERT_SERIES = """
INSERT INTO historian_series AS h (series, first_ts, last_ts, points, last_value, last_value_text, last_quality)
SELECT s, timestamptz 'epoch' + f * interval '1 microsecond', timestamptz 'epoch' + l * interval '1 microsecond',
       n, v, vt, q
FROM unnest($1::text[], $2::bigint[], $3::bigint[], $4::bigint[], $5::float8[], $6::text[], $7::int2[])
     AS u(s, f, l, n, v, vt, q)
ORDER BY s
ON CONFLICT (series) DO UPDATE SET
    first_ts = LEAST(h.first_ts, EXCLUDED.first_ts),
    points = h.points + EXCLUDED.points,
    last_value = CASE WHEN EXCLUDED.last_ts >= h.last_ts THEN EXCLUDED.last_value ELSE h.last_value END,
    last_value_text = CASE WHEN EXCLUDED.last_ts >= h.last_ts THEN EXCLUDED.last_value_text ELSE h.last_value_text END,
    last_quality = CASE WHEN EXCLUDED.last_ts >= h.last_ts THEN EXCLUDED.last_quality ELSE h.last_quality END,
    last_ts = GREATEST(h.last_ts, EXCLUDED.last_ts),
    updated_at = now()
"""


async def upsert_series(conn: asyncpg.Connection, rows: Sequence[tuple[Any, ...]]) -> None:
    """Fold per-series summaries (series, first_us, last_us, count, value, value_text, quality) in."""
    if not rows:
        return
    columns = list(zip(*rows, strict=True))
    await conn.execute(_UPSERT_SERIES, *[list(c) for c in columns])


async def rebuild_series_catalog(conn: asyncpg.Connection) -> int:
    """Add series stored by other writers (a standalone historian sink) to the catalog.

    Walks the distinct series with an index skip scan (one index probe per series), so it is cheap
    even over many points; counts are left at the number of points found for new series only when
    the table is small, else 0 (an estimate the writer then keeps adding to).
    """
    rows = await conn.fetch(
        """WITH RECURSIVE s AS (
               (SELECT series FROM proxus_points ORDER BY series LIMIT 1)
               UNION ALL
               SELECT (SELECT p.series FROM proxus_points p WHERE p.series > s.series ORDER BY p.series LIMIT 1)
               FROM s WHERE s.series IS NOT NULL)
           SELECT s.series FROM s
           WHERE s.series IS NOT NULL
             AND NOT EXISTS (SELECT 1 FROM historian_series h WHERE h.series = s.series)"""
    )
    added = 0
    for row in rows:
        status = await conn.execute(
            """INSERT INTO historian_series (series, first_ts, last_ts, points, last_value, last_value_text,
                                             last_quality)
               SELECT $1, f.ts, l.ts, 0, l.value, l.value_text, l.quality
               FROM (SELECT ts FROM proxus_points WHERE series = $1 ORDER BY ts LIMIT 1) f,
                    (SELECT ts, value, value_text, quality FROM proxus_points WHERE series = $1
                     ORDER BY ts DESC LIMIT 1) l
               ON CONFLICT (series) DO NOTHING""",
            row["series"],
        )
        added += int(status.rsplit(" ", 1)[-1])
    return added


async def record_reject(
    conn: asyncpg.Connection, edge: str, subject: str, stream_seq: int, kind: str, error: str, payload: bytes
) -> None:
    await conn.execute(
        """INSERT INTO historian_rejects (edge, subject, stream_seq, kind, error, payload)
           VALUES ($1, $2, $3, $4, $5, $6)""",
        edge,
        subject,
        stream_seq,
        kind,
        error[:2000],
        payload,
    )


async def count_rejects(conn: asyncpg.Connection) -> int:
    return int(await conn.fetchval("SELECT count(*) FROM historian_rejects"))


# -- historian queries ------------------------------------------------------------------------------


def _like_escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _glob_to_like(pattern: str) -> str:
    """``*`` any characters, ``?`` one; without either, a substring match."""
    like = _like_escape(pattern).replace("*", "%").replace("?", "_")
    return like if ("*" in pattern or "?" in pattern) else f"%{like}%"


async def list_series(
    conn: asyncpg.Connection, *, prefix: str | None, pattern: str | None, limit: int, cursor: str | None
) -> SeriesPage:
    after = decode_cursor(cursor, [str])[0] if cursor else None
    rows = await conn.fetch(
        """SELECT series, first_ts, last_ts, points, last_value, last_value_text, last_quality
           FROM historian_series
           WHERE ($1::text IS NULL OR series LIKE $1 ESCAPE '\\')
             AND ($2::text IS NULL OR series ILIKE $2 ESCAPE '\\')
             AND ($3::text IS NULL OR series > $3)
           ORDER BY series LIMIT $4""",
        _like_escape(prefix) + "%" if prefix else None,
        _glob_to_like(pattern) if pattern else None,
        after,
        limit + 1,
    )
    items = [
        SeriesInfo(
            series=r["series"],
            first_ts=r["first_ts"],
            last_ts=r["last_ts"],
            points=r["points"],
            last_value=_value(r["last_value"], r["last_value_text"]),
            last_quality=quality_name(r["last_quality"]),
        )
        for r in rows[:limit]
    ]
    next_cursor = encode_cursor(items[-1].series) if len(rows) > limit else None
    return SeriesPage(items=items, next_cursor=next_cursor)


def _us(ts: datetime) -> int:
    delta = ts - datetime(1970, 1, 1, tzinfo=UTC)
    return (delta.days * 86400 + delta.seconds) * 1_000_000 + delta.microseconds


def _from_us(us: int) -> datetime:
    return datetime(1970, 1, 1, tzinfo=UTC) + timedelta(microseconds=us)


async def points(
    conn: asyncpg.Connection,
    series: Sequence[str],
    frm: datetime,
    to: datetime,
    *,
    limit: int,
    cursor: str | None,
    order: Order = "asc",
) -> PointsPage:
    keys = _check_series(series, MAX_SERIES)
    if not 1 <= limit <= MAX_POINTS:
        raise bad_request("limit", f"between 1 and {MAX_POINTS}")
    after_series, after_us = decode_cursor(cursor, [str, int]) if cursor else (None, None)
    after_ts = _from_us(after_us) if after_us is not None else None
    if order == "asc":
        sql = """SELECT series, ts, value, value_text, quality FROM proxus_points
                 WHERE series = ANY($1::text[]) AND ts >= $2 AND ts < $3
                   AND ($4::text IS NULL OR (series, ts) > ($4, $5::timestamptz))
                 ORDER BY series, ts LIMIT $6"""
    else:
        sql = """SELECT series, ts, value, value_text, quality FROM proxus_points
                 WHERE series = ANY($1::text[]) AND ts >= $2 AND ts < $3
                   AND ($4::text IS NULL OR series > $4 OR (series = $4 AND ts < $5::timestamptz))
                 ORDER BY series, ts DESC LIMIT $6"""
    rows = await conn.fetch(sql, keys, frm, to, after_series, after_ts, limit + 1)
    items = [
        PointRow(
            series=r["series"],
            ts=r["ts"],
            value=_value(r["value"], r["value_text"]),
            quality=quality_name(r["quality"]),
        )
        for r in rows[:limit]
    ]
    next_cursor = encode_cursor(items[-1].series, _us(items[-1].ts)) if len(rows) > limit else None
    return PointsPage(items=items, next_cursor=next_cursor)


_PLAIN_FN = {
    "avg": "avg(value)",
    "min": "min(value)",
    "max": "max(value)",
    "sum": "sum(value)",
    "count": "count(*)",
    "first": "(array_agg(value ORDER BY ts) FILTER (WHERE value IS NOT NULL))[1]",
    "last": "(array_agg(value ORDER BY ts DESC) FILTER (WHERE value IS NOT NULL))[1]",
}
_TIMESCALE_FN = {**_PLAIN_FN, "first": "first(value, ts)", "last": "last(value, ts)"}


def aggregate_sql(functions: Sequence[AggregateFn], timescale: bool) -> str:
    """The bucketed aggregate query (functions from a fixed list: nothing user-typed is spliced in)."""
    table = _TIMESCALE_FN if timescale else _PLAIN_FN
    bucket = "time_bucket($4::interval, ts, $5::timestamptz)" if timescale else "date_bin($4::interval, ts, $5)"
    selected = ", ".join(f"{table[fn]} AS {fn}" for fn in functions)
    return f"""SELECT series, {bucket} AS t, {selected}
               FROM proxus_points
               WHERE series = ANY($1::text[]) AND ts >= $2 AND ts < $3
               GROUP BY series, t ORDER BY series, t"""


async def aggregate(
    conn: asyncpg.Connection,
    series: Sequence[str],
    frm: datetime,
    to: datetime,
    *,
    bucket: str | None,
    functions: Sequence[AggregateFn],
    timescale: bool,
) -> AggregateResult:
    keys = _check_series(series, MAX_SERIES)
    fns: list[AggregateFn] = list(dict.fromkeys(functions)) or ["avg"]
    name, width = choose_bucket(frm, to, bucket)
    if (to - frm) / width * len(keys) > MAX_CELLS:
        raise bad_request("bucket", f"too many buckets for {len(keys)} series; use a wider bucket or fewer series")
    rows = await conn.fetch(aggregate_sql(fns, timescale), keys, frm, to, width, BUCKET_ORIGIN)
    by_series: dict[str, list[Bucket]] = {key: [] for key in keys}
    for r in rows:
        values = {fn: r[fn] for fn in fns}
        if "count" in values and values["count"] is not None:
            values["count"] = int(values["count"])
        by_series[r["series"]].append(Bucket(t=r["t"], **values))
    return AggregateResult(
        start=frm,
        end=to,
        bucket=name,
        functions=fns,
        series=[SeriesBuckets(series=key, buckets=by_series[key]) for key in keys],
    )


async def latest(conn: asyncpg.Connection, series: Sequence[str]) -> list[LatestValue]:
    keys = _check_series(series, MAX_LATEST)
    rows = await conn.fetch(
        """SELECT s.series, p.ts, p.value, p.value_text, p.quality
           FROM unnest($1::text[]) WITH ORDINALITY AS s(series, n)
           LEFT JOIN LATERAL (SELECT ts, value, value_text, quality FROM proxus_points
                              WHERE series = s.series ORDER BY ts DESC LIMIT 1) p ON true
           ORDER BY s.n""",
        keys,
    )
    return [
        LatestValue(
            series=r["series"],
            ts=r["ts"],
            value=_value(r["value"], r["value_text"]),
            quality=quality_name(r["quality"]) if r["ts"] is not None else None,
        )
        for r in rows
    ]


async def events(
    conn: asyncpg.Connection,
    frm: datetime,
    to: datetime,
    *,
    series: Sequence[str],
    alarm: str | None,
    state: str | None,
    severity: str | None,
    limit: int,
    cursor: str | None,
) -> EventsPage:
    keys = _check_series(series, MAX_SERIES) if series else None
    after = decode_cursor(cursor, [int, str, str, str]) if cursor else [None, None, None, None]
    after_ts = _from_us(after[0]) if after[0] is not None else None
    rows = await conn.fetch(
        """SELECT ts, series, alarm, state, severity, value, value_text, message FROM proxus_events
           WHERE ts >= $1 AND ts < $2
             AND ($3::text[] IS NULL OR series = ANY($3))
             AND ($4::text IS NULL OR alarm = $4) AND ($5::text IS NULL OR state = $5)
             AND ($6::text IS NULL OR severity = $6)
             AND ($7::timestamptz IS NULL OR (ts, series, alarm, state) < ($7, $8, $9, $10))
           ORDER BY ts DESC, series DESC, alarm DESC, state DESC LIMIT $11""",
        frm,
        to,
        keys,
        alarm,
        state,
        severity,
        after_ts,
        after[1],
        after[2],
        after[3],
        limit + 1,
    )
    items = [
        EventRow(
            ts=r["ts"],
            series=r["series"],
            alarm=r["alarm"],
            state=r["state"],
            severity=r["severity"],
            value=_value(r["value"], r["value_text"]),
            message=r["message"],
        )
        for r in rows[:limit]
    ]
    last = items[-1] if items else None
    next_cursor = (
        encode_cursor(_us(last.ts), last.series, last.alarm, last.state) if last and len(rows) > limit else None
    )
    return EventsPage(items=items, next_cursor=next_cursor)


# -- dashboards -------------------------------------------------------------------------------------

_DASHBOARD_COLUMNS = (
    "id, name, description, time_range, refresh_s, panels, flow_id, version, created_at, created_by, "
    "updated_at, updated_by"
)


def _check_time_range(tr: TimeRange, field: str) -> None:
    if tr.last is not None:
        if tr.start is not None or tr.end is not None:
            raise bad_request(field, "give either last, or from and to; not both")
        width = parse_duration(tr.last, f"{field}.last")
        if width > timedelta(days=3660):
            raise bad_request(f"{field}.last", "at most ten years")
        return
    if tr.start is None or tr.end is None:
        raise bad_request(field, "give last (e.g. 1h), or both from and to")
    if tr.start.tzinfo is None or tr.end.tzinfo is None:
        raise bad_request(field, "from and to need a UTC offset (e.g. 2024-05-01T08:00:00Z)")
    if tr.start >= tr.end:
        raise bad_request(f"{field}.from", "must be before to")


def _checked_panels(panels: Sequence[Panel]) -> list[Panel]:
    """Validate what the types cannot express; give panels without an id one (p1, p2, ...)."""
    problems: list[FieldProblem] = []
    taken = {p.id for p in panels if p.id}
    seen: set[str] = set()
    out: list[Panel] = []
    counter = 0
    for i, panel in enumerate(panels):
        where = f"panels[{i}]"
        if panel.id:
            if panel.id in seen:
                problems.append(FieldProblem(f"{where}.id", f"duplicate panel id {panel.id!r}"))
            seen.add(panel.id)
        else:
            counter += 1
            while f"p{counter}" in taken:
                counter += 1
            panel = msgspec.structs.replace(panel, id=f"p{counter}")
            taken.add(f"p{counter}")
        try:
            if panel.time_range is not None:
                _check_time_range(panel.time_range, f"{where}.time_range")
            if panel.bucket is not None:
                width = parse_duration(panel.bucket, f"{where}.bucket")
                if width < MIN_BUCKET or width > MAX_BUCKET:
                    raise bad_request(f"{where}.bucket", "must be between 1ms and 366d")
        except ApiError as exc:
            problems.extend(exc.details)
        if panel.min is not None and panel.max is not None and panel.min >= panel.max:
            problems.append(FieldProblem(f"{where}.min", "must be below max"))
        out.append(panel)
    if problems:
        message = "; ".join(f"{p.field}: {p.message}" for p in problems)
        raise ApiError(400, "invalid_request", message, details=problems)
    return out


def coerce_spec(spec: DashboardSpec | Mapping[str, Any]) -> DashboardSpec:
    """A spec from a Struct or a plain mapping (templates pass their JSON), validated by msgspec."""
    if isinstance(spec, DashboardSpec):
        return spec
    try:
        return msgspec.convert(dict(spec), DashboardSpec)
    except msgspec.ValidationError as exc:
        text = str(exc)
        field = text.rsplit("at `$.", 1)[-1].rstrip("`") if "at `$." in text else "dashboard"
        raise ApiError(400, "invalid_request", f"invalid dashboard: {text}", field=field) from None


def _dashboard(row: Mapping[str, Any]) -> Dashboard:
    return Dashboard(
        id=row["id"],
        name=row["name"],
        description=row["description"],
        time_range=msgspec.convert(row["time_range"], TimeRange),
        refresh_s=row["refresh_s"],
        panels=msgspec.convert(row["panels"], list[Panel]),
        flow_id=row["flow_id"],
        version=row["version"],
        created_at=row["created_at"],
        created_by=row["created_by"],
        updated_at=row["updated_at"],
        updated_by=row["updated_by"],
    )


async def list_dashboards(conn: asyncpg.Connection, flow_id: str | None = None) -> list[DashboardSummary]:
    rows = await conn.fetch(
        """SELECT id, name, description, jsonb_array_length(panels) AS panels, flow_id, version, updated_at,
                  updated_by
           FROM dashboards WHERE ($1::text IS NULL OR flow_id = $1) ORDER BY lower(name)""",
        flow_id,
    )
    return [DashboardSummary(**dict(r)) for r in rows]


async def get_dashboard(conn: asyncpg.Connection, dashboard_id: int) -> Dashboard:
    row = await conn.fetchrow(f"SELECT {_DASHBOARD_COLUMNS} FROM dashboards WHERE id = $1", dashboard_id)
    if row is None:
        raise not_found("dashboard", dashboard_id)
    return _dashboard(row)


async def _free_name(conn: asyncpg.Connection, name: str, exclude_id: int | None = None) -> bool:
    return not await conn.fetchval(
        "SELECT 1 FROM dashboards WHERE lower(name) = lower($1) AND ($2::bigint IS NULL OR id <> $2)",
        name,
        exclude_id,
    )


async def _flow_exists(conn: asyncpg.Connection, flow_id: str) -> bool:
    if await conn.fetchval("SELECT to_regclass('public.flows')") is None:
        return False
    return bool(await conn.fetchval("SELECT 1 FROM flows WHERE id = $1", flow_id))


async def create_dashboard(
    conn: asyncpg.Connection,
    principal: Principal | None,
    spec: DashboardSpec | Mapping[str, Any],
    *,
    address: str = "",
    rename_on_conflict: bool = True,
) -> Dashboard:
    """Create a dashboard (audited). For other domains (templates) as much as for the API.

    ``spec`` may be a :class:`DashboardSpec` or a mapping of the same JSON shape. When the name is
    taken, ``rename_on_conflict`` appends " (2)", " (3)", ... (what a template instantiated twice
    wants); the API passes False and answers 409 instead.
    """
    data = coerce_spec(spec)
    _check_time_range(data.time_range, "time_range")
    panels = _checked_panels(data.panels)
    username = principal.username if principal else "system"
    async with conn.transaction():
        name = data.name
        if not await _free_name(conn, name):
            if not rename_on_conflict:
                raise conflict(f"a dashboard named {name!r} already exists")
            n = 2
            while not await _free_name(conn, f"{data.name} ({n})"):
                n += 1
            name = f"{data.name} ({n})"[:200]
        if data.flow_id is not None and not await _flow_exists(conn, data.flow_id):
            raise ApiError(400, "invalid_request", f"flow {data.flow_id!r} does not exist", field="flow_id")
        row = await conn.fetchrow(
            f"""INSERT INTO dashboards (name, description, time_range, refresh_s, panels, flow_id, created_by,
                                        updated_by)
                VALUES ($1, $2, $3, $4, $5, $6, $7, $7) RETURNING {_DASHBOARD_COLUMNS}""",
            name,
            data.description,
            msgspec.to_builtins(data.time_range),
            data.refresh_s,
            msgspec.to_builtins(panels),
            data.flow_id,
            username,
        )
        dashboard = _dashboard(row)
        await record(conn, principal, "dashboard.create", "dashboard", dashboard.id, after=dashboard, address=address)
    return dashboard


async def update_dashboard(
    conn: asyncpg.Connection, principal: Principal, dashboard_id: int, data: DashboardUpdate, address: str
) -> Dashboard:
    _check_time_range(data.time_range, "time_range")
    panels = _checked_panels(data.panels)
    async with conn.transaction():
        row = await conn.fetchrow(f"SELECT {_DASHBOARD_COLUMNS} FROM dashboards WHERE id = $1 FOR UPDATE", dashboard_id)
        if row is None:
            raise not_found("dashboard", dashboard_id)
        before = _dashboard(row)
        if data.version is not None and data.version != before.version:
            raise ApiError(
                409,
                "conflict",
                f"the dashboard was changed meanwhile (version {before.version}, you edited {data.version}); "
                "reload it and apply your change again",
                extra={"version": before.version},
            )
        if not await _free_name(conn, data.name, dashboard_id):
            raise conflict(f"a dashboard named {data.name!r} already exists")
        if data.flow_id is not None and not await _flow_exists(conn, data.flow_id):
            raise ApiError(400, "invalid_request", f"flow {data.flow_id!r} does not exist", field="flow_id")
        row = await conn.fetchrow(
            f"""UPDATE dashboards SET name = $2, description = $3, time_range = $4, refresh_s = $5, panels = $6,
                       flow_id = $7, version = version + 1, updated_at = now(), updated_by = $8
                WHERE id = $1 RETURNING {_DASHBOARD_COLUMNS}""",
            dashboard_id,
            data.name,
            data.description,
            msgspec.to_builtins(data.time_range),
            data.refresh_s,
            msgspec.to_builtins(panels),
            data.flow_id,
            principal.username,
        )
        after = _dashboard(row)
        await record(
            conn, principal, "dashboard.update", "dashboard", dashboard_id, before=before, after=after, address=address
        )
    return after


async def delete_dashboard(conn: asyncpg.Connection, principal: Principal, dashboard_id: int, address: str) -> None:
    async with conn.transaction():
        row = await conn.fetchrow(f"SELECT {_DASHBOARD_COLUMNS} FROM dashboards WHERE id = $1", dashboard_id)
        if row is None:
            raise not_found("dashboard", dashboard_id)
        await conn.execute("DELETE FROM dashboards WHERE id = $1", dashboard_id)
        await record(
            conn, principal, "dashboard.delete", "dashboard", dashboard_id, before=_dashboard(row), address=address
        )
