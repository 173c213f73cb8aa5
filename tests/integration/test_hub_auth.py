"""Users and access against a real Hub: setup, sessions in Redis, CSRF, throttling, roles, tokens, audit."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import asyncpg  # type: ignore[import-untyped, unused-ignore]
import pytest

from backend.db import migrations
from backend.settings import Settings
from tests.integration.hub_support import ADMIN, add_user, hub_settings, replace, running_hub, setup_admin


@pytest.fixture
def settings(
    tmp_path: Path, database_url: str, nats_server_factory: Any, redis_url: str, redis_prefix: str
) -> Settings:
    hub = nats_server_factory.hub()
    return hub_settings(tmp_path, database_url, hub.url, redis_url, redis_prefix)


async def test_migrations_apply_from_empty_and_only_once(database_url: str, settings: Settings) -> None:
    async with running_hub(settings):
        pass
    async with running_hub(settings):  # a second start applies nothing new
        pass
    conn = await asyncpg.connect(database_url)
    try:
        versions = [r["version"] for r in await conn.fetch("SELECT version FROM schema_migrations ORDER BY 1")]
    finally:
        await conn.close()
    assert versions == [m.version for m in migrations()]


async def test_first_run_setup_then_login(settings: Settings) -> None:
    async with running_hub(settings) as client:
        assert (await client.get("/api/auth/setup")).json() == {"needed": True}
        assert (await client.get("/api/users")).status_code == 401
        await setup_admin(client)
        assert (await client.get("/api/auth/setup")).json() == {"needed": False}
        again = await client.post("/api/auth/setup", json={"username": "mallory", "password": "password-123"})
        assert again.status_code == 409
        me = (await client.get("/api/auth/me")).json()
        assert me["username"] == ADMIN[0] and me["role"] == "admin"


async def test_sessions_survive_a_restart_and_logout_ends_them(settings: Settings) -> None:
    async with running_hub(settings) as client:
        await setup_admin(client)
        cookie = client.cookies.get("proxus_session")
        csrf = client.csrf
    assert cookie
    async with running_hub(settings) as client:
        client.cookies.set("proxus_session", cookie)
        client.headers["X-CSRF-Token"] = csrf
        assert (await client.get("/api/auth/me")).status_code == 200  # Redis kept the session
        assert (await client.post("/api/auth/logout")).status_code == 200
        client.cookies.set("proxus_session", cookie)
        assert (await client.get("/api/auth/me")).status_code == 401


async def test_login_rotates_the_session_id(settings: Settings) -> None:
    async with running_hub(settings) as client:
        await setup_admin(client)
        first = client.cookies.get("proxus_session")
        await client.login(*ADMIN)
        second = client.cookies.get("proxus_session")
        assert first and second and first != second
        client.cookies.set("proxus_session", first)
        assert (await client.get("/api/auth/me")).status_code == 401  # the old id is dead


async def test_changes_without_the_csrf_token_are_refused(settings: Settings) -> None:
    async with running_hub(settings) as client:
        await setup_admin(client)
        del client.headers["X-CSRF-Token"]
        body = {"username": "bob", "password": "password-123", "role": "viewer"}
        refused = await client.post("/api/users", json=body)
        assert refused.status_code == 403 and "CSRF" in refused.json()["message"]
        client.headers["X-CSRF-Token"] = "wrong"
        assert (await client.post("/api/users", json=body)).status_code == 403
        client.headers["X-CSRF-Token"] = client.csrf
        assert (await client.post("/api/users", json=body)).status_code == 201


async def test_failed_logins_are_throttled(settings: Settings) -> None:
    async with running_hub(settings) as client:
        await setup_admin(client)
        codes = [
            (await client.post("/api/auth/login", json={"username": "admin", "password": "nope-nope"})).status_code
            for _ in range(settings.login_attempts + 1)
        ]
        assert codes[: settings.login_attempts] == [401] * settings.login_attempts
        assert codes[-1] == 429
        # Even the right password waits out the window now.
        right = await client.post("/api/auth/login", json={"username": ADMIN[0], "password": ADMIN[1]})
        assert right.status_code == 429


async def test_roles_and_api_tokens(settings: Settings) -> None:
    async with running_hub(settings) as admin:
        await setup_admin(admin)
        await add_user(admin, "vera", "viewer")
        async with running_hub(replace(settings)) as viewer:
            await viewer.login("vera", "password-123")
            assert (await viewer.get("/api/users")).status_code == 403
            created = await viewer.post("/api/tokens", json={"name": "grafana"})
            assert created.status_code == 201
            secret = created.json()["secret"]
        async with running_hub(settings) as bot:
            bot.headers["Authorization"] = f"Bearer {secret}"
            assert (await bot.get("/api/auth/me")).json()["role"] == "viewer"
            assert (await bot.get("/api/users")).status_code == 403
            bad = await bot.get("/api/auth/me", headers={"Authorization": "Bearer pxs_nope"})
            assert bad.status_code == 401
        # Demoting a user ends their sessions; an admin cannot remove the last admin.
        users = (await admin.get("/api/users")).json()
        me = next(u for u in users if u["username"] == ADMIN[0])
        assert (await admin.patch(f"/api/users/{me['id']}", json={"role": "viewer"})).status_code == 409


async def test_every_change_is_audited_with_before_and_after(settings: Settings) -> None:
    async with running_hub(settings) as client:
        await setup_admin(client)
        await add_user(client, "ed", "editor")
        users = (await client.get("/api/users")).json()
        ed = next(u for u in users if u["username"] == "ed")
        await client.patch(f"/api/users/{ed['id']}", json={"role": "viewer"})
        await client.post("/api/auth/login", json={"username": "ed", "password": "wrong-password"})
        entries = (await client.get("/api/audit", params={"entity_type": "user", "entity_id": str(ed["id"])})).json()
        actions = [e["action"] for e in entries]
        assert actions[:2] == ["user.update", "user.create"]
        update = entries[0]
        assert update["before"]["role"] == "editor" and update["after"]["role"] == "viewer"
        assert update["username"] == ADMIN[0]
        failed = (await client.get("/api/audit", params={"action": "login.failed"})).json()
        assert failed and failed[0]["entity_id"] == "ed"
        assert all("password" not in str(e["after"]) for e in entries)


async def test_bad_input_gets_a_4xx_naming_the_field(settings: Settings) -> None:
    async with running_hub(settings) as client:
        await setup_admin(client)
        response = await client.post("/api/users", json={"username": "has space", "password": "short"})
        assert response.status_code == 400
        body = response.json()
        assert body["error"] == "invalid_request"
        assert "username" in body["message"] or "password" in body["message"]
        assert (await client.get("/api/users/99999999")).status_code == 404
        assert (
            await client.post("/api/users", content=b"{not json", headers={"Content-Type": "application/json"})
        ).status_code == 400


async def test_memory_sessions_when_redis_is_not_configured(settings: Settings) -> None:
    async with running_hub(replace(settings, redis_url=None)) as client:
        await setup_admin(client)
        assert (await client.get("/api/health")).json()["sessions"] == "memory"
