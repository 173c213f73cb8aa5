"""Alerts: rules and channels (CRUD), raising, clearing and acknowledging alerts, the notification
queue and the ingestion of analytics alarm events. All SQL of the domain lives here.

Every transition (raise, clear, acknowledge) is one transaction that updates the alert, appends to
its history and enqueues a notification for each matching channel, so a crash never leaves an
alert without its notifications. The unique index on active keys makes raising idempotent across
several Hub processes evaluating the same rules.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any

import asyncpg  # type: ignore[import-untyped, unused-ignore]
import msgspec

from backend.alerts.schemas import (
    SEVERITY_RANK,
    Alert,
    AlertDetail,
    Attempt,
    Channel,
    ChannelCreate,
    ChannelUpdate,
    Condition,
    Notification,
    Rule,
    RuleCreate,
    RuleUpdate,
    SeriesThreshold,
    Transition,
    Webhook,
)
from backend.audit.service import record
from backend.auth.principal import Principal
from backend.errors import ApiError, FieldProblem, conflict, not_found
from nodes.sink.http import is_sensitive_name, url_problems

_HEADER_NAME = re.compile(r"^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$")

# -- rules ----------------------------------------------------------------------------------------

_RULE = "id, name, description, severity, enabled, condition, created_by, created_at, updated_at"


def _rule(row: Mapping[str, Any]) -> Rule:
    return Rule(
        id=row["id"],
        name=row["name"],
        description=row["description"],
        severity=row["severity"],
        enabled=row["enabled"],
        condition=msgspec.convert(row["condition"], Condition),
        created_by=row["created_by"],
        created_at=row["created_at"],
        updated_at=row["updated_at"],
    )


def check_condition(condition: Condition) -> None:
    """What the schema cannot say: a threshold needs a limit, and its limits must not cross."""
    if isinstance(condition, SeriesThreshold):
        if condition.above is None and condition.below is None:
            raise ApiError(400, "invalid_request", "set above, below or both", field="condition.above")
        if condition.above is not None and condition.below is not None and condition.below >= condition.above:
            raise ApiError(
                400,
                "invalid_request",
                f"below ({condition.below:g}) must be less than above ({condition.above:g})",
                field="condition.below",
            )


async def list_rules(conn: asyncpg.Connection) -> list[Rule]:
    return [_rule(r) for r in await conn.fetch(f"SELECT {_RULE} FROM alert_rules ORDER BY lower(name), id")]


async def enabled_rules(conn: asyncpg.Connection) -> list[Rule]:
    return [_rule(r) for r in await conn.fetch(f"SELECT {_RULE} FROM alert_rules WHERE enabled ORDER BY id")]


async def get_rule(conn: asyncpg.Connection, rule_id: int) -> Rule:
    row = await conn.fetchrow(f"SELECT {_RULE} FROM alert_rules WHERE id = $1", rule_id)
    if row is None:
        raise not_found("alert rule", rule_id)
    return _rule(row)


async def create_rule(conn: asyncpg.Connection, who: Principal, data: RuleCreate, address: str) -> Rule:
    check_condition(data.condition)
    async with conn.transaction():
        row = await conn.fetchrow(
            f"""INSERT INTO alert_rules (name, description, kind, severity, enabled, condition, created_by)
                VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING {_RULE}""",
            data.name,
            data.description,
            _kind(data.condition),
            data.severity,
            data.enabled,
            msgspec.to_builtins(data.condition),
            who.username,
        )
        rule = _rule(row)
        await record(conn, who, "alert_rule.create", "alert_rule", rule.id, after=rule, address=address)
    return rule


def _kind(condition: Condition) -> str:
    kind: str = msgspec.to_builtins(condition)["kind"]
    return kind


async def update_rule(conn: asyncpg.Connection, who: Principal, rule_id: int, data: RuleUpdate, address: str) -> Rule:
    if data.condition is not None:
        check_condition(data.condition)
    async with conn.transaction():
        before = await get_rule(conn, rule_id)
        condition = data.condition if data.condition is not None else before.condition
        row = await conn.fetchrow(
            f"""UPDATE alert_rules SET name = coalesce($2, name), description = coalesce($3, description),
                       severity = coalesce($4, severity), enabled = coalesce($5, enabled),
                       kind = $6, condition = $7, updated_at = now()
                WHERE id = $1 RETURNING {_RULE}""",
            rule_id,
            data.name,
            data.description,
            data.severity,
            data.enabled,
            _kind(condition),
            msgspec.to_builtins(condition),
        )
        after = _rule(row)
        if not after.enabled or _kind(before.condition) != _kind(after.condition):
            reason = "rule disabled" if not after.enabled else "rule changed"
            await clear_rule_alerts(conn, rule_id, reason)
        await record(conn, who, "alert_rule.update", "alert_rule", rule_id, before=before, after=after, address=address)
    return after


async def delete_rule(conn: asyncpg.Connection, who: Principal, rule_id: int, address: str) -> None:
    async with conn.transaction():
        before = await get_rule(conn, rule_id)
        await clear_rule_alerts(conn, rule_id, "rule deleted")
        await conn.execute("DELETE FROM alert_rules WHERE id = $1", rule_id)
        await record(conn, who, "alert_rule.delete", "alert_rule", rule_id, before=before, address=address)


async def clear_rule_alerts(conn: asyncpg.Connection, rule_id: int, reason: str) -> int:
    rows = await conn.fetch("SELECT id FROM alerts WHERE rule_id = $1 AND state = 'active'", rule_id)
    for row in rows:
        await clear_alert(conn, row["id"], None, reason)
    return len(rows)


# -- channels -------------------------------------------------------------------------------------

_CHANNEL = (
    "id, name, enabled, target, min_severity, send_on, rule_ids, alarm_events, max_attempts, "
    "created_by, created_at, updated_at"
)


def _channel(row: Mapping[str, Any]) -> Channel:
    return Channel(
        id=row["id"],
        name=row["name"],
        enabled=row["enabled"],
        target=msgspec.convert(row["target"], Webhook),
        min_severity=row["min_severity"],
        send_on=list(row["send_on"]),
        rule_ids=list(row["rule_ids"]) if row["rule_ids"] is not None else None,
        alarm_events=row["alarm_events"],
        max_attempts=row["max_attempts"],
        created_by=row["created_by"],
        created_at=row["created_at"],
        updated_at=row["updated_at"],
    )


def check_target(target: Webhook) -> None:
    """URL and headers must be valid and carry no secret (those belong in a stored credential)."""
    problems = [FieldProblem(f"target{p.path[1:]}", f"{p.message} ({p.hint})") for p in url_problems(target.url)]
    auth_header = target.auth_header.strip().lower()
    if target.credential is not None and not _HEADER_NAME.match(target.auth_header):
        problems.append(FieldProblem("target.auth_header", f"{target.auth_header!r} is not a valid header name"))
    for name, value in target.headers.items():
        field = f"target.headers[{name!r}]"
        if not _HEADER_NAME.match(name):
            problems.append(FieldProblem(field, f"{name!r} is not a valid header name"))
        elif is_sensitive_name(name):
            problems.append(
                FieldProblem(field, f"header {name!r} would hold a secret in plain text; use a stored credential")
            )
        elif target.credential is not None and name.lower() == auth_header:
            problems.append(FieldProblem(field, f"header {name!r} is also set from the credential"))
        if any(c in value for c in "\r\n\0"):
            problems.append(FieldProblem(field, f"the value of header {name!r} contains a line break"))
    if problems:
        raise ApiError(400, "invalid_request", "; ".join(p.message for p in problems), details=problems)


async def _check_references(conn: asyncpg.Connection, target: Webhook | None, rule_ids: list[int] | None) -> None:
    if target is not None and target.credential is not None:
        exists = await conn.fetchval("SELECT 1 FROM credentials WHERE id = $1", target.credential)
        if not exists:
            raise ApiError(
                400,
                "invalid_request",
                f"credential {target.credential!r} does not exist",
                field="target.credential",
            )
    if rule_ids:
        found = {r["id"] for r in await conn.fetch("SELECT id FROM alert_rules WHERE id = ANY($1::bigint[])", rule_ids)}
        missing = [i for i in rule_ids if i not in found]
        if missing:
            raise ApiError(400, "invalid_request", f"no alert rule {', '.join(map(str, missing))}", field="rule_ids")


async def list_channels(conn: asyncpg.Connection) -> list[Channel]:
    return [_channel(r) for r in await conn.fetch(f"SELECT {_CHANNEL} FROM alert_channels ORDER BY lower(name)")]


async def get_channel(conn: asyncpg.Connection, channel_id: int) -> Channel:
    row = await conn.fetchrow(f"SELECT {_CHANNEL} FROM alert_channels WHERE id = $1", channel_id)
    if row is None:
        raise not_found("alert channel", channel_id)
    return _channel(row)


async def create_channel(conn: asyncpg.Connection, who: Principal, data: ChannelCreate, address: str) -> Channel:
    check_target(data.target)
    async with conn.transaction():
        await _check_references(conn, data.target, data.rule_ids)
        if await conn.fetchval("SELECT 1 FROM alert_channels WHERE name = $1", data.name):
            raise conflict(f"a channel named {data.name!r} already exists")
        row = await conn.fetchrow(
            f"""INSERT INTO alert_channels
                    (name, enabled, target, min_severity, send_on, rule_ids, alarm_events, max_attempts, created_by)
                VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) RETURNING {_CHANNEL}""",
            data.name,
            data.enabled,
            msgspec.to_builtins(data.target),
            data.min_severity,
            sorted(set(data.send_on)),
            data.rule_ids,
            data.alarm_events,
            data.max_attempts,
            who.username,
        )
        channel = _channel(row)
        await record(conn, who, "alert_channel.create", "alert_channel", channel.id, after=channel, address=address)
    return channel


async def update_channel(
    conn: asyncpg.Connection, who: Principal, channel_id: int, data: ChannelUpdate, address: str
) -> Channel:
    if data.target is not None:
        check_target(data.target)
    async with conn.transaction():
        before = await get_channel(conn, channel_id)
        await _check_references(conn, data.target, data.rule_ids)
        rule_ids = None if data.clear_rule_ids else (data.rule_ids if data.rule_ids is not None else before.rule_ids)
        row = await conn.fetchrow(
            f"""UPDATE alert_channels SET name = coalesce($2, name), enabled = coalesce($3, enabled),
                       target = coalesce($4, target), min_severity = coalesce($5, min_severity),
                       send_on = coalesce($6, send_on), rule_ids = $7, alarm_events = coalesce($8, alarm_events),
                       max_attempts = coalesce($9, max_attempts), updated_at = now()
                WHERE id = $1 RETURNING {_CHANNEL}""",
            channel_id,
            data.name,
            data.enabled,
            msgspec.to_builtins(data.target) if data.target is not None else None,
            data.min_severity,
            sorted(set(data.send_on)) if data.send_on is not None else None,
            rule_ids,
            data.alarm_events,
            data.max_attempts,
        )
        after = _channel(row)
        await record(
            conn, who, "alert_channel.update", "alert_channel", channel_id, before=before, after=after, address=address
        )
    return after


async def delete_channel(conn: asyncpg.Connection, who: Principal, channel_id: int, address: str) -> None:
    async with conn.transaction():
        before = await get_channel(conn, channel_id)
        await conn.execute("DELETE FROM alert_channels WHERE id = $1", channel_id)
        await record(conn, who, "alert_channel.delete", "alert_channel", channel_id, before=before, address=address)


# -- alerts ---------------------------------------------------------------------------------------

_ALERT = (
    "id, source, rule_id, rule_name, kind, subject, title, severity, state, raised_at, value, message, "
    "cleared_at, clear_value, clear_message, acknowledged_at, acknowledged_by, ack_comment"
)


def _alert(row: Mapping[str, Any]) -> Alert:
    return Alert(**dict(row))


def rule_key(rule_id: int, subject: str) -> str:
    return f"rule:{rule_id}:{subject}"


def alarm_key(series: str, alarm: str) -> str:
    return f"alarm:{series}:{alarm}"


async def list_alerts(
    conn: asyncpg.Connection,
    *,
    state: str,
    acknowledged: bool | None,
    severity: str | None,
    rule_id: int | None,
    limit: int,
    before_id: int | None,
) -> list[Alert]:
    rows = await conn.fetch(
        f"""SELECT {_ALERT} FROM alerts
            WHERE ($1 = 'all' OR state = $1)
              AND ($2::boolean IS NULL OR (acknowledged_at IS NOT NULL) = $2)
              AND ($3::text IS NULL OR severity = $3) AND ($4::bigint IS NULL OR rule_id = $4)
              AND ($6::bigint IS NULL OR id < $6)
            ORDER BY id DESC LIMIT $5""",
        state,
        acknowledged,
        severity,
        rule_id,
        limit,
        before_id,
    )
    return [_alert(r) for r in rows]


async def get_alert(conn: asyncpg.Connection, alert_id: int) -> Alert:
    row = await conn.fetchrow(f"SELECT {_ALERT} FROM alerts WHERE id = $1", alert_id)
    if row is None:
        raise not_found("alert", alert_id)
    return _alert(row)


async def alert_detail(conn: asyncpg.Connection, alert_id: int) -> AlertDetail:
    alert = await get_alert(conn, alert_id)
    transitions = [
        Transition(at=r["at"], transition=r["transition"], by=r["by_user"], value=r["value"], message=r["message"])
        for r in await conn.fetch(
            "SELECT at, transition, by_user, value, message FROM alert_transitions WHERE alert_id = $1 ORDER BY id",
            alert_id,
        )
    ]
    return AlertDetail(
        alert=alert, transitions=transitions, notifications=await _notifications(conn, "alert_id = $1", alert_id, 1000)
    )


async def active_rule_subjects(conn: asyncpg.Connection) -> dict[int, dict[str, int]]:
    """Rule id → subject → alert id, of every active rule alert."""
    out: dict[int, dict[str, int]] = {}
    for row in await conn.fetch(
        "SELECT id, rule_id, subject FROM alerts WHERE state = 'active' AND rule_id IS NOT NULL"
    ):
        out.setdefault(row["rule_id"], {})[row["subject"]] = row["id"]
    return out


async def raise_alert(
    conn: asyncpg.Connection,
    *,
    key: str,
    source: str,
    rule: Rule | None,
    kind: str,
    subject: str,
    title: str,
    severity: str,
    value: Any,
    message: str,
    at: datetime | None = None,
) -> Alert | None:
    """Raise an alert unless one is active for ``key``; returns it (None when one already was)."""
    async with conn.transaction():
        row = await conn.fetchrow(
            f"""INSERT INTO alerts (key, source, rule_id, rule_name, kind, subject, title, severity, raised_at,
                                    value, message)
                VALUES ($1, $2, $3, $4, $5, $6, $7, $8, coalesce($9, now()), $10, $11)
                ON CONFLICT (key) WHERE state = 'active' DO NOTHING
                RETURNING {_ALERT}""",
            key,
            source,
            rule.id if rule else None,
            rule.name if rule else "",
            kind,
            subject,
            title,
            severity,
            at,
            value,
            message,
        )
        if row is None:
            return None
        alert = _alert(row)
        await _transition(conn, alert.id, "raised", alert.raised_at, "", value, message)
        await enqueue(conn, alert, "raise")
    return alert


async def clear_alert(
    conn: asyncpg.Connection, alert_id: int, value: Any, message: str, at: datetime | None = None
) -> Alert | None:
    """Clear an active alert; None when it was not active (already cleared by someone else)."""
    async with conn.transaction():
        row = await conn.fetchrow(
            f"""UPDATE alerts SET state = 'cleared', cleared_at = greatest(raised_at, coalesce($2, now())),
                       clear_value = $3, clear_message = $4
                WHERE id = $1 AND state = 'active' RETURNING {_ALERT}""",
            alert_id,
            at,
            value,
            message,
        )
        if row is None:
            return None
        alert = _alert(row)
        assert alert.cleared_at is not None
        await _transition(conn, alert.id, "cleared", alert.cleared_at, "", value, message)
        await enqueue(conn, alert, "clear")
    return alert


async def acknowledge(conn: asyncpg.Connection, who: Principal, alert_id: int, comment: str, address: str) -> Alert:
    async with conn.transaction():
        row = await conn.fetchrow(
            f"""UPDATE alerts SET acknowledged_at = now(), acknowledged_by = $2, ack_comment = $3
                WHERE id = $1 AND acknowledged_at IS NULL RETURNING {_ALERT}""",
            alert_id,
            who.username,
            comment,
        )
        if row is None:
            existing = await get_alert(conn, alert_id)  # 404 when it does not exist
            raise conflict(
                f"alert {alert_id} was already acknowledged by {existing.acknowledged_by}",
                acknowledged_by=existing.acknowledged_by,
            )
        alert = _alert(row)
        assert alert.acknowledged_at is not None
        await _transition(conn, alert.id, "acknowledged", alert.acknowledged_at, who.username, None, comment)
        await enqueue(conn, alert, "ack")
        await record(conn, who, "alert.acknowledge", "alert", alert_id, after={"comment": comment}, address=address)
    return alert


async def _transition(
    conn: asyncpg.Connection, alert_id: int, transition: str, at: datetime, by: str, value: Any, message: str
) -> None:
    await conn.execute(
        """INSERT INTO alert_transitions (alert_id, at, transition, by_user, value, message)
           VALUES ($1, $2, $3, $4, $5, $6)""",
        alert_id,
        at,
        transition,
        by,
        value,
        message,
    )


# -- notifications --------------------------------------------------------------------------------

_EVENT_TYPES = {"raise": "alert.raised", "clear": "alert.cleared", "ack": "alert.acknowledged", "test": "test"}


def payload(alert: Alert | None, event: str, note: str = "") -> dict[str, Any]:
    """The JSON body a webhook receives."""
    body: dict[str, Any] = {"type": _EVENT_TYPES[event], "sent_by": "proxus-hub"}
    if alert is not None:
        body["alert"] = msgspec.to_builtins(alert)
    if note:
        body["message"] = note
    return body


def wants(channel: Channel, alert: Alert, event: str) -> bool:
    """Whether a channel is to be told about this transition of this alert."""
    if not channel.enabled or event not in channel.send_on:
        return False
    if SEVERITY_RANK[alert.severity] < SEVERITY_RANK[channel.min_severity]:
        return False
    if alert.source == "alarm":
        return channel.alarm_events
    return channel.rule_ids is None or alert.rule_id in channel.rule_ids


async def enqueue(conn: asyncpg.Connection, alert: Alert, event: str) -> int:
    """Queue a notification for every channel that wants this transition (in the caller's transaction)."""
    channels = [_channel(r) for r in await conn.fetch(f"SELECT {_CHANNEL} FROM alert_channels WHERE enabled")]
    chosen = [c for c in channels if wants(c, alert, event)]
    if chosen:
        body = payload(alert, event)
        await conn.executemany(
            "INSERT INTO alert_notifications (alert_id, channel_id, event, payload) VALUES ($1, $2, $3, $4)",
            [(alert.id, c.id, event, body) for c in chosen],
        )
        await conn.execute("SELECT pg_notify('proxus_alert_notifications', '')")
    return len(chosen)


class Claimed(msgspec.Struct, frozen=True):
    id: int
    channel_id: int
    event: str
    payload: dict[str, Any]
    attempts: int


async def claim_due(conn: asyncpg.Connection, limit: int, lease_s: float) -> list[Claimed]:
    """Take up to ``limit`` due notifications for delivery; they are leased for ``lease_s`` seconds."""
    rows = await conn.fetch(
        """UPDATE alert_notifications n SET next_attempt_at = now() + make_interval(secs => $2)
           WHERE n.id IN (SELECT id FROM alert_notifications
                          WHERE state = 'pending' AND next_attempt_at <= now()
                          ORDER BY next_attempt_at, id LIMIT $1 FOR UPDATE SKIP LOCKED)
           RETURNING n.id, n.channel_id, n.event, n.payload, n.attempts""",
        limit,
        lease_s,
    )
    return [Claimed(r["id"], r["channel_id"], r["event"], r["payload"], r["attempts"]) for r in rows]


async def record_attempt(
    conn: asyncpg.Connection,
    notification_id: int,
    *,
    status: int | None,
    error: str,
    duration_ms: int,
    delivered: bool,
    give_up: bool,
    retry_in_s: float,
) -> None:
    """One delivery attempt: logged, and the notification sent, failed, or rescheduled."""
    async with conn.transaction():
        await conn.execute(
            """INSERT INTO alert_notification_attempts (notification_id, status, error, duration_ms)
               VALUES ($1, $2, $3, $4)""",
            notification_id,
            status,
            error,
            duration_ms,
        )
        await conn.execute(
            """UPDATE alert_notifications SET attempts = attempts + 1, last_error = $2,
                      state = CASE WHEN $3 THEN 'sent' WHEN $4 THEN 'failed' ELSE 'pending' END,
                      sent_at = CASE WHEN $3 THEN now() ELSE sent_at END,
                      next_attempt_at = CASE WHEN $3 OR $4 THEN next_attempt_at
                                             ELSE now() + make_interval(secs => $5) END
               WHERE id = $1""",
            notification_id,
            error,
            delivered,
            give_up,
            retry_in_s,
        )


async def release(conn: asyncpg.Connection, notification_id: int) -> None:
    """End the lease of a notification whose delivery was interrupted (it is due again at once)."""
    await conn.execute(
        "UPDATE alert_notifications SET next_attempt_at = now() WHERE id = $1 AND state = 'pending'", notification_id
    )


async def give_up(conn: asyncpg.Connection, notification_id: int, error: str) -> None:
    await conn.execute(
        "UPDATE alert_notifications SET state = 'failed', last_error = $2 WHERE id = $1", notification_id, error
    )


async def add_test_notification(conn: asyncpg.Connection, channel_id: int, body: dict[str, Any]) -> int:
    """A channel test, recorded like a notification but delivered at once by the caller (leased)."""
    notification_id: int = await conn.fetchval(
        """INSERT INTO alert_notifications (channel_id, event, payload, next_attempt_at)
           VALUES ($1, 'test', $2, now() + interval '1 hour') RETURNING id""",
        channel_id,
        body,
    )
    return notification_id


async def _notifications(conn: asyncpg.Connection, where: str, arg: Any, limit: int) -> list[Notification]:
    rows = await conn.fetch(
        f"""SELECT id, alert_id, channel_id, event, state, attempts, next_attempt_at, created_at, sent_at, last_error
            FROM alert_notifications WHERE {where} ORDER BY id DESC LIMIT {int(limit)}""",
        arg,
    )
    ids = [r["id"] for r in rows]
    attempts: dict[int, list[Attempt]] = {}
    for a in await conn.fetch(
        """SELECT notification_id, at, status, error, duration_ms FROM alert_notification_attempts
           WHERE notification_id = ANY($1::bigint[]) ORDER BY id""",
        ids,
    ):
        attempts.setdefault(a["notification_id"], []).append(
            Attempt(at=a["at"], status=a["status"], error=a["error"], duration_ms=a["duration_ms"])
        )
    return [Notification(**dict(r), attempt_log=attempts.get(r["id"], [])) for r in rows]


async def channel_notifications(conn: asyncpg.Connection, channel_id: int, limit: int) -> list[Notification]:
    await get_channel(conn, channel_id)
    return await _notifications(conn, "channel_id = $1", channel_id, limit)


# -- historian: latest values and alarm events ----------------------------------------------------


async def ensure_historian(conn: asyncpg.Connection) -> None:
    """The historian tables (created by whoever comes first), and an index for reading events by time."""
    from nodes.sink.historian import ensure_schema

    if await conn.fetchval("SELECT to_regclass('proxus_points') IS NULL OR to_regclass('proxus_events') IS NULL"):
        await ensure_schema(conn)
    await conn.execute("CREATE INDEX IF NOT EXISTS proxus_events_ts ON proxus_events (ts)")


async def latest_point(conn: asyncpg.Connection, series: str) -> tuple[datetime, float | None, str | None] | None:
    row = await conn.fetchrow(
        "SELECT ts, value, value_text FROM proxus_points WHERE series = $1 ORDER BY ts DESC LIMIT 1", series
    )
    return (row["ts"], row["value"], row["value_text"]) if row is not None else None


async def ingest_events(conn: asyncpg.Connection, lookback_s: float, batch: int = 500) -> int:
    """Alarm events from ``proxus_events`` become alerts: raise → active, clear → cleared.

    Reads events newer than the high-water mark minus ``lookback_s`` that were not seen yet, so an
    event that reaches the historian late (replayed from an edge's outbox after an outage) is still
    taken, once. Returns how many events were processed.
    """
    cursor = await conn.fetchrow("SELECT ts FROM alert_event_cursor WHERE id = 1")
    if cursor is None:
        await conn.execute(
            "INSERT INTO alert_event_cursor (id, ts) VALUES (1, now() - make_interval(secs => $1)) "
            "ON CONFLICT DO NOTHING",
            lookback_s,
        )
        cursor = await conn.fetchrow("SELECT ts FROM alert_event_cursor WHERE id = 1")
    since = cursor["ts"] - timedelta(seconds=lookback_s)
    rows = await conn.fetch(
        """SELECT e.ts, e.series, e.alarm, e.state, e.severity, e.value, e.value_text, e.message
           FROM proxus_events e
           WHERE e.ts > $1 AND NOT EXISTS (SELECT 1 FROM alert_events_seen s WHERE s.series = e.series
                                           AND s.alarm = e.alarm AND s.ts = e.ts AND s.state = e.state)
           ORDER BY e.ts, e.series, e.alarm, e.state LIMIT $2""",
        since,
        batch,
    )
    for row in rows:
        await _ingest_event(conn, row)
    if rows:
        last = rows[-1]
        await conn.execute(
            """UPDATE alert_event_cursor SET ts = $1, series = $2, alarm = $3, state = $4 WHERE id = 1 AND ts <= $1""",
            last["ts"],
            last["series"],
            last["alarm"],
            last["state"],
        )
        await conn.execute("DELETE FROM alert_events_seen WHERE ts < $1", since - timedelta(seconds=lookback_s))
    return len(rows)


async def _ingest_event(conn: asyncpg.Connection, row: Mapping[str, Any]) -> None:
    async with conn.transaction():
        fresh = await conn.fetchval(
            """INSERT INTO alert_events_seen (ts, series, alarm, state) VALUES ($1, $2, $3, $4)
               ON CONFLICT DO NOTHING RETURNING 1""",
            row["ts"],
            row["series"],
            row["alarm"],
            row["state"],
        )
        if not fresh:
            return  # another Hub process took it
        key = alarm_key(row["series"], row["alarm"])
        value = row["value"] if row["value"] is not None else row["value_text"]
        latest = await conn.fetchrow(
            "SELECT id, state, raised_at, cleared_at FROM alerts WHERE key = $1 ORDER BY id DESC LIMIT 1", key
        )
        if latest is not None and row["ts"] < max(latest["raised_at"], latest["cleared_at"] or latest["raised_at"]):
            return  # older than what the alert already shows: a late duplicate of the story
        if row["state"] == "raise":
            severity = row["severity"] if row["severity"] in SEVERITY_RANK else "warning"
            await raise_alert(
                conn,
                key=key,
                source="alarm",
                rule=None,
                kind="alarm",
                subject=row["series"],
                title=f"{row['alarm']} on {row['series']}",
                severity=severity,
                value=value,
                message=row["message"],
                at=row["ts"],
            )
        elif latest is not None and latest["state"] == "active":
            await clear_alert(conn, latest["id"], value, row["message"], at=row["ts"])
