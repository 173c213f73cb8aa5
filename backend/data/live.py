"""Live updates for browsers (Server-Sent Events): latest values, debug taps, edge status, deployments.

Topics a client asks for (``GET /api/live?topics=...``, comma separated or repeated):

* ``latest:<series>`` — each new value of a series, as the historian writer commits it (taken
  from the writer's batches in memory, no database polling); the current value first;
* ``debug:<edge>/<flow>/<node>`` — the debug messages a node publishes on
  ``proxus.debug.<edge>.<flow>.<node>``. The first subscriber to a node subscribes the Hub to that
  subject and sends the edge its new tap set (``proxus.edge.<edge>.req.taps``); the last one
  leaving unsubscribes and updates the taps again. Taps are re-sent when an edge restarts;
* ``edges`` (every edge) or ``edge:<id>`` — edge status messages (``status.<edge>``);
* ``deploy`` (every flow) or ``deploy:<flow>`` — deployment progress (``app.state.deploy_events``).

Every client has a bounded queue; when it is full the oldest event is dropped and counted, and the
client is told with a ``dropped`` event. The Hub never waits for a slow browser.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import re
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

import msgspec
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription as NatsSubscription

from backend.data.historian import SeriesSummary
from backend.errors import ApiError
from nodes.points import QUALITY_NAMES

log = logging.getLogger("proxus.hub.live")

MAX_TOPICS = 200
TOKEN = re.compile(r"^[A-Za-z0-9_-]{1,128}$")
KEEPALIVE_S = 15.0


@dataclass(frozen=True)
class Topic:
    kind: str  # latest | debug | edges | edge | deploy
    key: str = ""  # series; "edge/flow/node"; edge id; flow id

    @property
    def name(self) -> str:
        return f"{self.kind}:{self.key}" if self.key else self.kind


def parse_topics(values: Iterable[str]) -> list[Topic]:
    """Parse ``topics`` (each value comma separated); 400 naming the bad topic."""
    topics: list[Topic] = []
    for value in values:
        for raw in value.split(","):
            text = raw.strip()
            if not text:
                continue
            kind, _, key = text.partition(":")
            if kind in ("edges", "deploy") and not key:
                topics.append(Topic(kind))
            elif kind == "latest" and 0 < len(key) <= 512:
                topics.append(Topic("latest", key))
            elif kind == "debug" and len(parts := key.split("/")) == 3 and all(TOKEN.match(p) for p in parts):
                topics.append(Topic("debug", key))
            elif kind in ("edge", "deploy") and TOKEN.match(key):
                topics.append(Topic(kind, key))
            else:
                raise ApiError(
                    400,
                    "invalid_request",
                    f"topics: {text!r} is not a topic (latest:<series>, debug:<edge>/<flow>/<node>, edges, "
                    "edge:<id>, deploy, deploy:<flow>)",
                    field="topics",
                )
    topics = list(dict.fromkeys(topics))
    if not topics:
        raise ApiError(400, "invalid_request", "topics: give at least one topic", field="topics")
    if len(topics) > MAX_TOPICS:
        raise ApiError(400, "invalid_request", f"topics: at most {MAX_TOPICS} per connection", field="topics")
    return topics


@dataclass(frozen=True)
class LiveEvent:
    event: str
    data: bytes


class LiveClient:
    """One browser connection: its topics and a bounded queue (oldest dropped when full)."""

    def __init__(self, topics: list[Topic], maxsize: int) -> None:
        self.topics = topics
        self.queue: asyncio.Queue[LiveEvent] = asyncio.Queue(maxsize=maxsize)
        self.dropped = 0
        self.reported_dropped = 0

    def offer(self, event: LiveEvent) -> None:
        if self.queue.full():
            with contextlib.suppress(asyncio.QueueEmpty):
                self.queue.get_nowait()
                self.dropped += 1
        self.queue.put_nowait(event)

    async def next(self, timeout: float) -> LiveEvent | None:
        if self.dropped > self.reported_dropped:
            total, self.reported_dropped = self.dropped, self.dropped
            return LiveEvent("dropped", msgspec.json.encode({"dropped": total}))
        try:
            return await asyncio.wait_for(self.queue.get(), timeout)
        except TimeoutError:
            return None


class DeploySubscription(Protocol):
    dropped: int

    async def get(self, timeout: float | None = None) -> Any: ...

    def close(self) -> None: ...


class DeployEventSource(Protocol):
    """What ``app.state.deploy_events`` offers (backend.deploy.events.DeployEvents)."""

    def subscribe(
        self, *, flow_id: str | None = None, deployment_id: int | None = None, maxsize: int = 1000
    ) -> Any: ...


# Sends the edge its tap set: (edge, {"taps": [{"flow", "node"}, ...]}) -> reply.
TapSender = Callable[[str, dict[str, Any]], Awaitable[dict[str, Any]]]


@dataclass
class EdgeTaps:
    nodes: dict[tuple[str, str], int] = field(default_factory=dict)  # (flow, node) -> subscribers
    sent: frozenset[tuple[str, str]] | None = None  # what the edge last confirmed
    uptime_s: float = 0.0
    dirty: bool = False
    task: asyncio.Task[None] | None = None


def _iso(ts_us: int) -> str:
    return datetime.fromtimestamp(ts_us / 1e6, UTC).isoformat().replace("+00:00", "Z")


class LiveHub:
    """Fans live events out to connected clients; owns the NATS debug subscriptions."""

    def __init__(
        self,
        nc: Client | None,
        *,
        send_taps: TapSender | None = None,
        queue_size: int = 1000,
        deploy_events: DeployEventSource | None = None,
    ) -> None:
        self.nc = nc
        self.send_taps = send_taps
        self.queue_size = queue_size
        self.deploy_events = deploy_events
        self.clients: dict[Topic, set[LiveClient]] = {}
        self.debug_subs: dict[str, NatsSubscription] = {}  # "edge/flow/node" -> subscription
        self.taps: dict[str, EdgeTaps] = {}
        self._lock = asyncio.Lock()
        self._deploy_task: asyncio.Task[None] | None = None
        self._tap_tasks: set[asyncio.Task[None]] = set()

    # -- clients --------------------------------------------------------------------------------

    @property
    def client_count(self) -> int:
        return len({c for clients in self.clients.values() for c in clients})

    async def connect(self, topics: list[Topic]) -> LiveClient:
        client = LiveClient(topics, self.queue_size)
        async with self._lock:
            for topic in topics:
                first = topic not in self.clients or not self.clients[topic]
                self.clients.setdefault(topic, set()).add(client)
                if topic.kind == "debug" and first:
                    await self._start_debug(topic.key)
            if any(t.kind == "deploy" for t in topics):
                self._ensure_deploy_pump()
        return client

    def disconnect(self, client: LiveClient) -> None:
        """Forget a client (synchronous: it runs while the client's request is being cancelled).

        NATS subscriptions nobody needs any more are dropped by a task of their own.
        """
        idle: list[str] = []
        for topic in client.topics:
            clients = self.clients.get(topic)
            if clients is None:
                continue
            clients.discard(client)
            if not clients:
                del self.clients[topic]
                if topic.kind == "debug":
                    idle.append(topic.key)
        if idle:
            task = asyncio.create_task(self._release_debug(idle), name="live-release-debug")
            self._tap_tasks.add(task)
            task.add_done_callback(self._tap_tasks.discard)

    async def _release_debug(self, keys: list[str]) -> None:
        async with self._lock:
            for key in keys:
                if Topic("debug", key) not in self.clients:  # nobody came back meanwhile
                    await self._stop_debug(key)

    def publish(self, topic: Topic, event: str, data: bytes) -> int:
        clients = self.clients.get(topic)
        if not clients:
            return 0
        item = LiveEvent(event, data)
        for client in list(clients):
            client.offer(item)
        return len(clients)

    async def stream(self, client: LiveClient, keepalive_s: float = KEEPALIVE_S) -> AsyncIterator[LiveEvent | None]:
        """The client's events; None every ``keepalive_s`` without one (send a comment)."""
        try:
            while True:
                yield await client.next(keepalive_s)
        finally:
            self.disconnect(client)

    async def close(self) -> None:
        if self._deploy_task is not None:
            self._deploy_task.cancel()
            with contextlib.suppress(BaseException):
                await self._deploy_task
        for task in list(self._tap_tasks):
            task.cancel()
        for sub in list(self.debug_subs.values()):
            with contextlib.suppress(Exception):
                await sub.unsubscribe()
        self.debug_subs.clear()

    # -- latest values --------------------------------------------------------------------------

    def on_summary(self, rows: list[SeriesSummary]) -> None:
        """Historian listener: the last value of each series in a committed group."""
        if not any(t.kind == "latest" for t in self.clients):
            return
        for series, _first, last_us, _count, value, value_text, quality in rows:
            topic = Topic("latest", series)
            if topic in self.clients:
                body = {
                    "series": series,
                    "ts": _iso(last_us),
                    "value": value_text if value_text is not None else value,
                    "quality": QUALITY_NAMES[quality] if 0 <= quality < 3 else "bad",
                }
                self.publish(topic, "latest", msgspec.json.encode(body))

    # -- edge status ----------------------------------------------------------------------------

    async def on_status(self, edge: str, body: dict[str, Any]) -> None:
        """Status listener: relay to ``edges`` / ``edge:<id>``; re-send taps to a restarted edge."""
        if Topic("edges") in self.clients or Topic("edge", edge) in self.clients:
            data = msgspec.json.encode({"edge": edge, "status": body})
            self.publish(Topic("edges"), "edge", data)
            self.publish(Topic("edge", edge), "edge", data)
        taps = self.taps.get(edge)
        if taps is not None and body.get("kind") == "heartbeat":
            uptime = float(body.get("uptime_s") or 0.0)
            restarted = uptime < taps.uptime_s
            taps.uptime_s = uptime
            if restarted or taps.sent != frozenset(taps.nodes):
                self._schedule_taps(edge)

    # -- deployments ----------------------------------------------------------------------------

    def _ensure_deploy_pump(self) -> None:
        if self.deploy_events is None or (self._deploy_task is not None and not self._deploy_task.done()):
            return
        self._deploy_task = asyncio.create_task(self._pump_deploy(self.deploy_events), name="live-deploy")

    async def _pump_deploy(self, source: DeployEventSource) -> None:
        subscription: DeploySubscription = source.subscribe(maxsize=self.queue_size)
        try:
            while True:
                event = await subscription.get()
                if event is None:
                    continue
                self.on_deploy(event)
        finally:
            subscription.close()

    def on_deploy(self, event: Any) -> None:
        data = msgspec.json.encode(event)
        flow = getattr(event, "flow_id", None)
        if flow is None and isinstance(event, dict):
            flow = event.get("flow_id")
        self.publish(Topic("deploy"), "deploy", data)
        if flow:
            self.publish(Topic("deploy", str(flow)), "deploy", data)

    # -- debug taps -----------------------------------------------------------------------------

    async def _start_debug(self, key: str) -> None:
        edge, flow, node = key.split("/")
        if self.nc is not None and key not in self.debug_subs:
            topic = Topic("debug", key)

            async def relay(msg: Msg) -> None:
                try:
                    message = json.loads(msg.data)
                except ValueError:
                    return
                self.publish(
                    topic, "debug", msgspec.json.encode({"edge": edge, "flow": flow, "node": node, "message": message})
                )

            self.debug_subs[key] = await self.nc.subscribe(f"proxus.debug.{edge}.{flow}.{node}", cb=relay)
        taps = self.taps.setdefault(edge, EdgeTaps())
        taps.nodes[(flow, node)] = taps.nodes.get((flow, node), 0) + 1
        self._schedule_taps(edge)

    async def _stop_debug(self, key: str) -> None:
        edge, flow, node = key.split("/")
        sub = self.debug_subs.pop(key, None)
        if sub is not None:
            with contextlib.suppress(Exception):
                await sub.unsubscribe()
        taps = self.taps.get(edge)
        if taps is not None:
            taps.nodes.pop((flow, node), None)
            self._schedule_taps(edge)

    def _schedule_taps(self, edge: str) -> None:
        """Send the edge its tap set; one sender per edge, so sets never arrive out of order."""
        taps = self.taps.get(edge)
        if taps is None or self.send_taps is None:
            return
        taps.dirty = True
        if taps.task is None or taps.task.done():
            taps.task = asyncio.create_task(self._taps_sender(edge, taps), name=f"live-taps-{edge}")
            self._tap_tasks.add(taps.task)
            taps.task.add_done_callback(self._tap_tasks.discard)

    async def _taps_sender(self, edge: str, taps: EdgeTaps) -> None:
        while taps.dirty and self.send_taps is not None:
            taps.dirty = False
            wanted = frozenset(taps.nodes)
            body = {"taps": [{"flow": f, "node": n} for f, n in sorted(wanted)]}
            try:
                reply = await self.send_taps(edge, body)
            except Exception as exc:  # offline edge: re-sent with its next heartbeat
                log.info("taps for edge %s not delivered: %s", edge, exc)
                taps.sent = None
                continue
            taps.sent = wanted if reply.get("ok", True) else None
        if not taps.nodes and taps.sent == frozenset() and self.taps.get(edge) is taps:
            del self.taps[edge]
