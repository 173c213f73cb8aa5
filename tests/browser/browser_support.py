"""What the browser tests share: an API client for arranging data, and UI steps a user takes."""

from __future__ import annotations

import itertools
import re
from typing import Any

import httpx

_FAILED_RESOURCE = re.compile(r"^Failed to load resource: the server responded with a status of (\d{3})")
_ALLOWED: dict[int, set[int]] = {}


def allow_http_errors(page: Any, *statuses: int) -> None:
    """Declare that this page will see API answers with these statuses (a refused import, a 409):
    Chromium logs such responses to the console; they are the Hub's answer, not an app error."""
    _ALLOWED.setdefault(id(page), set()).update(statuses)


def allowed_http_error(page: Any, text: str) -> bool:
    failed = _FAILED_RESOURCE.match(text)
    return failed is not None and int(failed.group(1)) in _ALLOWED.get(id(page), set())


ADMIN = ("admin", "correct horse battery")


class Api:
    """The Hub's API as a signed-in user (for arranging test data; the assertions go through the UI)."""

    def __init__(self, base_url: str) -> None:
        self.http = httpx.AsyncClient(base_url=base_url, timeout=60)

    async def __aenter__(self) -> Api:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.http.aclose()

    def _csrf(self, body: dict[str, Any]) -> None:
        self.http.headers["X-CSRF-Token"] = body["csrf_token"]

    async def setup_admin(self) -> None:
        r = await self.http.post("/api/auth/setup", json={"username": ADMIN[0], "password": ADMIN[1]})
        assert r.status_code == 201, r.text
        self._csrf(r.json())

    async def login(self, username: str, password: str) -> None:
        r = await self.http.post("/api/auth/login", json={"username": username, "password": password})
        assert r.status_code == 200, r.text
        self._csrf(r.json())

    async def add_user(self, username: str, role: str, password: str = "password-123") -> None:
        r = await self.http.post("/api/users", json={"username": username, "password": password, "role": role})
        assert r.status_code == 201, r.text

    async def add_edge(self, edge_id: str = "local") -> None:
        """Register an edge gateway (flows place their source nodes on edge "local" by default)."""
        r = await self.http.post("/api/edges", json={"id": edge_id, "name": edge_id})
        assert r.status_code == 201, r.text

    async def create_flow(self, document: dict[str, Any], message: str = "created by the test") -> dict[str, Any]:
        r = await self.http.post("/api/flows", json={"document": document, "message": message})
        assert r.status_code == 201, r.text
        body: dict[str, Any] = r.json()
        return body

    async def post(self, path: str, body: dict[str, Any], status: int = 201) -> Any:
        r = await self.http.post(path, json=body)
        assert r.status_code == status, r.text
        return r.json()

    async def get(self, path: str) -> Any:
        r = await self.http.get(path)
        assert r.status_code == 200, r.text
        return r.json()

    async def put(self, path: str, body: dict[str, Any]) -> Any:
        r = await self.http.put(path, json=body)
        assert r.status_code == 200, r.text
        return r.json()


def node(
    node_id: str, type_: str, x: float, y: float, config: dict[str, Any] | None = None, label: str = ""
) -> dict[str, Any]:
    return {
        "id": node_id,
        "type": type_,
        "type_version": 1,
        "label": label,
        "position": {"x": x, "y": y},
        "config": config or {},
    }


def wire(source: str, target: str, source_port: str = "out", target_port: str = "in") -> dict[str, Any]:
    return {
        "id": f"{source}-{target}",
        "source": source,
        "source_port": source_port,
        "target": target,
        "target_port": target_port,
    }


SIM_CONFIG = {"device_name": "line1", "rate_hz": 1, "tags": [{"tag": "temperature", "signal": "sine", "amplitude": 5}]}


def pipeline_document(flow_id: str = "line-one", name: str = "Line one") -> dict[str, Any]:
    """simulator → scale → tumbling window → debug: a valid flow."""
    return {
        "format": "proxus.flow",
        "schema_version": 1,
        "id": flow_id,
        "name": name,
        "metadata": {"default_edge": "local"},
        "nodes": [
            node("sim", "simulator", 0, 0, SIM_CONFIG, "Line 1"),
            node("scale", "transform.scale", 280, 0, {"factor": 2.0}),
            node("window", "window.tumbling", 560, 0, {"window_s": 10.0}),
            node("debug", "sink.debug", 840, 0, {}),
        ],
        "edges": [wire("sim", "scale"), wire("scale", "window"), wire("window", "debug")],
    }


def large_document(count: int = 1000, flow_id: str = "big-plant") -> dict[str, Any]:
    """``count`` nodes in chains of ten (simulator → 8 transforms → debug), laid out in a grid."""
    nodes: list[dict[str, Any]] = []
    edges: list[dict[str, Any]] = []
    chain = 10
    for c in range(count // chain):
        row_y = c * 90.0
        ids = [f"n{c}_{i}" for i in range(chain)]
        for i, node_id in enumerate(ids):
            x = i * 260.0
            if i == 0:
                nodes.append(node(node_id, "simulator", x, row_y, {**SIM_CONFIG, "device_name": f"dev{c}"}))
            elif i == chain - 1:
                nodes.append(node(node_id, "sink.debug", x, row_y))
            else:
                nodes.append(node(node_id, "transform.scale", x, row_y, {"factor": 1.0 + i}))
        edges.extend(wire(a, b) for a, b in itertools.pairwise(ids))
    return {
        "format": "proxus.flow",
        "schema_version": 1,
        "id": flow_id,
        "name": f"Plant with {count} nodes",
        "metadata": {"default_edge": "local"},
        "nodes": nodes,
        "edges": edges,
    }


async def ui_login(page: Any, username: str, password: str) -> None:
    await page.goto("/")
    await page.get_by_test_id("login-form").wait_for()
    await page.fill("#username", username)
    await page.fill("#password", password)
    await page.click("button[type=submit]")
    await page.get_by_test_id("flows-page").wait_for()


async def open_flow(page: Any, flow_id: str) -> None:
    await page.goto(f"/#/flows/{flow_id}")
    await page.get_by_test_id("editor").wait_for()


def node_locator(page: Any, node_id: str) -> Any:
    return page.locator(f'.react-flow__node[data-id="{node_id}"]')


def handle(page: Any, node_id: str, port: str, kind: str) -> Any:
    """A node's port: ``kind`` is "source" (output) or "target" (input)."""
    return page.locator(f'.react-flow__handle.{kind}[data-nodeid="{node_id}"][data-handleid="{port}"]')


async def connect(page: Any, source: str, target: str, source_port: str = "out", target_port: str = "in") -> None:
    """Draw a wire the way a user does: press on the output, move, release on the input."""
    a = await handle(page, source, source_port, "source").bounding_box()
    b = await handle(page, target, target_port, "target").bounding_box()
    assert a and b
    await page.mouse.move(a["x"] + a["width"] / 2, a["y"] + a["height"] / 2)
    await page.mouse.down()
    await page.mouse.move((a["x"] + b["x"]) / 2, (a["y"] + b["y"]) / 2 + 20, steps=6)
    await page.mouse.move(b["x"] + b["width"] / 2, b["y"] + b["height"] / 2, steps=6)
    await page.mouse.up()
