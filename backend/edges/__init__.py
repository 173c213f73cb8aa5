"""The edges domain: edge gateways, their NATS leaf credentials and their live status.

Interfaces for other domains:

* ``app.state.status_listeners``: a list of ``async def listener(edge_id, body)`` called for every
  ``status.<edge>`` message (one NATS subscription, dispatched here); append yours in your
  ``start()`` (domains start after this one).
* ``app.state.edge_status``: :class:`backend.edges.live.LiveStatus` (``online(edge, offline_after_s)``).
* ``app.state.hub_nats_auth``: :class:`backend.edges.natsauth.HubNatsAuth` for
  ``<data_dir>/nats`` (created here unless set); ``app.state.hub_nats_server`` is the embedded
  server it reloads (None: an external NATS, whose admin applies the users).
* :func:`backend.edges.service.ensure_local_edge`: the edge ``proxus hub`` runs on its own machine.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from litestar import Litestar

from backend.edges.controllers import EdgeController
from backend.edges.live import LiveStatus, StatusListener, dispatcher
from backend.edges.natsauth import HubNatsAuth
from backend.edges.service import edge_ids, load_live

log = logging.getLogger("proxus.hub.edges")

CONTROLLERS: list[object] = [EdgeController]

PERSIST_INTERVAL_S = 10.0


async def start(app: Litestar, tasks: list[asyncio.Task[None]]) -> None:
    state = app.state
    settings = state.settings
    live = LiveStatus()
    state.edge_status = live
    listeners: list[StatusListener] | None = getattr(state, "status_listeners", None)
    if listeners is None:
        listeners = []
        state.status_listeners = listeners
    listeners.insert(0, live.observe)
    server = getattr(state, "hub_nats_server", None)
    auth: HubNatsAuth | None = getattr(state, "hub_nats_auth", None)
    if auth is None:
        auth = HubNatsAuth.for_dir(settings.data_dir / "nats", hub_domain=settings.hub_domain)
        state.hub_nats_auth = auth
    auth.activate(server)
    async with state.pool.acquire() as conn:
        await load_live(conn, live)
        try:
            await auth.apply(conn, server)
        except Exception:
            log.exception("writing the hub NATS users")
    await state.nats.on_status(dispatcher(listeners))
    tasks.append(asyncio.create_task(_persist_loop(app, live), name="edges-persist-status"))


async def _persist_loop(app: Litestar, live: LiveStatus) -> None:
    while True:
        await asyncio.sleep(PERSIST_INTERVAL_S)
        try:
            async with app.state.pool.acquire() as conn:
                await live.persist(conn)
        except Exception:
            log.exception("persisting edge status")


async def stop(app: Litestar) -> None:
    auth: HubNatsAuth | None = getattr(app.state, "hub_nats_auth", None)
    if auth is not None:
        auth.deactivate()
    live: LiveStatus | None = getattr(app.state, "edge_status", None)
    if live is None:
        return
    with contextlib.suppress(Exception):
        async with app.state.pool.acquire() as conn:
            await live.persist(conn)


__all__ = ["CONTROLLERS", "HubNatsAuth", "LiveStatus", "edge_ids", "start", "stop"]
