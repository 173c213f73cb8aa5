"""The data domain: the historian writer (edges -> database), historian queries, dashboards, live SSE.

Interfaces for other domains:

* :func:`backend.data.service.create_dashboard` ``(conn, principal, spec, *, address="",
  rename_on_conflict=True) -> Dashboard`` — ``spec`` a :class:`~backend.data.schemas.DashboardSpec`
  or a mapping of the same JSON shape (templates);
* ``app.state.historian``: the :class:`~backend.data.historian.HistorianWriter`;
  it reads the ``edges`` table every 15 s and when an unknown edge reports status;
  ``request_sync()`` re-reads it at once (call it after registering or removing an edge),
  ``add_edge(edge_id)`` sources an edge that is not in the table;
* ``app.state.live``: the :class:`~backend.data.live.LiveHub` behind ``GET /api/live``;
* optional, set before start: ``app.state.historian_options`` (:class:`HistorianOptions`),
  ``app.state.historian_edges`` (edge ids to source besides the ``edges`` table),
  ``app.state.historian_enabled = False`` (a Hub process that only serves the API).
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from litestar import Litestar

from backend.data import service
from backend.data.controllers import DashboardController, DataController, LiveController
from backend.data.historian import HistorianOptions, HistorianWriter
from backend.data.live import LiveHub
from backend.data.service import create_dashboard
from nodes.sink.historian import ensure_schema

log = logging.getLogger("proxus.hub.data")

CONTROLLERS: list[object] = [DataController, DashboardController, LiveController]


async def start(app: Litestar, tasks: list[asyncio.Task[None]]) -> None:
    state = app.state
    async with state.pool.acquire() as conn:
        state.data_timescale = await ensure_schema(conn)
        await service.ensure_indexes(conn)
        catalog_empty = not await conn.fetchval("SELECT EXISTS (SELECT 1 FROM historian_series)")

    async def send_taps(edge: str, body: dict[str, Any]) -> dict[str, Any]:
        reply: dict[str, Any] = await state.nats.request(edge, "taps", body, 2.0)
        return reply

    live = LiveHub(state.nats.client, send_taps=send_taps, deploy_events=getattr(state, "deploy_events", None))
    state.live = live

    listeners: list[Any] | None = getattr(state, "status_listeners", None)
    if listeners is None:  # no domain dispatches edge status (the edges domain normally does)
        listeners = []
        state.status_listeners = listeners

        async def dispatch(edge: str, body: dict[str, Any]) -> None:
            for listener in list(listeners):
                try:
                    await listener(edge, body)
                except Exception:
                    log.exception("status listener %r failed on a message from %s", listener, edge)

        await state.nats.on_status(dispatch)
    listeners.append(live.on_status)

    if getattr(state, "historian_enabled", True):
        writer = HistorianWriter(
            state.pool,
            state.nats.client,
            state.nats.domain,
            getattr(state, "historian_options", None) or HistorianOptions(),
            static_edges=list(getattr(state, "historian_edges", ()) or ()),
            dsn=state.settings.database_url,
        )
        state.historian = writer
        writer.listeners.append(live.on_summary)
        listeners.append(writer.on_status)
        # Not in ``tasks``: a cancellation can get lost inside nats-py's fetch (asyncio.wait_for race
        # on Python 3.11), and the app's shutdown would wait on such a task forever; ``stop()`` below
        # repeats the cancellation until the writer's tasks are gone.
        writer.start()
    if catalog_empty:
        tasks.append(asyncio.create_task(_rebuild_catalog(app), name="historian-catalog"))


async def _rebuild_catalog(app: Litestar) -> None:
    try:
        async with app.state.pool.acquire() as conn:
            added = await service.rebuild_series_catalog(conn)
        if added:
            log.info("series catalog: added %d series found in the historian", added)
    except Exception:
        log.exception("rebuilding the series catalog")


async def stop(app: Litestar) -> None:
    writer: HistorianWriter | None = getattr(app.state, "historian", None)
    if writer is not None:
        await writer.stop()
    live: LiveHub | None = getattr(app.state, "live", None)
    if live is not None:
        await live.close()


__all__ = ["CONTROLLERS", "HistorianOptions", "HistorianWriter", "LiveHub", "create_dashboard", "start", "stop"]
