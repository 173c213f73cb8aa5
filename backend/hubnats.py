"""The Hub's NATS link: the plans bucket (desired state), edge status, requests to edges."""

from __future__ import annotations

import contextlib
import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any

import nats
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.errors import NoRespondersError
from nats.errors import TimeoutError as NatsTimeout
from nats.js.errors import BucketNotFoundError, NotFoundError
from nats.js.kv import KeyValue

from proxus.plan import PLANS_BUCKET

log = logging.getLogger("proxus.hub.nats")

StatusHandler = Callable[[str, dict[str, Any]], Awaitable[None]]


class EdgeUnavailable(Exception):
    """The edge did not answer (offline, or no route to it)."""


class HubNats:
    def __init__(self, url: str, domain: str = "hub", user: str | None = None, password: str | None = None) -> None:
        self.url = url
        self.domain = domain
        self.user = user
        self.password = password
        self.nc: Client | None = None
        self.kv: KeyValue | None = None

    async def connect(self) -> None:
        self.nc = await nats.connect(
            self.url,
            name="proxus-hub",
            user=self.user,
            password=self.password,
            inbox_prefix=b"_INBOX_hub",
            max_reconnect_attempts=-1,
            reconnect_time_wait=1,
        )
        js = self.nc.jetstream(domain=self.domain)
        try:
            self.kv = await js.key_value(PLANS_BUCKET)
        except (BucketNotFoundError, NotFoundError):
            # Direct gets: an edge reads its own key with DIRECT.GET.KV_plans.$KV.plans.<edge>, a
            # subject per-edge permissions can scope (STREAM.MSG.GET could read any key).
            self.kv = await js.create_key_value(
                bucket=PLANS_BUCKET, history=10, max_value_size=16 * 1024 * 1024, direct=True
            )
            return
        info = await js.stream_info(f"KV_{PLANS_BUCKET}")
        if not info.config.allow_direct:
            info.config.allow_direct = True
            await js.update_stream(info.config)
            self.kv = await js.key_value(PLANS_BUCKET)

    @property
    def client(self) -> Client:
        if self.nc is None:
            raise RuntimeError("the Hub is not connected to NATS")
        return self.nc

    @property
    def plans(self) -> KeyValue:
        if self.kv is None:
            raise RuntimeError("the Hub is not connected to NATS")
        return self.kv

    async def on_status(self, handler: StatusHandler) -> None:
        async def receive(msg: Msg) -> None:
            edge = msg.subject.split(".", 1)[1]
            try:
                body = json.loads(msg.data)
            except ValueError:
                log.warning("malformed status from %s", edge)
                return
            try:
                await handler(edge, body)
            except Exception:
                log.exception("handling status from %s", edge)

        await self.client.subscribe("status.*", cb=receive)

    async def request(self, edge: str, action: str, body: dict[str, Any], timeout_s: float) -> dict[str, Any]:
        try:
            msg = await self.client.request(
                f"proxus.edge.{edge}.req.{action}", json.dumps(body).encode(), timeout=timeout_s
            )
        except (NatsTimeout, NoRespondersError, TimeoutError) as exc:
            raise EdgeUnavailable(f"edge {edge!r} did not answer within {timeout_s:g} s; is it online?") from exc
        result: dict[str, Any] = json.loads(msg.data)
        return result

    async def close(self) -> None:
        if self.nc is not None:
            with contextlib.suppress(Exception):
                await self.nc.drain()
