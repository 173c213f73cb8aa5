"""Flow templates: built-in ones shipped as files, saved ones in the database; instantiated into flows."""

from __future__ import annotations

import asyncio

from litestar import Litestar

from backend.templates.controllers import TemplateController

CONTROLLERS = [TemplateController]


async def start(app: Litestar, tasks: list[asyncio.Task[None]]) -> None:
    from backend.templates.service import load_builtins

    app.state.builtin_templates = load_builtins(app.state.catalog)
