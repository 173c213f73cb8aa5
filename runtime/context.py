"""The runtime's implementation of :class:`nodes.host.NodeContext`, one per running step."""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from nodes.host import Credential, Health

DebugHandler = Callable[[dict[str, Any]], None]
Publisher = Callable[[str, bytes, dict[str, str] | None], Awaitable[None]]


def wall_clock_ns() -> int:
    return time.time_ns()


@dataclass
class StepMetrics:
    """Counters and state of one step, as heartbeats report them."""

    points_in: int = 0
    points_out: int = 0
    batches_in: int = 0
    errors: int = 0
    health: Health = Health.OK
    message: str = ""
    last_error: str = ""
    last_error_ns: int = 0
    counters: dict[str, int] = field(default_factory=dict)
    gauges: dict[str, float] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {
            "points_in": self.points_in,
            "points_out": self.points_out,
            "batches_in": self.batches_in,
            "errors": self.errors,
            "health": self.health.value,
            "message": self.message,
            "last_error": self.last_error,
            "counters": dict(self.counters),
            "gauges": dict(self.gauges),
        }


async def _no_publisher(subject: str, payload: bytes, headers: dict[str, str] | None = None) -> None:
    from nodes.host import NotConnected

    raise NotConnected("this runtime has no NATS connection")


class StepContext:
    """Host services for one step; also holds the step's metrics."""

    def __init__(
        self,
        *,
        node_id: str,
        label: str = "",
        edge_id: str = "local",
        flow_id: str = "",
        data_dir: Path,
        clock: Callable[[], int] = wall_clock_ns,
        credentials: Mapping[str, Credential] | None = None,
        debug: DebugHandler | None = None,
        publisher: Publisher | None = None,
        settings: Mapping[str, str] | None = None,
    ) -> None:
        self.node_id = node_id
        self.label = label or node_id
        self.edge_id = edge_id
        self.flow_id = flow_id
        self.data_dir = data_dir
        self.log = logging.getLogger(f"proxus.node.{node_id}")
        self.metrics = StepMetrics()
        self._clock = clock
        self._credentials = credentials or {}
        self._debug = debug
        self._publisher = publisher or _no_publisher
        self._settings = settings or {}

    def now_ns(self) -> int:
        return self._clock()

    def set_health(self, health: Health, message: str = "") -> None:
        m = self.metrics
        if health is not m.health or message != m.message:
            if health is not Health.OK:
                self.log.log(logging.WARNING if health is Health.WARNING else logging.ERROR, "%s", message)
            m.health, m.message = health, message
        if health is Health.ERROR:
            m.last_error, m.last_error_ns = message, self._clock()

    def count(self, name: str, amount: int = 1) -> None:
        self.metrics.counters[name] = self.metrics.counters.get(name, 0) + amount

    def set_gauge(self, name: str, value: float) -> None:
        self.metrics.gauges[name] = value

    def credential(self, credential_id: str) -> Credential:
        return self._credentials[credential_id]

    def setting(self, name: str) -> str | None:
        return self._settings.get(name)

    def debug(self, message: dict[str, Any]) -> None:
        if self._debug is not None:
            self._debug(message)

    async def publish(self, subject: str, payload: bytes, headers: dict[str, str] | None = None) -> None:
        await self._publisher(subject, payload, headers)
