"""The app factory: ``create_app(settings)`` wires domains, auth, errors and the Hub's services."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Sequence
from typing import Any

from litestar import Litestar, Router, get
from litestar.config.compression import CompressionConfig
from litestar.datastructures import State
from litestar.middleware import DefineMiddleware
from litestar.openapi import OpenAPIConfig
from litestar.openapi.plugins import SwaggerRenderPlugin
from litestar.static_files import create_static_files_router

from backend.audit.controllers import AuditController
from backend.auth.controllers import AuthController
from backend.auth.middleware import AuthMiddleware
from backend.auth.sessions import MemorySessionStore, RedisSessionStore
from backend.db import create_pool, migrate
from backend.deps import DEPENDENCIES
from backend.errors import EXCEPTION_HANDLERS
from backend.hubnats import HubNats
from backend.security import SecretBox
from backend.settings import Settings
from backend.users.controllers import TokenController, UserController
from proxus.catalog import Catalog
from proxus.services.nats import NatsServer

log = logging.getLogger("proxus.hub")


@get("/api/health", exclude_from_auth=True, tags=["system"], summary="Liveness and what the Hub is connected to")
async def health(state: State) -> dict[str, Any]:
    return {
        "ok": True,
        "database": not state.pool._closed,
        "nats": state.nats.nc is not None and state.nats.nc.is_connected,
        "sessions": "redis" if isinstance(state.sessions, RedisSessionStore) else "memory",
    }


def domain_controllers() -> list[Any]:
    """Every domain's controllers. Domains register here, and nowhere else."""
    from backend import domains

    return [AuthController, UserController, TokenController, AuditController, health, *domains.controllers()]


def create_app(
    settings: Settings | None = None, catalog: Catalog | None = None, hub_nats_server: NatsServer | None = None
) -> Litestar:
    """The Hub. ``hub_nats_server`` is the embedded NATS server when the Hub manages one (for reloads)."""
    settings = settings or Settings()
    catalog = catalog or Catalog.load()
    if settings.database_url is None or settings.nats_url is None:
        raise ValueError("create_app needs database_url and nats_url; `proxus hub` starts embedded ones")

    @contextlib.asynccontextmanager
    async def lifespan(app: Litestar) -> AsyncIterator[None]:
        state = app.state
        assert settings.database_url is not None and settings.nats_url is not None
        state.pool = await create_pool(settings.database_url)
        async with state.pool.acquire() as conn:
            applied = await migrate(conn)
        if applied:
            log.info("applied migrations %s", applied)
        state.sessions = (
            RedisSessionStore(settings.redis_url, settings.redis_prefix) if settings.redis_url else MemorySessionStore()
        )
        if settings.redis_url is None:
            log.warning("PROXUS_REDIS_URL is not set: sessions live in this process only (single-process Hub)")
        state.nats = HubNats(settings.nats_url, settings.hub_domain, settings.nats_user, settings.nats_password)
        await state.nats.connect()
        tasks: list[asyncio.Task[None]] = []
        state.background = tasks
        from backend import domains

        await domains.start(app, tasks)
        try:
            yield
        finally:
            for task in tasks:
                task.cancel()
            if tasks:  # bounded: a task that swallows its cancellation must not hang the shutdown
                await asyncio.wait(tasks, timeout=10)
            await domains.stop(app)
            await state.nats.close()
            await state.sessions.close()
            await state.pool.close()

    state = State(
        {
            "settings": settings,
            "catalog": catalog,
            "box": SecretBox.from_settings(settings.secret_key, settings.secret_key_file, settings.data_dir),
            "hub_nats_server": hub_nats_server,
        }
    )
    route_handlers: list[Any] = domain_controllers()
    if settings.frontend_dir is not None and settings.frontend_dir.exists():
        route_handlers.append(frontend_router(settings))
    return Litestar(
        route_handlers=route_handlers,
        dependencies=DEPENDENCIES,
        middleware=[DefineMiddleware(AuthMiddleware, exclude=["^/api/schema"])],
        exception_handlers=EXCEPTION_HANDLERS,
        lifespan=[lifespan],
        state=state,
        compression_config=CompressionConfig(backend="gzip", minimum_size=1024),
        openapi_config=OpenAPIConfig(
            title="Proxus Hub API",
            version="1.0.0",
            path="/api/schema",
            render_plugins=[SwaggerRenderPlugin()],
        ),
        request_max_body_size=64 * 1024 * 1024,
        debug=False,
    )


def frontend_router(settings: Settings) -> Router:
    """The web app's production build, served at / with index.html for client-side routes."""
    assert settings.frontend_dir is not None
    return create_static_files_router(
        path="/",
        directories=[settings.frontend_dir],
        html_mode=True,
        include_in_schema=False,
        name="frontend",
        opt={"exclude_from_auth": True},  # the app's files are public; its API calls are not
    )


__all__: Sequence[str] = ["create_app"]
