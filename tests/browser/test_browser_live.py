"""Deploy to a real edge runtime, then watch it from the editor: live debug messages and node badges."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from browser_support import ADMIN, SIM_CONFIG, Api, node, node_locator, open_flow, ui_login, wire

from proxus.catalog import Catalog
from runtime.edge import EdgeAgent, EdgeSettings

pytestmark = [pytest.mark.timeout(240)]


@contextlib.asynccontextmanager
async def edge_agent(tmp_path: Path, hub_nats: Any, edge: str) -> AsyncIterator[EdgeAgent]:
    agent = EdgeAgent(
        EdgeSettings(edge_id=edge, data_dir=tmp_path / f"edge-{edge}", hub_leaf_url=hub_nats.leaf_url, heartbeat_s=0.5),
        Catalog.load(),
    )
    task = asyncio.create_task(agent.run())
    deadline = time.monotonic() + 30
    while agent.host is None and not task.done() and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    if task.done():
        task.result()
    try:
        yield agent
    finally:
        if agent._watch_sub is not None:
            with contextlib.suppress(Exception):
                await agent._watch_sub.unsubscribe()
        async with agent._apply_lock:
            agent.stopped.set()
        await asyncio.wait_for(task, 30)


async def test_deploy_to_an_edge_then_watch_debug_messages_and_badges(
    hub: Any, open_page: Any, shot: Any, tmp_path: Path
) -> None:
    async with Api(hub.url) as api, edge_agent(tmp_path, hub.nats, "e1"):
        await api.setup_admin()
        await api.add_edge("e1")
        await api.create_flow(
            {
                "format": "proxus.flow",
                "schema_version": 1,
                "id": "live-line",
                "name": "Live line",
                "metadata": {"default_edge": "e1"},
                "nodes": [
                    node("sim", "simulator", 0, 0, {**SIM_CONFIG, "rate_hz": 5}, "Line 1"),
                    node("scale", "transform.scale", 280, 0, {"factor": 10.0}),
                    node("debug", "sink.debug", 560, 0, {"label": "scaled"}),
                ],
                "edges": [wire("sim", "scale"), wire("scale", "debug")],
            }
        )
        page = await open_page()
        await ui_login(page, *ADMIN)
        await open_flow(page, "live-line")
        await page.get_by_test_id("deploy").click()
        await page.get_by_test_id("deploy-panel").get_by_text("steps").wait_for()
        await page.get_by_test_id("deploy-confirm").click()
        status = page.get_by_test_id("deployment-status")
        await status.get_by_text("Deployment #1: applied").wait_for(timeout=60_000)

        await page.get_by_test_id("debug").click()
        message = page.get_by_test_id("debug-panel").locator(".debug-msg").first
        await message.wait_for(timeout=60_000)
        assert "line1/temperature" in await message.inner_text()
        assert "scaled" in await message.inner_text()

        # The debug node's own messages only (not the live tap of its input as well).
        labels = await page.get_by_test_id("debug-panel").locator(".debug-meta b").all_inner_texts()
        assert labels and set(labels) == {"scaled"}

        # Watch any node: its output appears too.
        await page.get_by_test_id("debug").click()  # closes the panel, the inspector comes back
        await node_locator(page, "scale").click()
        await page.get_by_role("button", name="Watch in debug").click()
        await page.get_by_test_id("debug").click()
        tapped = (
            page.get_by_test_id("debug-panel").locator(".debug-msg", has=page.locator(".pill", has_text="out")).first
        )
        await tapped.wait_for(timeout=30_000)
        assert "line1/temperature" in await tapped.inner_text()

        # Node badges from the edge's heartbeats (polled every few seconds).
        await node_locator(page, "scale").locator(".node-status").wait_for(timeout=30_000)
        await shot(page, "17-live-debug-and-badges")

        # Undeploy (confirmed): the edge stops the flow and says so.
        page.on("dialog", lambda dialog: asyncio.ensure_future(dialog.accept()))
        await page.get_by_test_id("deploy").click()
        await page.get_by_test_id("undeploy").click()
        await page.get_by_test_id("deployment-status").get_by_text("removed").first.wait_for(timeout=60_000)
        assert (await api.get("/api/flows/live-line"))["deployed_version"] is None
