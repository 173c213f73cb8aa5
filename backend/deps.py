"""Request dependencies shared by every domain: a database connection, the caller, their address."""

from __future__ import annotations

from collections.abc import AsyncGenerator
from typing import Any

import asyncpg  # type: ignore[import-untyped, unused-ignore]
from litestar import Request
from litestar.datastructures import State
from litestar.di import NamedDependency, Provide

from backend.auth.guards import principal_of
from backend.auth.principal import Principal


async def provide_db(state: State) -> AsyncGenerator[asyncpg.Connection, None]:
    async with state.pool.acquire() as conn:
        yield conn


def provide_principal(request: Request[Any, Any, Any]) -> Principal:
    return principal_of(request)


def provide_address(request: Request[Any, Any, Any]) -> str:
    return request.client.host if request.client else ""


DEPENDENCIES = {
    "db": Provide(provide_db),
    "principal": Provide(provide_principal, sync_to_thread=False),
    "address": Provide(provide_address, sync_to_thread=False),
}


# Typed, explicit injection (Litestar 3 removes name inference): use these in handler signatures.
Db = NamedDependency[asyncpg.Connection]
Caller = NamedDependency[Principal]
Address = NamedDependency[str]
