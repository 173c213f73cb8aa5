"""A real Hub for tests: its own database, Redis key prefix, NATS hub server and data dir."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from litestar import Litestar
from litestar.testing import AsyncTestClient

from backend.app import create_app
from backend.settings import Settings

ADMIN = ("admin", "correct horse battery")


def hub_settings(
    tmp_path: Path, database_url: str, nats_url: str, redis_url: str | None, redis_prefix: str
) -> Settings:
    return Settings(
        data_dir=tmp_path / "hub",
        database_url=database_url,
        redis_url=redis_url,
        redis_prefix=redis_prefix,
        nats_url=nats_url,
        secret_key=None,
        secret_key_file=None,
        offline_after_s=2.0,
    )


class Client(AsyncTestClient[Litestar]):
    """A browser-like client: keeps the session cookie and sends the CSRF token with changes."""

    csrf: str = ""

    async def login(self, username: str, password: str) -> dict[str, Any]:
        response = await self.post("/api/auth/login", json={"username": username, "password": password})
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        self.csrf = body["csrf_token"]
        self.headers["X-CSRF-Token"] = self.csrf
        return body


@asynccontextmanager
async def running_hub(settings: Settings) -> AsyncIterator[Client]:
    app = create_app(settings)
    async with Client(app=app, base_url="http://hub.test") as client:
        yield client


async def setup_admin(client: Client) -> None:
    response = await client.post("/api/auth/setup", json={"username": ADMIN[0], "password": ADMIN[1]})
    assert response.status_code == 201, response.text
    client.csrf = response.json()["csrf_token"]
    client.headers["X-CSRF-Token"] = client.csrf


async def add_user(admin: Client, username: str, role: str, password: str = "password-123") -> None:
    response = await admin.post("/api/users", json={"username": username, "password": password, "role": role})
    assert response.status_code == 201, response.text


def replace(settings: Settings, **changes: Any) -> Settings:
    return dataclasses.replace(settings, **changes)
