"""Launchers for the services Proxus depends on: NATS (JetStream, hub/leaf), PostgreSQL and Redis.

Each launcher starts a private server process on free 127.0.0.1 ports, waits until it is ready and stops
it again; all are (async) context managers.  Used by the test harness and for local development.
"""

from proxus.services.nats import LeafRemote, NatsServer, find_nats_server
from proxus.services.ports import free_port, is_reachable, wait_for_port
from proxus.services.postgres import EmbeddedPostgres, create_database, drop_database
from proxus.services.redis import LocalRedis

__all__ = [
    "EmbeddedPostgres",
    "LeafRemote",
    "LocalRedis",
    "NatsServer",
    "create_database",
    "drop_database",
    "find_nats_server",
    "free_port",
    "is_reachable",
    "wait_for_port",
]
