"""The registry of Hub domains: their controllers and their background services.

Each domain package (edges, devices, flows, ...) exposes ``CONTROLLERS`` and optionally
``async def start(app, tasks)`` / ``async def stop(app)``; this module lists them once.
"""

from __future__ import annotations

import asyncio
import importlib
from typing import Any

from litestar import Litestar

# In dependency order: later domains may use earlier ones' state at start.
DOMAINS: tuple[str, ...] = (
    "catalog",
    "credentials",
    "edges",
    "devices",
    "flows",
    "deploy",
    "templates",
    "alerts",
    "data",
)


def _modules() -> list[Any]:
    return [importlib.import_module(f"backend.{name}") for name in DOMAINS]


def controllers() -> list[Any]:
    return [c for module in _modules() for c in getattr(module, "CONTROLLERS", ())]


async def start(app: Litestar, tasks: list[asyncio.Task[None]]) -> None:
    for module in _modules():
        starter = getattr(module, "start", None)
        if starter is not None:
            await starter(app, tasks)


async def stop(app: Litestar) -> None:
    for module in reversed(_modules()):
        stopper = getattr(module, "stop", None)
        if stopper is not None:
            await stopper(app)
