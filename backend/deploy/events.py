"""Live deployment progress: an in-process broadcaster of every per-edge status change.

``app.state.deploy_events`` is a :class:`DeployEvents`. Whoever streams progress to browsers (SSE)
subscribes; the deploy domain publishes. Publishing never blocks and never fails: each subscriber
has a bounded queue, and a subscriber that falls behind loses its *oldest* events (counted in
``Subscription.dropped``) rather than slowing deploys down. Events are msgspec Structs
(``msgspec.json.encode(event)`` is the SSE ``data:`` line).

Usage (in an async handler)::

    async with state.deploy_events.subscribe(flow_id="line-3") as events:
        async for event in events:          # DeployEvent, forever (until the block is left)
            yield msgspec.json.encode(event)

    # or with a timeout, e.g. to interleave keep-alives:
    event = await subscription.get(timeout=15.0)   # None on timeout

Events, per edge of a deployment, in order: ``pending`` when the deployment is recorded (or
``failed`` when the Hub could not write the edge's desired state), then ``applied`` (with the hash the
edge runs), ``failed`` (with the edge's error), ``removed`` (undeploy, or the flow moved off the
edge) or ``superseded`` (a newer deployment of the same flow replaced a pending one).
``deployment_state`` summarises all edges of the deployment after the change.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from datetime import datetime
from types import TracebackType
from typing import Literal

import msgspec

EdgeState = Literal["pending", "applied", "failed", "removed", "superseded"]
DeploymentState = Literal["pending", "applied", "failed", "removed", "superseded"]


class DeployEvent(msgspec.Struct, frozen=True, kw_only=True):
    """One edge of one deployment changed state."""

    kind: Literal["deploy.edge"] = "deploy.edge"
    deployment_id: int
    flow_id: str
    version: int | None  # None for an undeploy
    action: str  # deploy | undeploy | redeploy
    edge: str
    edge_action: Literal["apply", "remove"]
    state: EdgeState
    hash: str  # the plan hash (apply); "" for a removal
    error: str
    deployment_state: DeploymentState  # summary over all the deployment's edges after this change
    at: datetime


class Subscription:
    """A subscriber's bounded queue of events; async-iterable; close it (or use ``async with``)."""

    def __init__(self, hub: DeployEvents, flow_id: str | None, deployment_id: int | None, maxsize: int) -> None:
        self._hub = hub
        self.flow_id = flow_id
        self.deployment_id = deployment_id
        self._queue: asyncio.Queue[DeployEvent] = asyncio.Queue(maxsize=maxsize)
        self._loop = asyncio.get_running_loop()  # the subscriber's loop: events are delivered in it
        self.dropped = 0
        self.closed = False

    def wants(self, event: DeployEvent) -> bool:
        return (self.flow_id is None or event.flow_id == self.flow_id) and (
            self.deployment_id is None or event.deployment_id == self.deployment_id
        )

    def _deliver(self, event: DeployEvent) -> None:
        """Queue ``event`` from any thread (a test client runs the app in a thread of its own)."""
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is self._loop:
            self._offer(event)
        elif not self._loop.is_closed():
            self._loop.call_soon_threadsafe(self._offer, event)

    def _offer(self, event: DeployEvent) -> None:
        if self._queue.full():
            with contextlib.suppress(asyncio.QueueEmpty):
                self._queue.get_nowait()
                self.dropped += 1
        self._queue.put_nowait(event)

    async def get(self, timeout: float | None = None) -> DeployEvent | None:
        """The next event; None when ``timeout`` seconds pass without one."""
        if timeout is None:
            return await self._queue.get()
        try:
            return await asyncio.wait_for(self._queue.get(), timeout)
        except TimeoutError:
            return None

    def pending(self) -> int:
        return self._queue.qsize()

    def close(self) -> None:
        self.closed = True
        self._hub._remove(self)

    def __aiter__(self) -> AsyncIterator[DeployEvent]:
        return self._iterate()

    async def _iterate(self) -> AsyncIterator[DeployEvent]:
        while not self.closed:
            yield await self._queue.get()

    async def __aenter__(self) -> Subscription:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


class DeployEvents:
    """The broadcaster at ``app.state.deploy_events``."""

    def __init__(self) -> None:
        self._subscribers: set[Subscription] = set()

    def subscribe(
        self, *, flow_id: str | None = None, deployment_id: int | None = None, maxsize: int = 1000
    ) -> Subscription:
        """Receive every event published from now on (optionally only one flow's or deployment's).

        Call it in the event loop that will read the events (publishing may happen in another).
        """
        subscription = Subscription(self, flow_id, deployment_id, maxsize)
        self._subscribers.add(subscription)
        return subscription

    def publish(self, event: DeployEvent) -> None:
        """Hand ``event`` to every interested subscriber (synchronous, never blocks)."""
        for subscription in list(self._subscribers):
            if subscription.wants(event):
                subscription._deliver(event)

    @property
    def subscribers(self) -> int:
        return len(self._subscribers)

    def _remove(self, subscription: Subscription) -> None:
        self._subscribers.discard(subscription)
