"""A private NATS server for runs without a hub (``proxus run``, benchmarks, the local edge)."""

from __future__ import annotations

import contextlib
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path

import nats
from nats.aio.client import Client

from proxus.services.nats import NatsServer


@contextlib.asynccontextmanager
async def private_nats(directory: Path | None = None) -> AsyncIterator[Client]:
    """Start nats-server with JetStream in ``directory`` (a temp dir by default), yield a client."""
    with contextlib.ExitStack() as stack:
        base = directory or Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="proxus-run-")))
        server = NatsServer(base / "nats", name="local", max_file_store="4GB")
        server.start()
        stack.callback(server.stop)
        nc = await nats.connect(server.url, max_reconnect_attempts=-1)
        try:
            yield nc
        finally:
            with contextlib.suppress(Exception):
                await nc.drain()
