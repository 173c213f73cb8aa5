"""Turns what edges report on ``status.<edge>`` into per-edge deployment states.

The tracker keeps, per edge, the latest known state of each flow there (from ``plan`` reports and
from heartbeats, which list every flow with its applied hash), and the open deployment entries (one
per edge and flow: pending, or failed-but-may-still-apply). Whenever either changes it reconciles:

* apply → ``applied`` once the edge runs the entry's hash (a plan report, or a heartbeat: an edge that
  already ran that hash never re-reports, so its heartbeat confirms it);
* apply → ``failed`` when the edge reports that hash failed (a later success still turns it applied);
* remove → ``removed`` when the edge reports the flow removed, or a heartbeat no longer lists it.

Database updates are conditional (``WHERE state = 'pending'`` ...) so several Hub processes, or a
report racing the deploy that caused it, change each entry once. The open entries are reloaded
from the database periodically, which also picks up deployments made by another Hub process.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field
from typing import Any

import asyncpg  # type: ignore[import-untyped, unused-ignore]

from backend.deploy import service
from backend.deploy.events import DeployEvents

log = logging.getLogger("proxus.hub.deploy")


# A heartbeat is built a little before it is sent, so one can arrive just after a plan report and
# still show the state from before it: plan reports younger than this win over heartbeats.
PLAN_REPORT_PRECEDENCE_S = 2.0


@dataclass
class FlowReport:
    """What an edge last said about one flow."""

    applied_hash: str
    desired_hash: str
    state: str  # applied | failed | pending | removed
    error: str
    at: float  # monotonic time received
    from_plan: bool = False  # a plan report (else a heartbeat)


@dataclass
class EdgeView:
    flows: dict[str, FlowReport] = field(default_factory=dict)
    heartbeat_at: float | None = None  # when the last heartbeat (the full list of flows) arrived


@dataclass
class OpenEntry:
    deployment_id: int
    edge: str
    flow_id: str
    action: str  # apply | remove
    hash: str
    state: str  # pending | failed
    since: float = 0.0  # monotonic time of the bundle write (0: unknown, any report counts)


class StatusTracker:
    def __init__(self, pool: asyncpg.Pool, events: DeployEvents) -> None:
        self.pool = pool
        self.events = events
        self.views: dict[str, EdgeView] = {}
        self.open: dict[str, dict[str, OpenEntry]] = {}  # edge → flow id → entry
        self._recent: list[OpenEntry] = []  # tracked while a reload reads the database

    # -- input -----------------------------------------------------------------------------------

    async def on_status(self, edge: str, body: dict[str, Any]) -> None:
        """The ``status_listeners`` callback: every message an edge publishes on ``status.<edge>``."""
        kind = body.get("kind")
        now = time.monotonic()
        view = self.views.setdefault(edge, EdgeView())
        if kind == "heartbeat":
            flows = body.get("flows")
            if not isinstance(flows, dict):
                return
            fresh = {
                str(key): FlowReport(
                    applied_hash=str(f.get("hash") or ""),
                    desired_hash=str(f.get("desired_hash") or ""),
                    state=str(f.get("state") or ""),
                    error=str(f.get("error") or ""),
                    at=now,
                )
                for key, f in flows.items()
                if isinstance(f, dict)
            }
            for key, previous in view.flows.items():
                if previous.from_plan and now - previous.at < PLAN_REPORT_PRECEDENCE_S:
                    fresh[key] = previous
            view.flows = fresh
            view.heartbeat_at = now
        elif kind == "plan":
            flow_id, state = body.get("flow_id"), str(body.get("state") or "")
            error = str(body.get("error") or "")
            if not isinstance(flow_id, str) or not flow_id:
                if state == "failed":  # the whole bundle was refused (malformed, or not for this edge)
                    await self._fail_all(edge, error or "the edge refused its plan bundle")
                return
            known = view.flows.get(flow_id)
            plan_hash = str(body.get("hash") or "")
            if state == "removed":
                view.flows[flow_id] = FlowReport("", "", "removed", "", now, True)
            elif state == "applied":
                view.flows[flow_id] = FlowReport(plan_hash, plan_hash, "applied", "", now, True)
            elif state == "failed":
                applied = str(body.get("applied_hash") or (known.applied_hash if known else ""))
                view.flows[flow_id] = FlowReport(applied, plan_hash, "failed", error, now, True)
            else:
                return
        else:
            return
        await self.reconcile(edge)

    async def track(self, entries: list[OpenEntry]) -> None:
        """New deployment entries (they replace older ones for the same edge and flow); reconcile them."""
        for entry in entries:
            self.open.setdefault(entry.edge, {})[entry.flow_id] = entry
        self._recent.extend(entries)
        for edge in sorted({e.edge for e in entries}):
            await self.reconcile(edge)

    async def reload(self) -> None:
        """Re-read open entries from the database (other Hub processes deploy too)."""
        self._recent = []
        async with self.pool.acquire() as conn:
            rows = await service.open_entries(conn)
        fresh: dict[str, dict[str, OpenEntry]] = {}
        for r in rows:
            mine = self.open.get(r["edge"], {}).get(r["flow_id"])
            since = mine.since if mine is not None and mine.deployment_id == r["deployment_id"] else 0.0
            current = fresh.setdefault(r["edge"], {}).get(r["flow_id"])
            if current is None or current.deployment_id < r["deployment_id"]:
                fresh[r["edge"]][r["flow_id"]] = OpenEntry(
                    r["deployment_id"], r["edge"], r["flow_id"], r["action"], r["hash"], r["state"], since
                )
        for entry in self._recent:  # deployed while we read: newer than what we read
            current = fresh.setdefault(entry.edge, {}).get(entry.flow_id)
            newer = current is None or current.deployment_id <= entry.deployment_id
            if newer and entry.state in ("pending", "failed"):
                fresh[entry.edge][entry.flow_id] = entry
        self._recent = []
        self.open = fresh
        for edge in sorted(self.open):
            await self.reconcile(edge)

    async def run(self, interval_s: float = 5.0) -> None:
        """Background loop: periodic reload (a task in the app's background list)."""
        while True:
            try:
                await self.reload()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("reloading open deployments: %s", exc)
            await asyncio.sleep(interval_s)

    # -- reconciliation --------------------------------------------------------------------------

    @staticmethod
    def decide(entry: OpenEntry, view: EdgeView) -> tuple[str, str, tuple[str, ...]] | None:
        """(new state, error, states it may move from), or None while the edge has not answered."""
        report = view.flows.get(entry.flow_id)
        if entry.action == "remove":
            # Removed: the edge said so, or a heartbeat sent after the bundle changed no longer lists it.
            listed_after = report is None and view.heartbeat_at is not None and view.heartbeat_at >= entry.since
            gone = listed_after or (report is not None and report.state == "removed")
            return ("removed", "", ("pending",)) if gone else None
        if report is None or report.state == "removed":
            return None
        if report.applied_hash == entry.hash:
            return ("applied", "", ("pending", "failed"))
        if (
            entry.state == "pending"
            and report.state == "failed"
            and report.desired_hash == entry.hash
            and report.at >= entry.since
        ):
            return ("failed", report.error or "the edge could not apply the plan", ("pending",))
        return None

    async def reconcile(self, edge: str) -> None:
        view = self.views.get(edge)
        entries = self.open.get(edge)
        if view is None or not entries:
            return
        for entry in list(entries.values()):
            decision = self.decide(entry, view)
            if decision is not None:
                await self._move(entry, *decision)

    async def _fail_all(self, edge: str, error: str) -> None:
        for entry in list(self.open.get(edge, {}).values()):
            if entry.state == "pending" and entry.action == "apply":
                await self._move(entry, "failed", error, ("pending",))

    async def _move(self, entry: OpenEntry, state: str, error: str, from_states: tuple[str, ...]) -> None:
        # Update memory first: a second report for the same entry must not issue a second update.
        entries = self.open.get(entry.edge, {})
        entry.state = state
        if entries.get(entry.flow_id) is entry and not (state == "failed" and entry.action == "apply"):
            del entries[entry.flow_id]
        try:
            async with self.pool.acquire() as conn:
                event = await service.set_edge_state(conn, entry.deployment_id, entry.edge, state, error, from_states)
        except Exception as exc:  # the next reload retries from the database
            log.warning("recording %s for deployment %s on %s: %s", state, entry.deployment_id, entry.edge, exc)
            return
        if event is not None:
            self.events.publish(event)
