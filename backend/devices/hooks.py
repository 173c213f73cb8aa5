"""Telling other domains that a device changed (the deploy domain redeploys the flows that use it)."""

from __future__ import annotations

import logging
from typing import Any

log = logging.getLogger("proxus.hub.devices")


async def device_changed(state: Any, device_id: str) -> None:
    """Call ``state.on_device_changed(device_id)`` when a domain has set it; never fails the request."""
    hook = getattr(state, "on_device_changed", None)
    if hook is None:
        return
    try:
        await hook(device_id)
    except Exception:
        log.exception("on_device_changed(%r) failed", device_id)
