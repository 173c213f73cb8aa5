"""Stored credentials reach the edge that needs them — and only that edge — and stay encrypted there."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import nats

from proxus.credrefs import credentials_subject
from tests.integration.runtime_support import http_endpoint, wait_for
from tests.integration.test_hub_edges import hub, register_edge, running_edge  # noqa: F401 - fixture

SECRET = "s3cr3t-token-for-the-cloud"


def http_flow(url: str, edge: str) -> dict[str, Any]:
    return {
        "format": "proxus.flow",
        "schema_version": 1,
        "id": "forward",
        "name": "Forward",
        "metadata": {"default_edge": edge},
        "nodes": [
            {"id": "sim", "type": "simulator", "config": {"device_name": "m", "rate_hz": 10, "tags": [{"tag": "t"}]}},
            {
                "id": "cloud",
                "type": "sink.http",
                "config": {"url": url, "credential": "cloud-token", "flush_interval_ms": 100},
            },
        ],
        "edges": [{"id": "w", "source": "sim", "target": "cloud"}],
    }


async def test_an_http_sink_authenticates_with_a_credential_shipped_to_its_edge(
    hub: Any,  # noqa: F811 - the fixture imported above
    tmp_path: Path,
) -> None:
    client = hub.client
    created = await client.post(
        "/api/credentials", json={"id": "cloud-token", "name": "Cloud token", "kind": "token", "secret": SECRET}
    )
    assert created.status_code == 201, created.text
    other = await client.post(
        "/api/credentials", json={"id": "other", "name": "Not for this edge", "kind": "token", "secret": "nope-nope"}
    )
    assert other.status_code == 201, other.text
    edge = await register_edge(client, "e1")
    with http_endpoint() as endpoint:
        async with running_edge("e1", edge["hub_leaf_url"], tmp_path / "edge-e1") as agent:
            assert (
                await client.post("/api/flows", json={"document": http_flow(endpoint.url, "e1")})
            ).status_code == 201
            deployed = await client.post("/api/flows/forward/deploy", json={"message": "go"})
            assert deployed.status_code == 201, deployed.text
            await wait_for(lambda: len(endpoint.requests) > 0, timeout=30)
            assert endpoint.requests[0]["Authorization"] == f"Bearer {SECRET}"

            # The edge may ask only for what its plans use: "other" is refused.
            leaf_url = agent.nc.connected_url  # the edge's own leaf server
            assert leaf_url is not None
            nc = await nats.connect(f"nats://{leaf_url.hostname}:{leaf_url.port}", inbox_prefix=b"_INBOX_e1")
            try:
                reply = await nc.request(credentials_subject("e1"), json.dumps({"ids": ["other"]}).encode(), timeout=5)
            finally:
                await nc.close()
            assert json.loads(reply.data) == {"credentials": [], "missing": ["other"]}

        # At rest on the edge: encrypted, not the plaintext.
        stored = (tmp_path / "edge-e1" / "credentials.enc").read_bytes()
        assert SECRET.encode() not in stored and stored.startswith(b"gAAAA")
