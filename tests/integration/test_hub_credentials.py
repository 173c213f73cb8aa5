"""Stored credentials against a real Hub: encrypted at rest, never shown, never audited, admin only."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import asyncpg  # type: ignore[import-untyped, unused-ignore]
import pytest
from litestar import Litestar

from backend.app import create_app
from backend.credentials import credential_ids, credentials_for_edge
from backend.db import create_pool
from nodes.host import Credential
from tests.integration.hub_support import Client, hub_settings, setup_admin
from tests.integration.test_hub_edges import login_as

SECRET = "s3cr3t-Pa55word-that-must-not-leak"
NEW_SECRET = "an0ther-s3cret-that-must-not-leak"


@pytest.fixture
async def hub(
    tmp_path: Path, database_url: str, redis_url: str, redis_prefix: str, nats_server_factory: Any
) -> AsyncIterator[tuple[Client, Litestar]]:
    server = nats_server_factory.hub()
    app = create_app(hub_settings(tmp_path, database_url, server.url, redis_url, redis_prefix))
    async with Client(app=app, base_url="http://hub.test") as client:
        await setup_admin(client)
        yield client, app


async def raw_secret(database_url: str, credential_id: str) -> bytes:
    conn = await asyncpg.connect(database_url)
    try:
        value = await conn.fetchval("SELECT secret_encrypted FROM credentials WHERE id = $1", credential_id)
    finally:
        await conn.close()
    return bytes(value)


async def test_credentials_are_encrypted_never_shown_and_never_audited(
    hub: tuple[Client, Litestar], database_url: str
) -> None:
    client, app = hub
    body = {"name": "PLC line 1", "kind": "username_password", "username": "operator", "secret": SECRET}
    created = await client.post("/api/credentials", json=body)
    assert created.status_code == 201, created.text
    info = created.json()
    assert info["id"] == "plc-line-1" and info["kind"] == "username_password" and info["username"] == "operator"
    assert "secret" not in info and SECRET not in created.text

    # At rest: a Fernet token, not the plaintext; the Hub's key opens it.
    stored = await raw_secret(database_url, "plc-line-1")
    assert SECRET.encode() not in stored and stored.startswith(b"gAAAA")
    assert app.state.box.decrypt(stored) == SECRET

    listed = await client.get("/api/credentials")
    assert listed.status_code == 200 and [c["id"] for c in listed.json()] == ["plc-line-1"]
    got = await client.get("/api/credentials/plc-line-1")
    assert got.status_code == 200 and SECRET not in listed.text + got.text and "secret" not in got.json()

    # Replacing the secret re-encrypts it; renaming keeps the id.
    updated = await client.patch("/api/credentials/plc-line-1", json={"secret": NEW_SECRET, "name": "PLC 1"})
    assert updated.status_code == 200, updated.text
    assert updated.json()["name"] == "PLC 1" and updated.json()["id"] == "plc-line-1"
    stored_again = await raw_secret(database_url, "plc-line-1")
    assert stored_again != stored and app.state.box.decrypt(stored_again) == NEW_SECRET

    token = await client.post(
        "/api/credentials", json={"id": "api", "name": "Cloud API", "kind": "token", "secret": "tok-123456789"}
    )
    assert token.status_code == 201 and token.json()["username"] == ""

    deleted = await client.delete("/api/credentials/api")
    assert deleted.status_code == 204
    assert (await client.get("/api/credentials/api")).status_code == 404

    audit = await client.get("/api/audit", params={"entity_type": "credential"})
    assert [e["action"] for e in audit.json()] == [
        "credential.delete",
        "credential.create",
        "credential.update",
        "credential.create",
    ]
    for secret in (SECRET, NEW_SECRET, "tok-123456789"):
        assert secret not in audit.text
    assert audit.json()[2]["after"]["secret_changed"] is True


async def test_validation_and_conflicts(hub: tuple[Client, Litestar]) -> None:
    client, _ = hub
    missing_user = await client.post(
        "/api/credentials", json={"name": "x", "kind": "username_password", "secret": "pw"}
    )
    assert missing_user.status_code == 400 and missing_user.json()["details"][0]["field"] == "username"
    no_header = await client.post("/api/credentials", json={"name": "h", "kind": "header", "secret": "v"})
    assert no_header.status_code == 400 and no_header.json()["details"][0]["field"] == "username"
    bad_kind = await client.post("/api/credentials", json={"name": "k", "kind": "ssh_key", "secret": "v"})
    assert bad_kind.status_code == 400 and "kind" in bad_kind.text
    unknown = await client.post("/api/credentials", json={"name": "k", "kind": "token", "secret": "v", "extra": 1})
    assert unknown.status_code == 400
    empty = await client.post("/api/credentials", json={"name": "k", "kind": "token", "secret": ""})
    assert empty.status_code == 400 and "secret" in empty.text
    bad_id = await client.post("/api/credentials", json={"id": "a/b", "name": "k", "kind": "token", "secret": "v"})
    assert bad_id.status_code == 400 and "id" in bad_id.text

    ok = {"name": "Header", "kind": "header", "username": "Authorization", "secret": "Bearer abc"}
    assert (await client.post("/api/credentials", json=ok)).status_code == 201
    again = await client.post("/api/credentials", json=ok)
    assert again.status_code == 409 and again.json()["details"][0]["field"] == "name"
    assert (await client.get("/api/credentials/nope")).status_code == 404
    assert (await client.patch("/api/credentials/nope", json={"secret": "x"})).status_code == 404


async def test_only_admins_manage_credentials(hub: tuple[Client, Litestar]) -> None:
    client, _ = hub
    created = await client.post("/api/credentials", json={"name": "t", "kind": "token", "secret": "tok"})
    assert created.status_code == 201
    for username, role in (("ed", "editor"), ("vi", "viewer")):
        other = await login_as(client, username, role)
        assert (await other.get("/api/credentials")).status_code == 403
        assert (await other.get("/api/credentials/t")).status_code == 403
        body = {"name": "x", "kind": "token", "secret": "tok"}
        assert (await other.post("/api/credentials", json=body)).status_code == 403
        assert (await other.patch("/api/credentials/t", json={"secret": "y"})).status_code == 403
        assert (await other.delete("/api/credentials/t")).status_code == 403


async def test_credentials_in_use_stay_and_edges_get_them_decrypted(
    hub: tuple[Client, Litestar], database_url: str
) -> None:
    client, app = hub
    body = {"id": "opc-user", "name": "OPC user", "kind": "username_password", "username": "op", "secret": SECRET}
    assert (await client.post("/api/credentials", json=body)).status_code == 201
    extra = {"id": "cloud", "name": "Cloud", "kind": "token", "secret": "tok-1"}
    assert (await client.post("/api/credentials", json=extra)).status_code == 201
    for edge in ("e1", "e2"):
        assert (await client.post("/api/edges", json={"id": edge})).status_code == 201
    device = {
        "id": "press",
        "name": "Press",
        "protocol": "opcua",
        "edge": "e1",
        "settings": {"endpoint": "opc.tcp://127.0.0.1:4840", "credential": "opc-user"},
    }
    assert (await client.post("/api/devices", json=device)).status_code == 201, device

    used = (await client.get("/api/credentials/opc-user")).json()["used_by"]
    assert used == {"devices": ["press"], "nodes": []}
    refused = await client.delete("/api/credentials/opc-user")
    assert refused.status_code == 409 and "press" in refused.json()["message"]

    # Flow nodes that name a credential (reported by the flows domain's hook) count as users too.
    async def node_refs(conn: Any) -> dict[str, list[dict[str, str]]]:
        return {"cloud": [{"flow_id": "f1", "node_id": "http1", "flow_name": "Upload"}]}

    app.state.credential_node_refs = node_refs
    cloud = (await client.get("/api/credentials/cloud")).json()["used_by"]
    assert cloud["nodes"] == [{"flow_id": "f1", "node_id": "http1", "flow_name": "Upload"}]
    assert (await client.delete("/api/credentials/cloud")).status_code == 409
    del app.state.credential_node_refs

    pool = await create_pool(database_url)
    try:
        async with pool.acquire() as conn:
            box = app.state.box
            assert await credentials_for_edge(conn, box, "e1") == [
                Credential(id="opc-user", kind="username_password", username="op", secret=SECRET)
            ]
            assert await credentials_for_edge(conn, box, "e2") == []
            with_extra = await credentials_for_edge(conn, box, "e2", extra_ids=["cloud", "missing"])
            assert [(c.id, c.secret) for c in with_extra] == [("cloud", "tok-1")]
            assert await credential_ids(conn) == {"opc-user", "cloud"}
            assert SECRET not in repr(with_extra + await credentials_for_edge(conn, box, "e1"))
    finally:
        await pool.close()

    assert (await client.delete("/api/devices/press")).status_code == 204
    assert (await client.delete("/api/credentials/opc-user")).status_code == 204
