"""The edge agent against a real hub NATS server with its own leaf server: apply, report, autonomy."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import msgspec
import nats
import pytest
from nats.aio.client import Client

from proxus.plan import Plan, PlanBundle
from proxus.services.nats import NatsServer
from runtime.edge import EdgeAgent, EdgeSettings, request_subject
from tests.integration.runtime_support import catalog_with_test_nodes, flow, plan_of, sim, wait_for

CATALOG = catalog_with_test_nodes()


def demo_plan(factor: float = 1.0, edge: str = "e1") -> Plan:
    data = flow(
        [
            ("s", "simulator", sim(rate_hz=20, tags=2)),
            ("x", "transform.scale", {"factor": factor}),
            ("d", "sink.debug", {}),
        ],
        [("s", "x"), ("x", "d")],
        id="demo",
    )
    data["metadata"] = {"default_edge": edge}
    return plan_of(data, CATALOG, edge)


class Statuses(list[dict[str, Any]]):
    def plan_states(self, flow_id: str = "demo") -> list[tuple[str, str]]:
        return [
            (m.get("state", ""), m.get("hash", "")) for m in self if m["kind"] == "plan" and m.get("flow_id") == flow_id
        ]

    def heartbeats(self) -> list[dict[str, Any]]:
        return [m for m in self if m["kind"] == "heartbeat"]


@pytest.fixture
async def hub(tmp_path: Path) -> AsyncIterator[tuple[NatsServer, Client, Statuses]]:
    server = NatsServer.hub(tmp_path)
    server.start()
    nc = await nats.connect(server.url)
    statuses = Statuses()

    async def on_status(msg: Any) -> None:
        statuses.append(json.loads(msg.data))

    await nc.subscribe("status.e1", cb=on_status)
    js = nc.jetstream()
    await js.create_key_value(bucket="plans", history=5)
    try:
        yield server, nc, statuses
    finally:
        await nc.close()
        server.stop()


async def start_agent(settings: EdgeSettings) -> tuple[EdgeAgent, asyncio.Task[None]]:
    agent = EdgeAgent(settings, CATALOG)
    task = asyncio.create_task(agent.run())
    await wait_for(lambda: agent.host is not None or task.done(), timeout=20)
    if task.done():
        task.result()
    return agent, task


async def stop_agent(agent: EdgeAgent, task: asyncio.Task[None]) -> None:
    agent.stopped.set()
    await asyncio.wait_for(task, 20)


async def test_edge_applies_its_plan_reports_it_and_runs_it(tmp_path: Path, hub: Any) -> None:
    server, nc, statuses = hub
    settings = EdgeSettings(
        edge_id="e1", data_dir=tmp_path / "edge", hub_leaf_url=server.leaf_url, heartbeat_s=0.3, resync_s=1.0
    )
    agent, task = await start_agent(settings)
    try:
        kv = await nc.jetstream().key_value("plans")
        plan = demo_plan()
        await kv.put("e1", PlanBundle(edge="e1", plans={"demo": plan}).encode())
        await wait_for(lambda: ("applied", plan.hash) in statuses.plan_states(), timeout=30)

        def flowing() -> bool:
            beats = statuses.heartbeats()
            return (
                bool(beats) and beats[-1]["flows"].get("demo", {}).get("nodes", {}).get("d", {}).get("points_in", 0) > 0
            )

        await wait_for(flowing, timeout=30)
        beat = statuses.heartbeats()[-1]
        assert beat["flows"]["demo"]["hash"] == plan.hash
        assert beat["rss_bytes"] > 0 and "outbox_depth" in beat and "cpu_percent" in beat
        assert beat["devices"]["demo/s"]["connected"] is True

        # A tampered plan is refused and reported; the last good plan keeps running.
        good_runner = agent.flows["demo"].runner
        tampered = json.loads(PlanBundle(edge="e1", plans={"demo": demo_plan(factor=3)}).encode())
        tampered["plans"]["demo"]["steps"][1]["config"]["factor"] = 4
        await kv.put("e1", json.dumps(tampered).encode())
        await wait_for(lambda: any(m.get("state") == "failed" for m in statuses if m["kind"] == "plan"))
        assert agent.flows["demo"].runner is good_runner
        assert agent.flows["demo"].applied_hash == plan.hash

        # A new plan replaces the old one.
        second = demo_plan(factor=10)
        await kv.put("e1", PlanBundle(edge="e1", plans={"demo": second}).encode())
        await wait_for(lambda: ("applied", second.hash) in statuses.plan_states())

        # Requests through the edge: ping answers with what runs.
        reply = await nc.request(request_subject("e1", "ping"), b"{}", timeout=5)
        assert json.loads(reply.data)["flows"] == {"demo": second.hash}

        # Undeploy: deleting the key stops the flow.
        await kv.delete("e1")
        await wait_for(lambda: "demo" not in agent.flows)
        assert not (settings.data_dir / "plans" / "demo.json").exists()
    finally:
        await stop_agent(agent, task)


async def test_edge_restarted_without_the_hub_runs_its_last_plan(tmp_path: Path, hub: Any) -> None:
    server, nc, statuses = hub
    settings = EdgeSettings(
        edge_id="e1", data_dir=tmp_path / "edge", hub_leaf_url=server.leaf_url, heartbeat_s=0.3, resync_s=1.0
    )
    agent, task = await start_agent(settings)
    plan = demo_plan()
    try:
        kv = await nc.jetstream().key_value("plans")
        await kv.put("e1", PlanBundle(edge="e1", plans={"demo": plan}).encode())
        await wait_for(lambda: ("applied", plan.hash) in statuses.plan_states(), timeout=30)
    finally:
        await stop_agent(agent, task)
    await nc.close()
    server.stop()  # the hub is gone

    agent, task = await start_agent(settings)
    try:
        await wait_for(lambda: "demo" in agent.flows and agent.flows["demo"].runner is not None)
        runner = agent.flows["demo"].runner
        assert runner is not None and runner.plan.hash == plan.hash
        await wait_for(lambda: runner.steps["d"].metrics.points_in > 0)
    finally:
        await stop_agent(agent, task)


def test_plan_bundle_round_trips() -> None:
    bundle = PlanBundle(edge="e1", plans={"demo": demo_plan()})
    assert msgspec.json.decode(bundle.encode(), type=PlanBundle) == bundle
