"""The alert engine: the rule evaluator and the notification sender (background tasks of the Hub).

Evaluator: every ``evaluation_interval_s`` (``EVALUATION_INTERVAL_S``, or ``app.state.alert_interval_s``
when set) each enabled rule is observed -- status rules against the :class:`Monitor` fed by the
edges' status messages, series thresholds against the historian -- and alerts are raised (once the
condition held for the rule's ``for_s``) or cleared; then new alarm events are taken from the
historian's ``proxus_events``.

Sender: notifications wait in the ``alert_notifications`` table (durable: a Hub restart loses
nothing). Due ones are leased, posted, and each attempt recorded; failures are retried with
exponential backoff (``BACKOFF_BASE_S`` · 2^(n-1), at most ``BACKOFF_MAX_S``; ``app.state.alert_backoff_s``
overrides the base) until the channel's ``max_attempts``. 4xx answers other than 408/425/429 are not
retried. Receivers get an ``X-Proxus-Notification`` header to drop the rare duplicate (a Hub that
stops between sending and recording sends again after the lease expires).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import logging
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import asyncpg  # type: ignore[import-untyped, unused-ignore]
import httpx
import msgspec
from litestar import Litestar

from backend.alerts import service
from backend.alerts.monitor import Monitor, Observation
from backend.alerts.schemas import ChannelTest, EdgeOffline, Rule, SeriesThreshold, Webhook
from backend.auth.principal import Principal

log = logging.getLogger("proxus.hub.alerts")

EVALUATION_INTERVAL_S = 2.0
EVENT_LOOKBACK_S = 6 * 3600.0  # alarm events reaching the historian this late are still taken
DELIVERY_POLL_S = 1.0
DELIVERY_BATCH = 10
LEASE_S = 90.0  # longer than the longest attempt (timeout_ms ≤ 60 s)
BACKOFF_BASE_S = 2.0
BACKOFF_MAX_S = 600.0
_RETRYABLE_4XX = frozenset({408, 425, 429})


@dataclass(frozen=True, slots=True)
class SendResult:
    ok: bool
    status: int | None
    error: str
    duration_ms: int
    permanent: bool = False


def backoff_s(attempts: int, base: float) -> float:
    """Pause before the next attempt after ``attempts`` failed ones."""
    return float(min(BACKOFF_MAX_S, base * 2 ** max(0, attempts - 1)))


class AlertEngine:
    def __init__(self, app: Litestar) -> None:
        self.app = app
        self.state = app.state
        self.monitor = Monitor()
        self.pending: dict[str, float] = {}  # rule alert key → when its condition started to hold
        self.client = httpx.AsyncClient(follow_redirects=False)

    @property
    def interval_s(self) -> float:
        return float(getattr(self.state, "alert_interval_s", EVALUATION_INTERVAL_S))

    @property
    def backoff_base_s(self) -> float:
        return float(getattr(self.state, "alert_backoff_s", BACKOFF_BASE_S))

    async def close(self) -> None:
        await self.client.aclose()

    # -- evaluation ------------------------------------------------------------------------------

    async def run_evaluator(self) -> None:
        while True:
            try:
                await self.evaluate_once()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("evaluating alert rules")
            await asyncio.sleep(self.interval_s)

    async def evaluate_once(self) -> None:
        async with self.state.pool.acquire() as conn:
            rules = await service.enabled_rules(conn)
            active = await service.active_rule_subjects(conn)
            known = await _registered_edges(conn) if any(isinstance(r.condition, EdgeOffline) for r in rules) else set()
            now = time.monotonic()
            stale_after_s = max(float(self.state.settings.offline_after_s), 3 * self.interval_s)
            seen: set[str] = set()
            for rule in rules:
                subjects = active.get(rule.id, {})
                try:
                    if isinstance(rule.condition, SeriesThreshold):
                        observations = await self._series(conn, rule.condition, subjects)
                    else:
                        observations = self.monitor.observe(
                            rule.condition, now=now, active=subjects, stale_after_s=stale_after_s, known_edges=known
                        )
                    seen |= await self._apply(conn, rule, observations, subjects, now)
                except (asyncpg.PostgresError, OSError):
                    raise
                except Exception:  # one broken rule does not stop the others
                    log.exception("evaluating alert rule %s (%s)", rule.id, rule.name)
            for rule_id in set(active) - {r.id for r in rules}:  # disabled or deleted meanwhile
                await service.clear_rule_alerts(conn, rule_id, "rule disabled")
            for key in set(self.pending) - seen:
                del self.pending[key]
            await service.ingest_events(conn, EVENT_LOOKBACK_S)

    async def _apply(
        self,
        conn: asyncpg.Connection,
        rule: Rule,
        observations: dict[str, Observation],
        active: dict[str, int],
        now: float,
    ) -> set[str]:
        keys: set[str] = set()
        for_s = 0.0 if isinstance(rule.condition, EdgeOffline) else float(getattr(rule.condition, "for_s", 0.0))
        for subject, seen in observations.items():
            key = service.rule_key(rule.id, subject)
            if seen.holds is None:
                if key in self.pending:
                    keys.add(key)
                continue
            alert_id = active.get(subject)
            if not seen.holds:
                self.pending.pop(key, None)
                if alert_id is not None:
                    await service.clear_alert(conn, alert_id, seen.value, seen.message or "back to normal")
                continue
            if alert_id is not None:
                continue
            keys.add(key)
            start = seen.since if seen.since is not None else self.pending.get(key, now)
            self.pending[key] = start
            if now - start >= for_s:
                raised = await service.raise_alert(
                    conn,
                    key=key,
                    source="rule",
                    rule=rule,
                    kind=service_kind(rule),
                    subject=subject,
                    title=seen.title or rule.name,
                    severity=rule.severity,
                    value=seen.value,
                    message=seen.message,
                )
                self.pending.pop(key, None)
                if raised is not None:
                    log.info("alert %s raised: %s", raised.id, raised.title)
        return keys

    async def _series(
        self, conn: asyncpg.Connection, c: SeriesThreshold, active: dict[str, int]
    ) -> dict[str, Observation]:
        latest = await service.latest_point(conn, c.series)
        if latest is None:
            return {c.series: Observation(None, "")}
        ts, value, _text = latest
        age = (datetime.now(UTC) - ts).total_seconds()
        if value is None or (c.max_age_s is not None and age > c.max_age_s):
            return {c.series: Observation(None, "")}
        is_active = c.series in active
        limit_hi = c.above - c.hysteresis if (is_active and c.above is not None) else c.above
        limit_lo = c.below + c.hysteresis if (is_active and c.below is not None) else c.below
        high = limit_hi is not None and value > limit_hi
        low = limit_lo is not None and value < limit_lo
        limits = " or ".join(
            ([f"above {c.above:g}"] if c.above is not None else [])
            + ([f"below {c.below:g}"] if c.below is not None else [])
        )
        if high:
            message = f"{c.series} = {value:g}, above {c.above:g}"
        elif low:
            message = f"{c.series} = {value:g}, below {c.below:g}"
        else:
            message = f"{c.series} = {value:g}, within limits"
        return {
            c.series: Observation(
                holds=high or low,
                title=f"{c.series} {limits}",
                value={"value": value, "ts": ts.isoformat()},
                message=message,
            )
        }

    # -- delivery --------------------------------------------------------------------------------

    async def run_delivery(self) -> None:
        while True:
            try:
                delivered = await self.deliver_due()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("delivering alert notifications")
                delivered = 0
            if not delivered:
                await asyncio.sleep(min(DELIVERY_POLL_S, self.interval_s))

    async def deliver_due(self) -> int:
        async with self.state.pool.acquire() as conn:
            claimed = await service.claim_due(conn, DELIVERY_BATCH, LEASE_S)
        if claimed:
            await asyncio.gather(*(self._deliver(n) for n in claimed))
        return len(claimed)

    async def _deliver(self, item: service.Claimed) -> None:
        try:
            async with self.state.pool.acquire() as conn:
                row = await conn.fetchrow(
                    "SELECT enabled, target, max_attempts FROM alert_channels WHERE id = $1", item.channel_id
                )
                if row is None:
                    return  # the channel was deleted, and its notifications with it
                if not row["enabled"]:
                    await service.give_up(conn, item.id, "the channel is disabled")
                    return
                target = msgspec.convert(row["target"], Webhook)
                auth = await self._auth(conn, target)
            if isinstance(auth, SendResult):
                result = auth
            else:
                result = await self.send(target, item.payload, item.id, item.event, auth)
            attempts = item.attempts + 1
            stop = not result.ok and (result.permanent or attempts >= row["max_attempts"])
            async with self.state.pool.acquire() as conn:
                await service.record_attempt(
                    conn,
                    item.id,
                    status=result.status,
                    error=result.error,
                    duration_ms=result.duration_ms,
                    delivered=result.ok,
                    give_up=stop,
                    retry_in_s=backoff_s(attempts, self.backoff_base_s),
                )
            if not result.ok:
                log.warning(
                    "notification %s to channel %s: attempt %s failed (%s)%s",
                    item.id,
                    item.channel_id,
                    attempts,
                    result.error,
                    "; giving up" if stop else "",
                )
        except asyncio.CancelledError:
            # The Hub is stopping mid-delivery: give the lease back so the next start retries at once.
            with contextlib.suppress(Exception):
                await asyncio.shield(self._release(item.id))
            raise
        except Exception:
            log.exception("delivering notification %s", item.id)

    async def _release(self, notification_id: int) -> None:
        async with self.state.pool.acquire() as conn:
            await service.release(conn, notification_id)

    async def _auth(self, conn: asyncpg.Connection, target: Webhook) -> dict[str, str] | SendResult:
        """The auth header from the stored credential (decrypted only here, never stored elsewhere)."""
        if target.credential is None:
            return {}
        from backend.credentials.service import get_decrypted

        try:
            cred = await get_decrypted(conn, self.state.box, target.credential)
        except ValueError as exc:
            return SendResult(False, None, str(exc), 0, permanent=True)
        if cred is None:
            return SendResult(False, None, f"credential {target.credential!r} does not exist", 0, permanent=True)
        if target.auth_scheme == "bearer":
            value = f"Bearer {cred.secret}"
        elif target.auth_scheme == "basic":
            value = "Basic " + base64.b64encode(f"{cred.username}:{cred.secret}".encode()).decode()
        else:
            value = cred.secret
        return {target.auth_header: value}

    async def send(
        self, target: Webhook, body: dict[str, Any], notification_id: int, event: str, auth: dict[str, str]
    ) -> SendResult:
        headers = {
            **target.headers,
            **auth,
            "Content-Type": "application/json",
            "User-Agent": "Proxus-Hub",
            "X-Proxus-Event": str(body.get("type", event)),
            "X-Proxus-Notification": str(notification_id),
        }
        started = time.monotonic()
        try:
            response = await self.client.post(
                target.url, content=msgspec.json.encode(body), headers=headers, timeout=target.timeout_ms / 1000
            )
        except httpx.HTTPError as exc:
            reason = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
            return SendResult(False, None, reason, _ms(started))
        status = response.status_code
        if 200 <= status < 300:
            return SendResult(True, status, "", _ms(started))
        detail = f"{status} {response.reason_phrase}: {response.text[:200]}".strip()
        permanent = 400 <= status < 500 and status not in _RETRYABLE_4XX
        return SendResult(False, status, detail, _ms(started), permanent=permanent)

    async def test_channel(
        self, conn: asyncpg.Connection, who: Principal, channel_id: int, address: str
    ) -> ChannelTest:
        channel = await service.get_channel(conn, channel_id)
        body = service.payload(None, "test", f"Test message from Proxus, sent by {who.username}")
        body["channel"] = {"id": channel.id, "name": channel.name}
        notification_id = await service.add_test_notification(conn, channel.id, body)
        auth = await self._auth(conn, channel.target)
        result = (
            auth
            if isinstance(auth, SendResult)
            else await self.send(channel.target, body, notification_id, "test", auth)
        )
        await service.record_attempt(
            conn,
            notification_id,
            status=result.status,
            error=result.error,
            duration_ms=result.duration_ms,
            delivered=result.ok,
            give_up=not result.ok,
            retry_in_s=0,
        )
        from backend.audit.service import record

        await record(
            conn, who, "alert_channel.test", "alert_channel", channel_id, after={"ok": result.ok}, address=address
        )
        return ChannelTest(
            ok=result.ok,
            status=result.status,
            error=result.error,
            duration_ms=result.duration_ms,
            notification_id=notification_id,
        )


def _ms(started: float) -> int:
    return int((time.monotonic() - started) * 1000)


def service_kind(rule: Rule) -> str:
    kind: str = msgspec.to_builtins(rule.condition)["kind"]
    return kind


async def _registered_edges(conn: asyncpg.Connection) -> set[str]:
    """Edges registered with the Hub (the edges domain), for rules about every edge."""
    try:
        from backend.edges.service import edge_ids
    except ImportError:
        return set()
    return await edge_ids(conn)
