"""What a node's runtime behaviour gets from its host, and what it must provide.

The runtime (``runtime/``) hosts behaviours; this module is the contract, declared on the nodes'
side so that ``nodes/`` imports nothing of the runtime. A node type's module sets
``NodeSpec.behaviour`` to a class taking ``(config, context)`` that subclasses one of:

* :class:`Source` — device nodes. The runtime owns the schedule, reconnection and backoff
  (cf. Benthos' ``ErrNotConnected``): a source says it is not connected by raising
  :class:`NotConnected` and never writes a retry loop of its own.
* :class:`Operator` — transforms, windows, analytics: synchronous, per batch.
* :class:`AsyncOperator` — operators that wait on something (the UDF worker pool).
* :class:`Sink` — writes batches somewhere. The runtime puts every batch into the edge's
  durable outbox first and calls :meth:`Sink.write` from there, retrying with backoff on
  :class:`RetryableError` and dropping (counted, reported) on :class:`PermanentError`.

Behaviours work per batch, never per point: one call handles a whole poll.
"""

from __future__ import annotations

import enum
import logging
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any, Protocol

import msgspec

from nodes.points import Batch, EventBatch

Data = Batch | EventBatch
Outputs = Sequence[tuple[str, Data]]
NO_OUTPUT: Outputs = ()


class Health(enum.StrEnum):
    OK = "ok"
    WARNING = "warning"
    ERROR = "error"


class NotConnected(Exception):
    """The device or destination cannot be reached; the runtime reconnects with backoff."""


class RetryableError(Exception):
    """A sink write failed in a way that may succeed later (timeout, 5xx); the batch is kept."""


class PermanentError(Exception):
    """A sink write can never succeed as is (4xx, bad data); the batch is dropped and counted."""


class Credential(msgspec.Struct, frozen=True, kw_only=True):
    """A stored credential, decrypted for the node that references it (never logged)."""

    id: str
    kind: str  # "username_password" | "token" | "header"
    username: str = ""
    secret: str = ""

    def __repr__(self) -> str:  # keep secrets out of logs and tracebacks
        return f"Credential(id={self.id!r}, kind={self.kind!r}, secret=<redacted>)"


class NodeContext(Protocol):
    """The host services a behaviour may use."""

    node_id: str
    label: str
    edge_id: str
    flow_id: str
    log: logging.Logger
    data_dir: Path  # a directory private to this node on this edge (certificates, state)

    def now_ns(self) -> int:
        """Current UTC time in nanoseconds (the runtime's clock; tests may drive it)."""
        ...

    def set_health(self, health: Health, message: str = "") -> None:
        """Report the node's state; shown on the node in the editor."""
        ...

    def count(self, name: str, amount: int = 1) -> None:
        """Add to a node-specific counter reported in heartbeats (e.g. ``late_polls``)."""
        ...

    def set_gauge(self, name: str, value: float) -> None:
        """Set a node-specific gauge reported in heartbeats (e.g. ``connected``)."""
        ...

    def credential(self, credential_id: str) -> Credential:
        """The decrypted credential; raises KeyError when the edge does not hold it."""
        ...

    def setting(self, name: str) -> str | None:
        """A host setting by name (e.g. ``historian_url`` under ``proxus run``), or None."""
        ...

    def debug(self, message: dict[str, Any]) -> None:
        """Send a message to the live debug view (stdout JSON lines under ``proxus run``)."""
        ...

    async def publish(self, subject: str, payload: bytes, headers: dict[str, str] | None = None) -> None:
        """Publish on the edge's NATS connection; raises NotConnected when it is down."""
        ...


class Behaviour:
    """Common base. Stateful behaviours may carry state across a plan replacement."""

    def snapshot(self) -> Any:
        """State to carry into the replacement of an unchanged node (plain data), or None."""
        return None

    def restore(self, state: Any) -> None:
        """Take over state from :meth:`snapshot` of the previous instance."""

    async def close(self) -> None:
        """Release connections, processes and files."""


class Source(Behaviour, ABC):
    """A device node. ``interval_s`` set: polled on a drift-free schedule; None: push (read waits)."""

    interval_s: float | None = None

    @abstractmethod
    async def connect(self) -> None:
        """Open the connection; raise NotConnected (or any error) to have the runtime back off."""

    @abstractmethod
    async def read(self) -> Batch | None:
        """One poll (or the next pushed batch). Raise NotConnected when the link is lost."""


class Operator(Behaviour, ABC):
    """A synchronous per-batch step."""

    # When set, the runtime calls on_timer at this period (window close, alarm delays).
    timer_interval_s: float | None = None

    @abstractmethod
    def process(self, port: str, data: Data, now_ns: int) -> Outputs:
        """Handle one batch arriving on ``port``; return ``(output port, batch)`` pairs."""

    def on_timer(self, now_ns: int) -> Outputs:
        return NO_OUTPUT


class AsyncOperator(Behaviour, ABC):
    """A per-batch step that awaits (e.g. a worker process)."""

    timer_interval_s: float | None = None

    @abstractmethod
    async def process(self, port: str, data: Data, now_ns: int) -> Outputs:
        """Handle one batch arriving on ``port``; return ``(output port, batch)`` pairs."""

    async def on_timer(self, now_ns: int) -> Outputs:
        return NO_OUTPUT


class Sink(Behaviour, ABC):
    """Delivers batches from the outbox to a destination."""

    # Batches the runtime hands to one write (it merges outbox messages up to this many points).
    max_batch_points: int = 5000
    # How often a batch failing with RetryableError is retried before it is dropped (None: forever).
    # NotConnected never counts: an unreachable destination only grows the backlog.
    max_attempts: int | None = None
    # False for sinks that show rather than deliver (debug): written inline, not through the outbox.
    durable: bool = True
    # True for sinks whose records the Hub delivers (historian): on an edge under a Hub they are
    # left in the outbox for the Hub to source; standalone (``proxus run``) the sink writes itself.
    hub_delivered: bool = False

    async def connect(self) -> None:
        """Open the connection; raise NotConnected to have the runtime back off."""

    @abstractmethod
    async def write(self, data: Data, key: str = "") -> None:
        """Deliver; raise RetryableError/NotConnected to retry later, PermanentError to drop.

        ``key`` is the same on every retry of the same batch (derived from its outbox message ids):
        destinations that accept an idempotency key can drop the duplicates a timeout may cause.
        """


BehaviourFactory = Callable[[Any, NodeContext], Behaviour]
AsyncFactory = Callable[[Any, NodeContext], Awaitable[Behaviour]]
