"""Monitoring and alerts: rules evaluated by the Hub, analytics alarm events, notification channels.

Uses ``app.state.status_listeners`` (the edges domain's dispatcher of ``status.<edge>`` messages) to
keep its own view of the edges, the historian's tables for series thresholds and alarm events, and
``backend.credentials.service.get_decrypted`` for webhook auth headers.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

from litestar import Litestar

from backend.alerts.controllers import AlertChannelController, AlertController, AlertRuleController

log = logging.getLogger("proxus.hub.alerts")

CONTROLLERS = [AlertController, AlertRuleController, AlertChannelController]


async def start(app: Litestar, tasks: list[asyncio.Task[None]]) -> None:
    from backend.alerts.engine import AlertEngine
    from backend.alerts.service import ensure_historian

    state = app.state
    engine = AlertEngine(app)
    state.alert_engine = engine
    async with state.pool.acquire() as conn:
        await ensure_historian(conn)
    if not hasattr(state, "status_listeners"):
        # Nobody dispatches status messages (the edges domain normally does): subscribe ourselves.
        listeners: list[Any] = []
        state.status_listeners = listeners

        async def dispatch(edge: str, body: dict[str, Any]) -> None:
            for listener in list(listeners):
                try:
                    await listener(edge, body)
                except Exception:
                    log.exception("status listener failed on a message from %s", edge)

        await state.nats.on_status(dispatch)
    state.status_listeners.append(engine.monitor.listener)
    tasks.append(asyncio.create_task(engine.run_evaluator(), name="alerts-evaluator"))
    tasks.append(asyncio.create_task(engine.run_delivery(), name="alerts-delivery"))


async def stop(app: Litestar) -> None:
    engine = getattr(app.state, "alert_engine", None)
    if engine is not None:
        with contextlib.suppress(Exception):
            await engine.close()
