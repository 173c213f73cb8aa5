"""Helpers for runtime tests: flows built from the catalog, a test node pack, a controllable HTTP server."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Annotated, Any

import msgspec

from nodes.host import Data, NodeContext, Operator, Outputs, Sink
from nodes.points import Batch
from nodes.spec import Category, NodeConfig, NodeSpec, any_in, points_in, points_out
from proxus.catalog import Catalog
from proxus.compiler import validate_flow
from proxus.plan import Plan

# -- a test node pack: registered exactly like a third-party pack, through Catalog(...) ----------


class ExplodeConfig(NodeConfig, frozen=True):
    """Raises on every batch whose first value is above ``limit`` (to test containment)."""

    limit: Annotated[float, msgspec.Meta(description="Values above this make the node raise")] = 0.0


class Explode(Operator):
    def __init__(self, config: ExplodeConfig, context: NodeContext) -> None:
        self.limit = config.limit

    def process(self, port: str, data: Data, now_ns: int) -> Outputs:
        assert isinstance(data, Batch)
        if data.values and float(data.values[0]) > self.limit:  # type: ignore[arg-type]
            raise RuntimeError(f"value {data.values[0]} is above {self.limit}")
        return (("out", data),)


class SlowSinkConfig(NodeConfig, frozen=True):
    """Takes ``delay_s`` per write and records what it got (for backpressure tests)."""

    delay_s: Annotated[float, msgspec.Meta(description="Seconds per write")] = 0.0
    name: Annotated[str, msgspec.Meta(description="Key in RECORDED")] = "slow"


RECORDED: dict[str, list[Batch]] = {}


class SlowSink(Sink):
    max_batch_points = 100_000

    def __init__(self, config: SlowSinkConfig, context: NodeContext) -> None:
        self.config = config
        RECORDED.setdefault(config.name, [])

    async def write(self, data: Data, key: str = "") -> None:
        await asyncio.sleep(self.config.delay_s)
        assert isinstance(data, Batch)
        RECORDED[self.config.name].append(data)


TEST_SPECS = (
    NodeSpec(
        type_id="test.explode",
        version=1,
        category=Category.TRANSFORM,
        title="Explode",
        description="Raises above a limit",
        config=ExplodeConfig,
        example=ExplodeConfig(),
        inputs=(points_in(),),
        outputs=(points_out(),),
        behaviour=Explode,
        icon="bomb",
    ),
    NodeSpec(
        type_id="test.slow_sink",
        version=1,
        category=Category.SINK,
        title="Slow sink",
        description="Writes slowly",
        config=SlowSinkConfig,
        example=SlowSinkConfig(),
        inputs=(any_in(),),
        behaviour=SlowSink,
        icon="turtle",
    ),
)


def catalog_with_test_nodes() -> Catalog:
    return Catalog([*Catalog.load().all_versions(), *TEST_SPECS])


# -- flows -----------------------------------------------------------------------------------------


def flow(nodes: list[tuple[str, str, dict[str, Any]]], wires: list[tuple[str, str]], **extra: Any) -> dict[str, Any]:
    """A flow document from (id, type, config) triples and (source, target) wires."""
    return {
        "format": "proxus.flow",
        "schema_version": 1,
        "id": extra.pop("id", "test-flow"),
        "name": "test",
        "nodes": [{"id": i, "type": t, "config": c, **extra.get(i, {})} for i, t, c in nodes],
        "edges": [
            {"id": f"{s}-{t}", "source": s.split(":")[0], "source_port": [*s.split(":"), "out"][1], "target": t}
            for s, t in wires
        ],
    }


def plan_of(data: dict[str, Any], catalog: Catalog, edge: str = "local") -> Plan:
    _doc, result = validate_flow(data, catalog)
    assert result.ok, [d.render() for d in result.diagnostics]
    return result.plans[edge]


def sim(rate_hz: float = 20.0, tags: int = 2, device: str = "sim") -> dict[str, Any]:
    return {
        "device_name": device,
        "rate_hz": rate_hz,
        "tags": [{"tag": f"t{i}", "signal": "counter", "step": 1.0} for i in range(tags)],
    }


async def wait_for(predicate: Any, timeout: float = 15.0, interval: float = 0.05) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not predicate():
        if loop.time() > deadline:
            raise AssertionError("condition not met within the timeout")
        await asyncio.sleep(interval)


# -- an HTTP endpoint whose answers the test scripts -------------------------------------------------


@dataclass
class Endpoint:
    url: str
    statuses: list[int] = field(default_factory=list)  # answers to give, in order; then 200
    delay_s: float = 0.0
    bodies: list[bytes] = field(default_factory=list)
    requests: list[dict[str, str]] = field(default_factory=list)
    received: list[tuple[dict[str, str], bytes]] = field(default_factory=list)  # accepted: headers, body
    lock: threading.Lock = field(default_factory=threading.Lock)


@contextmanager
def http_endpoint() -> Iterator[Endpoint]:
    state = Endpoint(url="")

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            if state.delay_s:
                threading.Event().wait(state.delay_s)
            with state.lock:
                status = state.statuses.pop(0) if state.statuses else 200
                state.requests.append(dict(self.headers))
                if status < 300:
                    state.bodies.append(body)
                    state.received.append((dict(self.headers), body))
            self.send_response(status)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"{}")

        do_PUT = do_POST

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    state.url = f"http://127.0.0.1:{server.server_address[1]}/ingest"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()
