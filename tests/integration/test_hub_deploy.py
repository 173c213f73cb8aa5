"""Deploy against a real Hub and a real edge agent (its own leaf NATS server joined to the hub's):
plan → KV → edge applies → deployment status; failures with the edge's error; undeploy; moving a
flow between edges; redeploy after a device change; live events; roles."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import nats
import pytest
from nats.js.errors import KeyNotFoundError

from backend.deploy.events import DeployEvent, Subscription
from backend.settings import Settings
from proxus.catalog import Catalog
from proxus.plan import PlanBundle, decode_bundle
from proxus.services.nats import NatsServer
from runtime.edge import EdgeAgent, EdgeSettings
from tests.integration.hub_support import Client, hub_settings, running_hub
from tests.integration.test_hub_flows import Headers, create, save, sim_flow, team

CATALOG = Catalog.load()


@pytest.fixture
def hub_server(nats_server_factory: Any) -> NatsServer:
    server: NatsServer = nats_server_factory.hub()
    return server


@pytest.fixture
def settings(tmp_path: Path, database_url: str, hub_server: NatsServer, redis_url: str, redis_prefix: str) -> Settings:
    return hub_settings(tmp_path, database_url, hub_server.url, redis_url, redis_prefix)


async def wait_until(check: Callable[[], Any], timeout: float = 30.0, what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if asyncio.iscoroutine(result):
            result = await result
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")
        await asyncio.sleep(0.05)


@asynccontextmanager
async def edge_agent(
    tmp_path: Path, hub: NatsServer, edge: str = "e1", catalog: Catalog = CATALOG
) -> AsyncIterator[EdgeAgent]:
    agent = EdgeAgent(
        EdgeSettings(
            edge_id=edge, data_dir=tmp_path / f"edge-{edge}", hub_leaf_url=hub.leaf_url, heartbeat_s=0.3, resync_s=1.0
        ),
        catalog,
    )
    task = asyncio.create_task(agent.run())
    try:
        await wait_until(lambda: agent.host is not None or task.done(), 30, "the edge agent to start")
        if task.done():
            task.result()
        yield agent
    finally:
        # runtime/edge.py stops its runners iterating agent.flows while a late plan message may still
        # change it ("dictionary changed size during iteration"): stop receiving plans first.
        if agent._watch_sub is not None:
            with contextlib.suppress(Exception):
                await agent._watch_sub.unsubscribe()
        async with agent._apply_lock:
            agent.stopped.set()
        await asyncio.wait_for(task, 30)


async def bundle(hub: NatsServer, edge: str) -> PlanBundle | None:
    nc = await nats.connect(hub.url)
    try:
        kv = await nc.jetstream(domain="hub").key_value("plans")
        try:
            entry = await kv.get(edge)
        except KeyNotFoundError:
            return None
        return decode_bundle(entry.value) if entry.value else None
    finally:
        await nc.close()


async def deployment(client: Client, deployment_id: int) -> dict[str, Any]:
    response = await client.get(f"/api/deployments/{deployment_id}")
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def settled(client: Client, deployment_id: int, state: str, timeout: float = 30.0) -> dict[str, Any]:
    async def check() -> dict[str, Any] | None:
        body = await deployment(client, deployment_id)
        return body if body["state"] == state else None

    result: dict[str, Any] = await wait_until(check, timeout, f"deployment {deployment_id} to be {state}")
    return result


async def deploy(client: Client, who: Headers, flow_id: str, **body: Any) -> dict[str, Any]:
    response = await client.post(f"/api/flows/{flow_id}/deploy", json=body, headers=who)
    assert response.status_code == 201, response.text
    result: dict[str, Any] = response.json()
    return result


async def drain(subscription: Subscription) -> list[DeployEvent]:
    """Every event received so far (they are handed over from the app's thread: give them a moment)."""
    await asyncio.sleep(0.2)
    events = []
    while subscription.pending():
        event = await subscription.get(timeout=1)
        assert event is not None
        events.append(event)
    return events


async def test_deploy_round_trip_with_a_real_edge(settings: Settings, hub_server: NatsServer, tmp_path: Path) -> None:
    async with running_hub(settings) as client, edge_agent(tmp_path, hub_server) as agent:
        people = await team(client)
        alice = people["alice"]
        await create(client, alice, sim_flow("line1"))
        events = client.app.state.deploy_events.subscribe(flow_id="line1")

        first = await deploy(client, alice, "line1", message="first")
        assert first["flow_id"] == "line1" and first["version"] == 1 and first["action"] == "deploy"
        assert first["by"] == "alice" and first["message"] == "first"
        (edge,) = first["edges"]
        assert edge["edge"] == "e1" and edge["action"] == "apply" and edge["steps"] == 3
        plan_hash = edge["hash"]
        assert plan_hash.startswith("sha256:") and edge["state"] in ("pending", "applied")

        # The plan is in the edge's key of the plans bucket ...
        held = await bundle(hub_server, "e1")
        assert held is not None and held.plans["line1"].hash == plan_hash
        # ... the edge applies it and reports, and the deployment shows it.
        done = await settled(client, first["id"], "applied")
        assert done["edges"][0]["state"] == "applied" and done["edges"][0]["hash"] == plan_hash
        assert agent.flows["line1"].applied_hash == plan_hash and agent.flows["line1"].state == "applied"
        states = [(e.edge, e.state, e.hash) for e in await drain(events)]
        assert states == [("e1", "pending", plan_hash), ("e1", "applied", plan_hash)]

        flow = (await client.get("/api/flows/line1")).json()
        assert flow["deployed_version"] == 1

        # The same version again: the edge runs that hash already; its heartbeat confirms it.
        again = await deploy(client, alice, "line1")
        await settled(client, again["id"], "applied", timeout=10)

        # A new version replaces the plan on the edge.
        assert (await save(client, alice, "line1", sim_flow("line1", factor=3.0), base=1)).status_code == 200
        second = await deploy(client, people["bob"], "line1")
        new_hash = second["edges"][0]["hash"]
        assert second["version"] == 2 and new_hash != plan_hash
        await settled(client, second["id"], "applied")
        assert agent.flows["line1"].applied_hash == new_hash
        await wait_until(lambda: agent.flows["line1"].runner is not None, 10)

        # Deploying an older version is allowed: it is what runs then.
        older = await deploy(client, alice, "line1", version=1)
        assert older["version"] == 1 and older["edges"][0]["hash"] == plan_hash
        await settled(client, older["id"], "applied")

        history = (await client.get("/api/deployments", params={"flow_id": "line1"}, headers=people["vic"])).json()
        assert [d["id"] for d in history] == [older["id"], second["id"], again["id"], first["id"]]
        assert all(d["state"] == "applied" for d in history)

        # A deployed flow cannot be deleted.
        refused = await client.delete("/api/flows/line1", headers=alice)
        assert refused.status_code == 409 and "undeploy" in refused.json()["message"]

        # Undeploy: the flow leaves the bundle; the edge stops it and reports removed.
        off = await client.post("/api/flows/line1/undeploy", json={"message": "line stopped"}, headers=alice)
        assert off.status_code == 201, off.text
        assert off.json()["action"] == "undeploy" and off.json()["version"] is None
        assert [(e["edge"], e["action"]) for e in off.json()["edges"]] == [("e1", "remove")]
        removed = await settled(client, off.json()["id"], "removed")
        assert removed["edges"][0]["state"] == "removed"
        held = await bundle(hub_server, "e1")
        assert held is not None and "line1" not in held.plans
        await wait_until(lambda: "line1" not in agent.flows, 10, "the edge to drop the flow")
        assert (await client.get("/api/flows/line1")).json()["deployed_version"] is None
        twice = await client.post("/api/flows/line1/undeploy", headers=alice)
        assert twice.status_code == 409

        audit = (
            await client.get("/api/audit", params={"entity_id": "line1", "action": "flow."}, headers=people["admin"])
        ).json()
        actions = [a["action"] for a in audit]
        assert actions.count("flow.deploy") == 4 and actions[0] == "flow.undeploy"
        assert (await client.delete("/api/flows/line1", headers=alice)).status_code == 204
        events.close()


async def test_an_edge_that_cannot_run_the_plan_reports_failed_with_its_error(
    settings: Settings, hub_server: NatsServer, tmp_path: Path
) -> None:
    reduced = Catalog([s for s in CATALOG.all_versions() if s.type_id != "transform.scale"])
    async with running_hub(settings) as client, edge_agent(tmp_path, hub_server, catalog=reduced) as agent:
        people = await team(client)
        alice = people["alice"]
        await create(client, alice, sim_flow("line2"))
        events = client.app.state.deploy_events.subscribe()
        started = await deploy(client, alice, "line2")
        failed = await settled(client, started["id"], "failed")
        (edge,) = failed["edges"]
        assert edge["state"] == "failed" and "transform.scale" in edge["error"]
        assert agent.flows["line2"].state == "failed"
        seen = await drain(events)
        assert [e.state for e in seen] == ["pending", "failed"]
        assert seen[-1].deployment_state == "failed" and "transform.scale" in seen[-1].error

        # A version the edge can run: applied; the failed deployment stays failed in the history.
        doc = sim_flow("line2")
        doc["nodes"] = [n for n in doc["nodes"] if n["id"] != "scale"]
        doc["edges"] = [{"id": "w1", "source": "sim", "target": "debug"}]
        assert (await save(client, alice, "line2", doc, base=1)).status_code == 200
        fixed = await deploy(client, alice, "line2")
        await settled(client, fixed["id"], "applied")
        assert (await deployment(client, started["id"]))["state"] == "failed"
        events.close()


async def test_a_flow_with_errors_is_not_deployed(settings: Settings, hub_server: NatsServer) -> None:
    async with running_hub(settings) as client:
        people = await team(client)
        alice = people["alice"]
        doc = sim_flow("loop")
        doc["edges"].append({"id": "back", "source": "scale", "target": "scale"})
        await create(client, alice, doc)
        response = await client.post("/api/flows/loop/deploy", json={}, headers=alice)
        assert response.status_code == 400, response.text
        body = response.json()
        assert body["error"] == "invalid_flow"
        assert [d["node_id"] for d in body["extra"]["diagnostics"] if d["code"] == "cycle"] == ["scale"]
        assert (await client.get("/api/deployments", headers=alice)).json() == []
        assert await bundle(hub_server, "e1") is None
        assert (await client.post("/api/flows/loop/deploy", json={"version": 7}, headers=alice)).status_code == 404
        assert (await client.post("/api/flows/none/deploy", json={}, headers=alice)).status_code == 404
        # Unregistered edge: a compile error naming the node.
        assert (await save(client, alice, "loop", sim_flow("loop", edge="nowhere"), base=1)).status_code == 200
        response = await client.post("/api/flows/loop/deploy", headers=alice)
        assert response.status_code == 400
        assert [d["code"] for d in response.json()["extra"]["diagnostics"]] == ["unknown_edge"]
        # Viewers cannot deploy.
        viewer = await client.post("/api/flows/loop/deploy", json={}, headers=people["vic"])
        assert viewer.status_code == 403


async def test_moving_a_flow_to_another_edge_removes_it_from_the_first(
    settings: Settings, hub_server: NatsServer, tmp_path: Path
) -> None:
    async with running_hub(settings) as client, edge_agent(tmp_path, hub_server) as agent:
        people = await team(client, edges=("e1", "e2"))
        alice = people["alice"]
        await create(client, alice, sim_flow("mover"))
        await create(client, alice, sim_flow("stays"))
        await settled(client, (await deploy(client, alice, "mover"))["id"], "applied")
        await settled(client, (await deploy(client, alice, "stays"))["id"], "applied")

        assert (await save(client, alice, "mover", sim_flow("mover", edge="e2"), base=1)).status_code == 200
        moved = await deploy(client, alice, "mover")
        by_edge = {e["edge"]: e for e in moved["edges"]}
        assert by_edge["e2"]["action"] == "apply" and by_edge["e1"]["action"] == "remove"

        async def e1_removed() -> bool:
            edges = {e["edge"]: e for e in (await deployment(client, moved["id"]))["edges"]}
            return bool(edges["e1"]["state"] == "removed")

        await wait_until(e1_removed, 30, "e1 to report the flow removed")
        assert "mover" not in agent.flows and agent.flows["stays"].state == "applied"
        # e2 has no agent running: it stays pending, its bundle holds the plan for when it comes.
        current = await deployment(client, moved["id"])
        assert current["state"] == "pending"
        e2 = await bundle(hub_server, "e2")
        e1 = await bundle(hub_server, "e1")
        assert e2 is not None and set(e2.plans) == {"mover"}
        assert e1 is not None and set(e1.plans) == {"stays"}

        # Undeploy reaches every edge holding the flow.
        events = client.app.state.deploy_events.subscribe(flow_id="mover")
        off = await client.post("/api/flows/mover/undeploy", headers=alice)
        assert [e["edge"] for e in off.json()["edges"]] == ["e2"]
        e2 = await bundle(hub_server, "e2")
        assert e2 is not None and e2.plans == {}
        # The pending apply on e2 was superseded by the undeploy.
        assert {e["edge"]: e["state"] for e in (await deployment(client, moved["id"]))["edges"]} == {
            "e1": "removed",
            "e2": "superseded",
        }
        seen = [(e.deployment_id, e.edge, e.state) for e in await drain(events)]
        assert (moved["id"], "e2", "superseded") in seen and (off.json()["id"], "e2", "pending") in seen
        events.close()


async def test_a_device_change_redeploys_the_flows_using_it(
    settings: Settings, hub_server: NatsServer, tmp_path: Path
) -> None:
    async with running_hub(settings) as client, edge_agent(tmp_path, hub_server) as agent:
        people = await team(client)
        alice = people["alice"]
        device = {
            "id": "meter1",
            "name": "Meter 1",
            "protocol": "modbus",
            "edge": "e1",
            "settings": {
                "host": "127.0.0.1",
                "port": 1502,
                "unit_id": 1,
                "registers": [{"tag": "voltage", "address": 0, "table": "input", "data_type": "float32"}],
            },
        }
        response = await client.post("/api/devices", json=device, headers=alice)
        assert response.status_code == 201, response.text
        doc = sim_flow("meters", edge=None)
        doc["nodes"][0] = {"id": "sim", "type": "modbus.read", "label": "Meter 1", "config": {"device": "meter1"}}
        await create(client, alice, doc)
        await create(client, alice, sim_flow("other"))  # does not use the device
        first = await deploy(client, alice, "meters")
        await settled(client, first["id"], "applied")
        other = await deploy(client, alice, "other")
        await settled(client, other["id"], "applied")
        old_hash = first["edges"][0]["hash"]

        # A change the plan does not see (the name): nothing is redeployed.
        response = await client.patch("/api/devices/meter1", json={"name": "Meter one"}, headers=alice)
        assert response.status_code == 200, response.text
        assert len((await client.get("/api/deployments", params={"flow_id": "meters"})).json()) == 1

        # A new port changes the plan: redeployed by "system", and the edge runs it.
        changed = {**device["settings"], "port": 1503}
        response = await client.patch("/api/devices/meter1", json={"settings": changed}, headers=alice)
        assert response.status_code == 200, response.text
        history = (await client.get("/api/deployments", params={"flow_id": "meters"})).json()
        assert len(history) == 2
        redeployed = history[0]
        assert redeployed["action"] == "redeploy" and redeployed["by"] == "system"
        assert redeployed["version"] == 1 and "meter1" in redeployed["message"]
        new_hash = redeployed["edges"][0]["hash"]
        assert new_hash != old_hash
        await settled(client, redeployed["id"], "applied")
        assert agent.flows["meters"].applied_hash == new_hash
        steps = {s.node_id: s for s in agent.flows["meters"].runner.plan.steps}  # type: ignore[union-attr]
        assert steps["sim"].config["port"] == 1503
        assert len((await client.get("/api/deployments", params={"flow_id": "other"})).json()) == 1
        audit = (await client.get("/api/audit", params={"action": "flow.redeploy"}, headers=people["admin"])).json()
        assert [(a["username"], a["entity_id"]) for a in audit] == [("system", "meters")]


async def test_deploy_is_refused_while_nats_is_down(settings: Settings, hub_server: NatsServer) -> None:
    async with running_hub(settings) as client:
        people = await team(client)
        await create(client, people["alice"], sim_flow("down"))
        hub_server.stop()
        response = await client.post("/api/flows/down/deploy", json={}, headers=people["alice"])
        assert response.status_code == 503, response.text
        assert (await client.get("/api/deployments")).json() == []
        assert (await client.get("/api/flows/down")).json()["deployed_version"] is None
