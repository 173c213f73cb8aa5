"""The edge's durable outbox: a JetStream stream every durable sink writes into first.

Sinks never deliver straight from the pipeline. A batch reaching a sink is appended to the
outbox (file storage, on this edge's own NATS server), and a drainer per sink reads it back and
delivers, acknowledging only after the destination took it. An outage of the destination — or
of the edge itself — therefore loses nothing; it only grows the backlog, and a full outbox
pushes back on the pipeline (publishes fail with ``discard=new``), never on memory.

Subjects: ``outbox.<edge>.<route>.<flow>.<node>`` where route is ``local`` for sinks this edge
delivers itself and ``hub`` for records the Hub sources over the leaf link (the historian).

Two streams, because the two routes need different retention:

* ``LOCAL_<edge>`` (work queue): each local sink has a durable consumer on its own subject, and a
  message disappears once its sink acknowledged it. The stream's size is the undelivered backlog.
* ``OUT_<edge>`` (limits, discard new): sourced by the Hub over the leaf link. Sourcing reads
  without acknowledging, so records stay until they age out or the Hub purges what it has
  stored; a full stream pushes back on the pipeline rather than dropping data.
"""

from __future__ import annotations

import contextlib
import itertools
import secrets
from dataclasses import dataclass
from typing import Literal

import msgspec
from nats.aio.msg import Msg
from nats.errors import TimeoutError as NatsTimeout
from nats.js import JetStreamContext
from nats.js.api import (
    AckPolicy,
    ConsumerConfig,
    DeliverPolicy,
    DiscardPolicy,
    RetentionPolicy,
    StorageType,
    StreamConfig,
)
from nats.js.errors import NotFoundError

from nodes.points import Batch, EventBatch

Route = Literal["local", "hub"]
Data = Batch | EventBatch

KIND_HEADER = "Proxus-Kind"
_encoder = msgspec.msgpack.Encoder()
_batch_decoder = msgspec.msgpack.Decoder(Batch)
_events_decoder = msgspec.msgpack.Decoder(EventBatch)


def stream_name(edge: str, route: Route = "hub") -> str:
    return f"OUT_{edge}" if route == "hub" else f"LOCAL_{edge}"


def subject(edge: str, route: Route, flow: str, node: str) -> str:
    return f"outbox.{edge}.{route}.{flow}.{node}"


def _safe_token(text: str) -> str:
    return "".join(c if c.isalnum() or c in "-_" else "_" for c in text)


def encode(data: Data) -> tuple[bytes, str]:
    return _encoder.encode(data), ("events" if isinstance(data, EventBatch) else "points")


def decode(payload: bytes, kind: str | None) -> Data:
    return _events_decoder.decode(payload) if kind == "events" else _batch_decoder.decode(payload)


@dataclass(frozen=True, slots=True)
class OutboxLimits:
    max_bytes: int = 1 << 30  # 1 GiB of backlog before the pipeline is pushed back
    max_age_s: float = 7 * 24 * 3600


class Outbox:
    """Appends batches to the edge's outbox stream and hands out per-sink readers."""

    def __init__(self, js: JetStreamContext, edge: str, limits: OutboxLimits | None = None) -> None:
        self.js = js
        self.edge = edge
        self.stream = stream_name(edge, "local")
        self.hub_stream = stream_name(edge, "hub")
        self.limits = limits or OutboxLimits()
        self._run = secrets.token_hex(4)  # message ids are unique per process run
        self._seq = itertools.count(1)

    async def ensure(self) -> None:
        for name, route, retention in (
            (self.stream, "local", RetentionPolicy.WORK_QUEUE),
            (self.hub_stream, "hub", RetentionPolicy.LIMITS),
        ):
            config = StreamConfig(
                name=name,
                subjects=[f"outbox.{self.edge}.{route}.>"],
                retention=retention,
                storage=StorageType.FILE,
                max_bytes=self.limits.max_bytes,
                max_age=self.limits.max_age_s,
                discard=DiscardPolicy.NEW,
                duplicate_window=120.0,
            )
            try:
                await self.js.stream_info(name)
                await self.js.update_stream(config)
            except NotFoundError:
                await self.js.add_stream(config)

    async def append(self, route: Route, flow: str, node: str, data: Data) -> None:
        payload, kind = encode(data)
        msg_id = f"{self.edge}:{node}:{self._run}:{next(self._seq)}"
        await self.js.publish(
            subject(self.edge, route, _safe_token(flow), _safe_token(node)),
            payload,
            stream=self.stream if route == "local" else self.hub_stream,
            headers={KIND_HEADER: kind, "Nats-Msg-Id": msg_id},
        )

    async def reader(self, flow: str, node: str, *, ack_wait_s: float = 300.0) -> OutboxReader:
        durable = f"sink_{_safe_token(flow)}_{_safe_token(node)}"
        filter_subject = subject(self.edge, "local", _safe_token(flow), _safe_token(node))
        sub = await self.js.pull_subscribe(
            filter_subject,
            durable=durable,
            stream=self.stream,
            config=ConsumerConfig(
                durable_name=durable,
                ack_policy=AckPolicy.EXPLICIT,
                deliver_policy=DeliverPolicy.ALL,
                ack_wait=ack_wait_s,
                max_ack_pending=10_000,
                filter_subject=filter_subject,
            ),
        )
        return OutboxReader(self, sub, durable)

    async def depth(self) -> int:
        """Batches appended by local sinks and not yet delivered (the work queue keeps nothing else)."""
        try:
            info = await self.js.stream_info(self.stream)
        except NotFoundError:
            return 0
        return info.state.messages

    async def hub_backlog(self) -> int:
        """Batches held for the Hub (kept until purged by the Hub or aged out)."""
        try:
            info = await self.js.stream_info(self.hub_stream)
        except NotFoundError:
            return 0
        return info.state.messages

    async def delete_reader(self, durable: str) -> None:
        with contextlib.suppress(NotFoundError):
            await self.js.delete_consumer(self.stream, durable)


class OutboxReader:
    """One sink's view of its outbox subject."""

    def __init__(self, outbox: Outbox, sub: JetStreamContext.PullSubscription, durable: str) -> None:
        self.outbox = outbox
        self.sub = sub
        self.durable = durable

    async def fetch(self, max_messages: int, timeout_s: float) -> list[Msg]:
        try:
            return await self.sub.fetch(batch=max_messages, timeout=timeout_s)
        except NatsTimeout:
            return []

    async def pending(self) -> int:
        info = await self.sub.consumer_info()
        return (info.num_pending or 0) + (info.num_ack_pending or 0)

    async def close(self) -> None:
        await self.sub.unsubscribe()


def merge(messages: list[Msg]) -> list[tuple[Data, list[Msg]]]:
    """Decode messages and merge consecutive ones of the same kind into one batch each."""
    out: list[tuple[Data, list[Msg]]] = []
    for msg in messages:
        data = decode(msg.data, (msg.headers or {}).get(KIND_HEADER))
        if out and type(out[-1][0]) is type(data):
            last, msgs = out[-1]
            if isinstance(last, Batch) and isinstance(data, Batch):
                last.extend(data)
            elif isinstance(last, EventBatch) and isinstance(data, EventBatch):
                last.events.extend(data.events)
            msgs.append(msg)
        else:
            out.append((data, [msg]))
    return out
