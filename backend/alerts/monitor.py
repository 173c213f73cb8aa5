"""The alert evaluator's own small view of the edges, fed by their status messages (no I/O).

Kept per edge: when it was last heard from (any status message), its last outbox depth, each
device node's connection state and since when, and each node's error counter over time (for
rates). Times are the Hub's monotonic clock at receipt, so edge clocks do not matter.

:func:`observe` turns a rule's condition into observations, one per subject (an edge, a device
``edge/flow/node``, a node, a series): whether the condition holds now, since when if known, and
the evidence (value and message).
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from backend.alerts.schemas import (
    Condition,
    DeviceDisconnected,
    EdgeOffline,
    NodeErrorRate,
    OutboxDepth,
    SeriesThreshold,
)

HISTORY_S = 3600.0  # error counter samples kept per node (the longest rate window)
MAX_SAMPLES = 2000  # per node, whatever the heartbeat rate


@dataclass
class DeviceView:
    connected: bool
    since: float  # when it last changed state
    message: str = ""


@dataclass
class EdgeView:
    last_seen: float  # monotonic
    last_seen_wall: float  # epoch seconds, for messages
    last_heartbeat: float | None = None
    outbox_depth: int | None = None
    devices: dict[tuple[str, str], DeviceView] = field(default_factory=dict)  # (flow, node)
    errors: dict[tuple[str, str], deque[tuple[float, int]]] = field(default_factory=dict)  # (flow, node)
    node_messages: dict[tuple[str, str], str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Observation:
    """Whether the condition holds for a subject: True, False, or None (unknown: leave as is)."""

    holds: bool | None
    title: str
    value: Any = None
    message: str = ""
    since: float | None = None  # when the condition started to hold, when known (monotonic)


def _int(value: Any) -> int | None:
    return int(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


class Monitor:
    """Edges as their status messages describe them."""

    def __init__(self, clock: Any = time.monotonic) -> None:
        self.clock = clock
        self.started = clock()
        self.edges: dict[str, EdgeView] = {}

    async def listener(self, edge: str, body: dict[str, Any]) -> None:
        """For ``app.state.status_listeners``."""
        self.record(edge, body)

    def record(self, edge: str, body: Mapping[str, Any], now: float | None = None) -> None:
        now = self.clock() if now is None else now
        view = self.edges.get(edge)
        if view is None:
            view = self.edges[edge] = EdgeView(last_seen=now, last_seen_wall=time.time())
        view.last_seen, view.last_seen_wall = now, time.time()
        if body.get("kind") != "heartbeat":
            return
        view.last_heartbeat = now
        view.outbox_depth = _int(body.get("outbox_depth"))
        self._devices(view, body.get("devices"), now)
        self._nodes(view, body.get("flows"), now)

    @staticmethod
    def _devices(view: EdgeView, devices: Any, now: float) -> None:
        if not isinstance(devices, dict):
            return
        seen: set[tuple[str, str]] = set()
        for key, info in devices.items():
            if not isinstance(info, dict) or "/" not in str(key):
                continue
            flow, _, node = str(key).partition("/")
            ident = (flow, node)
            seen.add(ident)
            connected = bool(info.get("connected"))
            current = view.devices.get(ident)
            if current is None or current.connected != connected:
                view.devices[ident] = DeviceView(connected, now, str(info.get("message") or ""))
            else:
                current.message = str(info.get("message") or "")
        for gone in set(view.devices) - seen:
            del view.devices[gone]  # undeployed: no longer a device of this edge

    @staticmethod
    def _nodes(view: EdgeView, flows: Any, now: float) -> None:
        if not isinstance(flows, dict):
            return
        seen: set[tuple[str, str]] = set()
        for flow_id, flow in flows.items():
            nodes = flow.get("nodes") if isinstance(flow, dict) else None
            if not isinstance(nodes, dict):
                continue
            for node_id, metrics in nodes.items():
                if not isinstance(metrics, dict):
                    continue
                errors = _int(metrics.get("errors"))
                if errors is None:
                    continue
                ident = (str(flow_id), str(node_id))
                seen.add(ident)
                samples = view.errors.get(ident)
                if samples is None or (samples and errors < samples[-1][1]):
                    samples = view.errors[ident] = deque(maxlen=MAX_SAMPLES)  # new, or the counter restarted
                samples.append((now, errors))
                while len(samples) > 2 and samples[1][0] < now - HISTORY_S:
                    samples.popleft()
                view.node_messages[ident] = str(metrics.get("last_error") or metrics.get("message") or "")
        for gone in set(view.errors) - seen:
            del view.errors[gone]
            view.node_messages.pop(gone, None)

    # -- evaluation ------------------------------------------------------------------------------

    def silent_for(self, edge: str, now: float) -> float:
        """Seconds since the edge was last heard from (since the Hub started, if never)."""
        view = self.edges.get(edge)
        return now - (view.last_seen if view is not None else self.started)

    def fresh(self, edge: str, now: float, stale_after_s: float) -> bool:
        view = self.edges.get(edge)
        return view is not None and view.last_heartbeat is not None and now - view.last_heartbeat <= stale_after_s

    def observe(
        self,
        condition: Condition,
        *,
        now: float,
        active: Iterable[str],
        stale_after_s: float,
        known_edges: Iterable[str] = (),
    ) -> dict[str, Observation]:
        """Observations by subject for a status-based condition (series thresholds are the engine's).

        ``active``: subjects with an active alert of this rule (so one whose subject disappeared
        can be cleared or kept); ``stale_after_s``: heartbeats older than this say nothing;
        ``known_edges``: registered edges (for rules about every edge).
        """
        active = set(active)
        if isinstance(condition, EdgeOffline):
            return self._edge_offline(condition, now, active, known_edges)
        if isinstance(condition, DeviceDisconnected):
            return self._device_disconnected(condition, now, active, stale_after_s)
        if isinstance(condition, NodeErrorRate):
            return self._error_rate(condition, now, active, stale_after_s)
        if isinstance(condition, OutboxDepth):
            return self._outbox(condition, now, stale_after_s)
        assert isinstance(condition, SeriesThreshold)
        return {}

    def _edge_offline(
        self, c: EdgeOffline, now: float, active: set[str], known_edges: Iterable[str]
    ) -> dict[str, Observation]:
        edges = {c.edge} if c.edge else set(self.edges) | set(known_edges) | active
        out = {}
        for edge in sorted(edges):
            silent = self.silent_for(edge, now)
            view = self.edges.get(edge)
            heard = "not heard from since the Hub started" if view is None else f"last status {silent:.0f} s ago"
            out[edge] = Observation(
                holds=silent >= c.silent_s,
                title=f"Edge {edge} is offline",
                value={"silent_s": round(silent, 1), "last_seen": view.last_seen_wall if view else None},
                message=f"no status from edge {edge} for {silent:.0f} s (limit {c.silent_s:g} s); {heard}",
            )
        return out

    def _matching_edges(self, edge: str | None) -> list[tuple[str, EdgeView]]:
        return sorted((e, v) for e, v in self.edges.items() if edge is None or e == edge)

    def _device_disconnected(
        self, c: DeviceDisconnected, now: float, active: set[str], stale_after_s: float
    ) -> dict[str, Observation]:
        out: dict[str, Observation] = {}
        for edge, view in self._matching_edges(c.edge):
            fresh = self.fresh(edge, now, stale_after_s)
            for (flow, node), device in sorted(view.devices.items()):
                if (c.flow and flow != c.flow) or (c.node and node != c.node):
                    continue
                subject = f"{edge}/{flow}/{node}"
                if not fresh:
                    out[subject] = Observation(None, "")
                    continue
                down = now - device.since
                out[subject] = Observation(
                    holds=not device.connected,
                    title=f"Device {node} ({flow}) on {edge} is disconnected",
                    value={"connected": device.connected, "for_s": round(down, 1)},
                    message=(
                        f"disconnected for {down:.0f} s" + (f": {device.message}" if device.message else "")
                        if not device.connected
                        else "connected again"
                    ),
                    since=device.since if not device.connected else None,
                )
        for subject in active - set(out):
            edge = subject.split("/", 1)[0]
            if self.fresh(edge, now, stale_after_s):  # the edge reports, without this device
                out[subject] = Observation(False, "", {"connected": None}, "no longer deployed on the edge")
        return out

    def _error_rate(
        self, c: NodeErrorRate, now: float, active: set[str], stale_after_s: float
    ) -> dict[str, Observation]:
        out: dict[str, Observation] = {}
        for edge, view in self._matching_edges(c.edge):
            fresh = self.fresh(edge, now, stale_after_s)
            for (flow, node), samples in sorted(view.errors.items()):
                if (c.flow and flow != c.flow) or (c.node and node != c.node):
                    continue
                subject = f"{edge}/{flow}/{node}"
                rate = error_rate(samples, now, c.window_s)
                if not fresh or rate is None:
                    out[subject] = Observation(None, "")
                    continue
                last = view.node_messages.get((flow, node), "")
                out[subject] = Observation(
                    holds=rate > c.errors_per_min,
                    title=f"Node {node} ({flow}) on {edge}: {c.errors_per_min:g}+ errors per minute",
                    value={"errors_per_min": round(rate, 2), "errors": samples[-1][1]},
                    message=f"{rate:.1f} errors per minute over the last {c.window_s:g} s"
                    + (f"; last error: {last}" if last else ""),
                )
        for subject in active - set(out):
            edge = subject.split("/", 1)[0]
            if self.fresh(edge, now, stale_after_s):
                out[subject] = Observation(False, "", None, "no longer deployed on the edge")
        return out

    def _outbox(self, c: OutboxDepth, now: float, stale_after_s: float) -> dict[str, Observation]:
        out: dict[str, Observation] = {}
        for edge, view in self._matching_edges(c.edge):
            if view.outbox_depth is None or not self.fresh(edge, now, stale_after_s):
                out[edge] = Observation(None, "")
                continue
            out[edge] = Observation(
                holds=view.outbox_depth > c.above,
                title=f"Outbox of edge {edge} above {c.above}",
                value={"outbox_depth": view.outbox_depth},
                message=f"{view.outbox_depth} messages wait in the outbox (limit {c.above})",
            )
        return out


def error_rate(samples: deque[tuple[float, int]], now: float, window_s: float) -> float | None:
    """Errors per minute over the window ending at the last sample; None with too little data."""
    if len(samples) < 2:
        return None
    last_t, last_errors = samples[-1]
    start = now - window_s
    base_t, base_errors = samples[0]
    for t, errors in samples:  # the latest sample at or before the window start, else the oldest
        if t <= start:
            base_t, base_errors = t, errors
        else:
            break
    elapsed = last_t - base_t
    if elapsed <= 0:
        return None
    return (last_errors - base_errors) / max(elapsed, min(window_s, 1.0)) * 60.0
