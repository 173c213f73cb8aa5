"""The deploy domain: deployments to edges through the plans KV bucket, tracked from edge status.

At start it puts on ``app.state``:

* ``deploy`` — the :class:`~backend.deploy.service.DeployContext` the routes use;
* ``deploy_events`` — the :class:`~backend.deploy.events.DeployEvents` broadcaster (live progress);
* ``on_device_changed`` — ``async (device_id: str) -> None``: the devices domain calls it after a
  device change has been committed; deployed flows using the device are recompiled and redeployed
  when their plans changed (audited as by "system");

and appends its status handler to ``app.state.status_listeners``.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from litestar import Litestar

from backend.deploy.controllers import DeploymentController, FlowDeployController
from backend.deploy.events import DeployEvents
from backend.deploy.service import DeployContext, redeploy_for_device
from backend.deploy.tracker import StatusTracker

log = logging.getLogger("proxus.hub.deploy")

CONTROLLERS = [FlowDeployController, DeploymentController]

StatusListener = Callable[[str, dict[str, Any]], Awaitable[None]]


async def start(app: Litestar, tasks: list[asyncio.Task[None]]) -> None:
    state = app.state
    events = DeployEvents()
    tracker = StatusTracker(state.pool, events)
    ctx = DeployContext(catalog=state.catalog, nats=state.nats, events=events, tracker=tracker)
    state.deploy = ctx
    state.deploy_events = events

    listeners: list[StatusListener] | None = getattr(state, "status_listeners", None)
    if listeners is None:
        # No other domain dispatches edge status yet: create the list and dispatch it ourselves.
        listeners = []
        state.status_listeners = listeners

        async def dispatch(edge: str, body: dict[str, Any]) -> None:
            for listener in list(listeners):
                try:
                    await listener(edge, body)
                except Exception:
                    log.exception("status listener %r failed on a message from %s", listener, edge)

        await state.nats.on_status(dispatch)
    listeners.append(tracker.on_status)

    async def on_device_changed(device_id: str) -> None:
        await redeploy_for_device(state.pool, ctx, device_id)

    state.on_device_changed = on_device_changed
    tasks.append(asyncio.create_task(tracker.run(), name="deploy-tracker"))
