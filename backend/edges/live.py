"""Live edge status, kept in memory from the edges' status messages; persisted now and then.

Every ``status.<edge>`` message goes through one NATS subscription to a dispatcher that calls each
listener in ``app.state.status_listeners`` (``async def listener(edge, body)``): this domain's
:class:`LiveStatus` first, then whatever other domains append (the deploy domain follows plan
reports there). ``last_seen`` is the Hub's clock at receipt (edge clocks may be wrong).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import asyncpg  # type: ignore[import-untyped, unused-ignore]

log = logging.getLogger("proxus.hub.edges")

StatusListener = Callable[[str, dict[str, Any]], Awaitable[None]]


@dataclass
class EdgeLive:
    last_seen: float | None = None  # epoch seconds, Hub clock
    heartbeat: dict[str, Any] | None = None  # the last heartbeat, without its flows
    flows: dict[str, dict[str, Any]] = field(default_factory=dict)  # by flow id, from heartbeats and plan reports
    error: str = ""  # last bundle-level error (a bundle that did not decode)
    dirty: bool = False  # changed since last persisted
    heard: bool = False  # a message arrived since this Hub started (restored state alone is offline)

    def snapshot(self) -> dict[str, Any]:
        return {"heartbeat": self.heartbeat, "flows": self.flows, "error": self.error}


class LiveStatus:
    """Status of every edge heard from, by edge id."""

    def __init__(self) -> None:
        self.edges: dict[str, EdgeLive] = {}

    def get(self, edge: str) -> EdgeLive | None:
        return self.edges.get(edge)

    def forget(self, edge: str) -> None:
        self.edges.pop(edge, None)

    def restore(self, edge: str, last_seen: datetime | None, snapshot: dict[str, Any] | None) -> None:
        """Take over what was persisted (after a Hub restart: shown, but offline until heard from)."""
        live = self.edges.setdefault(edge, EdgeLive())
        if live.last_seen is not None:
            return
        live.last_seen = last_seen.timestamp() if last_seen is not None else None
        if isinstance(snapshot, dict):
            heartbeat = snapshot.get("heartbeat")
            flows = snapshot.get("flows")
            live.heartbeat = heartbeat if isinstance(heartbeat, dict) else None
            live.flows = flows if isinstance(flows, dict) else {}
            live.error = str(snapshot.get("error") or "")

    async def observe(self, edge: str, body: dict[str, Any]) -> None:
        """A status listener: fold one message into the edge's state."""
        self.record(edge, body, time.time())

    def record(self, edge: str, body: dict[str, Any], now: float) -> None:
        live = self.edges.setdefault(edge, EdgeLive())
        live.last_seen = now
        live.dirty = live.heard = True
        kind = body.get("kind")
        if kind == "heartbeat":
            flows = body.get("flows")
            live.heartbeat = {k: v for k, v in body.items() if k != "flows"}
            if isinstance(flows, dict):
                live.flows = {
                    str(flow_id): {
                        "applied_hash": f.get("hash") or None,
                        "state": str(f.get("state", "")),
                        "error": str(f.get("error", "")),
                        "nodes": f.get("nodes") if isinstance(f.get("nodes"), dict) else {},
                    }
                    for flow_id, f in flows.items()
                    if isinstance(f, dict)
                }
        elif kind == "plan":
            flow_id = body.get("flow_id")
            if not flow_id:
                live.error = str(body.get("error", ""))
                return
            flow_id = str(flow_id)
            if body.get("state") == "removed":
                live.flows.pop(flow_id, None)
                return
            entry = live.flows.setdefault(flow_id, {"applied_hash": None, "state": "", "error": "", "nodes": {}})
            entry["state"] = str(body.get("state", ""))
            entry["error"] = str(body.get("error", ""))
            applied = body.get("applied_hash") or (body.get("hash") if body.get("state") == "applied" else None)
            if applied:
                entry["applied_hash"] = applied
            if body.get("state") == "applied":
                live.error = ""

    def online(self, edge: str, offline_after_s: float, now: float | None = None) -> bool:
        live = self.edges.get(edge)
        if live is None or live.last_seen is None or not live.heard:
            return False
        return (now if now is not None else time.time()) - live.last_seen < offline_after_s

    async def persist(self, conn: asyncpg.Connection) -> int:
        """Write last_seen and the last status of edges that changed; returns how many were written."""
        dirty = [(edge, live) for edge, live in self.edges.items() if live.dirty and live.last_seen is not None]
        if not dirty:
            return 0
        for _, live in dirty:
            live.dirty = False
        await conn.executemany(
            "UPDATE edges SET last_seen = $2, last_status = $3 WHERE id = $1",
            [(edge, datetime.fromtimestamp(live.last_seen or 0, UTC), live.snapshot()) for edge, live in dirty],
        )
        return len(dirty)


def dispatcher(listeners: list[StatusListener]) -> StatusListener:
    """One status handler calling every listener in order; one failing does not stop the others."""

    async def dispatch(edge: str, body: dict[str, Any]) -> None:
        for listener in list(listeners):
            try:
                await listener(edge, body)
            except Exception:
                log.exception("status listener %r failed on a message from %s", listener, edge)

    return dispatch
