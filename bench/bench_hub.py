"""Hub flow and deploy latency through the real API: save, compile and deploy a 500-node flow, and
the time from the deploy call until the edge reports the new plan applied (goal: < 1 s p50).

Run: .venv/bin/python bench/bench_hub.py [--nodes 500] [--rounds 40] [--in-process-edge]

Starts its own services: an embedded PostgreSQL (or uses PROXUS_DATABASE_URL as an admin DSN and
creates a scratch database in it), a NATS hub server (JetStream domain "hub", leaf port) and an
edge agent joined to it as a leaf node (a separate `proxus edge` process by default, so the edge's
work does not share the Hub's event loop). Redis is used when PROXUS_REDIS_URL is set, else
in-memory sessions. The API is driven in-process (Litestar AsyncTestClient): what is measured is
the Hub's handling, PostgreSQL, NATS KV and the edge, without HTTP socket overhead.
Prints figures; asserts nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import secrets
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import msgspec
from litestar import Litestar
from litestar.testing import AsyncTestClient

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "bench")]

from bench_compile import make_flow  # noqa: E402

from backend.app import create_app  # noqa: E402
from backend.deploy.events import DeployEvent, Subscription  # noqa: E402
from backend.settings import Settings  # noqa: E402
from proxus.catalog import Catalog  # noqa: E402
from proxus.services import EmbeddedPostgres, NatsServer, create_database, drop_database  # noqa: E402

EDGE = "bench-edge"


def pct(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    index = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return ordered[index]


def line(name: str, samples: list[float], goal_ms: float | None = None) -> str:
    p50, p99 = pct(samples, 50) * 1000, pct(samples, 99) * 1000
    mean = statistics.fmean(samples) * 1000
    verdict = "" if goal_ms is None else f"   goal p50 < {goal_ms:.0f} ms: {'met' if p50 < goal_ms else 'MISSED'}"
    return f"  {name:<34} p50 {p50:8.1f} ms   p99 {p99:8.1f} ms   mean {mean:8.1f} ms   (n={len(samples)}){verdict}"


@contextlib.asynccontextmanager
async def database() -> AsyncIterator[str]:
    admin = os.environ.get("PROXUS_DATABASE_URL")
    server = None
    data_dir = None
    if admin is None:
        data_dir = Path(tempfile.mkdtemp(prefix="proxus-pg-"))  # outside 0700 dirs: the server may run as another user
        server = EmbeddedPostgres(data_dir, settings={"fsync": "off", "synchronous_commit": "off"})
        server.start()
        admin = server.dsn
    name = f"proxus_bench_{secrets.token_hex(4)}"
    dsn = await create_database(admin, name)
    try:
        yield dsn
    finally:
        await drop_database(admin, name)
        if server is not None:
            server.stop()
        if data_dir is not None:
            shutil.rmtree(data_dir, ignore_errors=True)


@contextlib.asynccontextmanager
async def edge(tmp: Path, hub: NatsServer, in_process: bool) -> AsyncIterator[None]:
    data_dir = tmp / "edge"
    if in_process:
        from runtime.edge import EdgeAgent, EdgeSettings

        agent = EdgeAgent(
            EdgeSettings(edge_id=EDGE, data_dir=data_dir, hub_leaf_url=hub.leaf_url, heartbeat_s=1.0, resync_s=2.0),
            Catalog.load(),
        )
        task = asyncio.create_task(agent.run())
        try:
            yield
        finally:
            agent.stopped.set()
            await asyncio.wait_for(task, 30)
        return
    log = (tmp / "edge.log").open("wb")
    proc = await asyncio.create_subprocess_exec(
        sys.executable, __file__, "--edge-child", hub.leaf_url, str(data_dir), stdout=log, stderr=log, cwd=ROOT
    )
    try:
        yield
    finally:
        proc.terminate()
        try:
            await asyncio.wait_for(proc.wait(), 30)
        except TimeoutError:
            proc.kill()
            await proc.wait()
        log.close()


def edge_child(leaf_url: str, data_dir: str) -> None:
    """The edge agent as its own process (``--edge-child``), as `proxus edge` runs it."""
    import logging
    import signal

    from runtime.edge import EdgeAgent, EdgeSettings

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    agent = EdgeAgent(
        EdgeSettings(edge_id=EDGE, data_dir=Path(data_dir), hub_leaf_url=leaf_url, heartbeat_s=1.0, resync_s=2.0),
        Catalog.load(),
    )

    async def run() -> None:
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, agent.stopped.set)
        await agent.run()

    asyncio.run(run())


async def until_settled(events: Subscription, deployment_id: int, timeout: float = 60.0) -> DeployEvent:
    deadline = time.monotonic() + timeout
    while True:
        event = await events.get(timeout=max(0.01, deadline - time.monotonic()))
        if event is None:
            raise TimeoutError(f"deployment {deployment_id} did not settle within {timeout:g} s")
        if event.deployment_id == deployment_id and event.deployment_state != "pending":
            return event


async def timed(samples: list[float], call: Callable[[], Any]) -> Any:
    t0 = time.perf_counter()
    result = await call()
    samples.append(time.perf_counter() - t0)
    return result


def expect(response: Any, status: int) -> Any:
    if response.status_code != status:
        raise RuntimeError(f"{response.request.method} {response.request.url}: {response.status_code} {response.text}")
    return response.json()


async def bench(client: AsyncTestClient[Litestar], app: Litestar, nodes: int, rounds: int) -> None:
    body = expect(await client.post("/api/auth/setup", json={"username": "admin", "password": "bench-password"}), 201)
    client.headers["X-CSRF-Token"] = body["csrf_token"]
    expect(await client.post("/api/edges", json={"id": EDGE}), 201)

    doc = make_flow(nodes)
    doc["id"] = "bench"
    doc["metadata"] = {"default_edge": EDGE}
    scale_nodes = [n for n in doc["nodes"] if n["type"] == "transform.scale"]
    small = {
        "format": "proxus.flow",
        "schema_version": 1,
        "id": "small",
        "name": "small",
        "metadata": {"default_edge": EDGE},
        "nodes": [
            {"id": "sim", "type": "simulator", "config": {"rate_hz": 1, "tags": [{"tag": "t", "signal": "sine"}]}},
            {"id": "scale", "type": "transform.scale", "config": {"factor": 1.0}},
            {"id": "debug", "type": "sink.debug", "config": {}},
        ],
        "edges": [{"id": "a", "source": "sim", "target": "scale"}, {"id": "b", "source": "scale", "target": "debug"}],
    }
    size = len(msgspec.json.encode(doc))
    expect(await client.post("/api/flows", json={"document": doc}), 201)
    expect(await client.post("/api/flows", json={"document": small}), 201)
    version = {"bench": 1, "small": 1}
    counter = 0

    async def save(flow: str, document: dict[str, Any]) -> Any:
        nonlocal counter
        counter += 1
        target = scale_nodes if flow == "bench" else [document["nodes"][1]]
        target[counter % len(target)]["config"]["factor"] = 1.0 + counter / 1000  # a real change every time
        response = await client.put(
            f"/api/flows/{flow}", json={"document": document, "base_version": version[flow], "message": "bench"}
        )
        version[flow] = expect(response, 200)["version"]

    compiled = expect(await client.post("/api/flows/bench/compile", json={}), 200)
    if not compiled["ok"]:
        raise RuntimeError(f"the bench flow does not compile: {compiled['diagnostics'][:3]}")
    steps = sum(p["steps"] for p in compiled["plans"])
    print(f"flow: {len(doc['nodes'])} nodes, {len(doc['edges'])} wires, {size / 1024:.0f} KiB JSON, {steps} plan steps")

    save_s: list[float] = []
    compile_s: list[float] = []
    deploy_api_s: list[float] = []
    applied_s: list[float] = []
    small_applied_s: list[float] = []
    for _ in range(3):  # warm-up: caches, connections, the edge's first plan
        await save("bench", doc)
        expect(await client.post("/api/flows/bench/compile", json={}), 200)
    events = app.state.deploy_events.subscribe()
    first = expect(await client.post("/api/flows/bench/deploy", json={}), 201)
    settled = await until_settled(events, first["id"], timeout=120)
    if settled.deployment_state != "applied":
        raise RuntimeError(f"the first deploy did not apply: {settled}")

    for _ in range(rounds):
        await timed(save_s, lambda: save("bench", doc))
        await timed(compile_s, lambda: client.post("/api/flows/bench/compile", json={}))

    for _ in range(rounds):
        await save("bench", doc)
        t0 = time.perf_counter()
        response = await client.post("/api/flows/bench/deploy", json={})
        deploy_api_s.append(time.perf_counter() - t0)
        deployment = expect(response, 201)
        outcome = await until_settled(events, deployment["id"])
        applied_s.append(time.perf_counter() - t0)
        if outcome.deployment_state != "applied":
            raise RuntimeError(f"deployment {deployment['id']} {outcome.deployment_state}: {outcome.error}")

    for _ in range(rounds):
        await save("small", small)
        t0 = time.perf_counter()
        deployment = expect(await client.post("/api/flows/small/deploy", json={}), 201)
        await until_settled(events, deployment["id"])
        small_applied_s.append(time.perf_counter() - t0)
    events.close()

    print(f"{nodes}-node flow through the API (in-process client), {rounds} rounds:")
    print(line("save (new version)", save_s, 1000))
    print(line("compile (POST /compile)", compile_s, 1000))
    print(line("deploy (POST /deploy)", deploy_api_s, 1000))
    print(line("deploy → edge reports applied", applied_s, 1000))
    print("3-node flow:")
    print(line("deploy → edge reports applied", small_applied_s, 1000))


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nodes", type=int, default=500)
    parser.add_argument("--rounds", type=int, default=40)
    parser.add_argument("--in-process-edge", action="store_true", help="run the edge agent in the Hub's event loop")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="proxus-bench-") as tmp_name:
        tmp = Path(tmp_name)
        hub = NatsServer.hub(tmp)
        hub.start()
        try:
            async with database() as dsn:
                settings = Settings(
                    data_dir=tmp / "hub",
                    database_url=dsn,
                    redis_url=os.environ.get("PROXUS_REDIS_URL"),
                    nats_url=hub.url,
                    secret_key=None,
                    secret_key_file=None,
                    frontend_dir=None,
                )
                app = create_app(settings)
                async with (
                    AsyncTestClient(app=app, base_url="http://hub.bench") as client,
                    edge(tmp, hub, args.in_process_edge),
                ):
                    print(
                        f"python {sys.version.split()[0]}; PostgreSQL "
                        f"{'PROXUS_DATABASE_URL' if 'PROXUS_DATABASE_URL' in os.environ else 'embedded (fsync off)'}; "
                        f"NATS {hub.version()}; edge {'in-process' if args.in_process_edge else 'separate process'}"
                    )
                    await bench(client, app, args.nodes, args.rounds)
        finally:
            hub.stop()


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "--edge-child":
        edge_child(sys.argv[2], sys.argv[3])
    else:
        asyncio.run(main())
