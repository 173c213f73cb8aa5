"""Embedded defaults for ``proxus hub``: PostgreSQL and a NATS hub server under the data directory.

What is configured (``PROXUS_DATABASE_URL``, ``PROXUS_NATS_URL``) is used as is; what is not is
started here and stopped when the Hub stops. The embedded NATS server has JetStream domain
``hub``, a leaf-node port for edges and per-edge users (``auth.conf``, rewritten and reloaded
whenever an edge is registered or removed).
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import os
from collections.abc import Iterator
from dataclasses import dataclass, field

import asyncpg  # type: ignore[import-untyped, unused-ignore]

from backend.settings import Settings
from proxus.services.nats import NatsServer
from proxus.services.ports import free_port, is_reachable
from proxus.services.postgres import EmbeddedPostgres

log = logging.getLogger("proxus.hub.embedded")

DATABASE_NAME = "proxus"


@dataclass
class Embedded:
    """The services started for this Hub, and the settings pointing at them."""

    settings: Settings
    postgres: EmbeddedPostgres | None = None
    nats: NatsServer | None = None
    leaf_port: int | None = None
    _stack: contextlib.ExitStack = field(default_factory=contextlib.ExitStack)

    def stop(self) -> None:
        self._stack.close()


def _port(env: str, default: int) -> int:
    wanted = int(os.environ.get(env, default))
    return wanted if not is_reachable(f"tcp://127.0.0.1:{wanted}", timeout=0.2) else free_port()


async def _ensure_database(admin_dsn: str, name: str) -> None:
    conn = await asyncpg.connect(admin_dsn)
    try:
        if not await conn.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", name):
            await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()


async def start_embedded(settings: Settings, *, with_nats: bool = True) -> Embedded:
    """Start what the settings leave unconfigured; returns settings with every URL filled in."""
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    embedded = Embedded(settings)
    changes: dict[str, object] = {}
    try:
        if settings.database_url is None:
            pg = EmbeddedPostgres(settings.data_dir / "postgres", port=_port("PROXUS_EMBEDDED_PG_PORT", 5433))
            pg.start()
            embedded._stack.callback(pg.stop)
            await _ensure_database(pg.dsn, DATABASE_NAME)
            embedded.postgres = pg
            changes["database_url"] = pg.dsn_for(DATABASE_NAME)
            log.info("embedded PostgreSQL on port %s (data in %s)", pg.port, settings.data_dir / "postgres")
        if settings.nats_url is None and with_nats:
            from backend.edges.natsauth import HubNatsAuth

            auth = HubNatsAuth(settings.data_dir / "nats")
            await auth.prepare(changes.get("database_url") or settings.database_url)  # type: ignore[arg-type]
            leaf_port = _port("PROXUS_LEAF_PORT", 7422)
            server = NatsServer.hub(
                settings.data_dir,
                name="nats",
                domain=settings.hub_domain,
                port=_port("PROXUS_EMBEDDED_NATS_PORT", 4223),
                leaf_port=leaf_port,
                extra_config=f'include "{auth.conf_path.name}"\n',
                max_file_store="10GB",
            )
            server.start()
            embedded._stack.callback(server.stop)
            embedded.nats = server
            embedded.leaf_port = leaf_port
            changes.update(
                nats_url=server.url,
                nats_user=auth.hub_user,
                nats_password=auth.hub_password,
                leaf_url=settings.leaf_url or f"nats-leaf://127.0.0.1:{leaf_port}",
            )
            log.info("embedded NATS hub on %s, leaf port %s", server.url, leaf_port)
    except BaseException:
        embedded.stop()
        raise
    embedded.settings = dataclasses.replace(settings, **changes)  # type: ignore[arg-type]
    return embedded


@contextlib.contextmanager
def stopping(embedded: Embedded) -> Iterator[Embedded]:
    try:
        yield embedded
    finally:
        embedded.stop()
