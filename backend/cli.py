"""``proxus hub`` (start the Hub on embedded defaults, with a local edge) and ``proxus admin``."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import getpass
import logging
import os
import signal
import subprocess
import sys
from typing import Any

import uvicorn

from backend.settings import Settings


def add_cli(subparsers: Any) -> None:
    p = subparsers.add_parser("hub", help="start the Hub (web app and API) with embedded services")
    p.add_argument("--host", help="address to listen on (default 127.0.0.1, PROXUS_HOST)")
    p.add_argument("--port", type=int, help="HTTP port (default 8080, PROXUS_PORT)")
    p.add_argument("--data-dir", metavar="DIR", help="where embedded services keep data (default .proxus/hub)")
    p.add_argument("--no-local-edge", action="store_true", help="do not start an edge on this machine")
    p.add_argument("--demo", action="store_true", help="also start Modbus and OPC UA device simulators")
    p.set_defaults(handler=cmd_hub)

    a = subparsers.add_parser("admin", help="administration without the web app")
    sub = a.add_subparsers(dest="admin_command", required=True, metavar="ACTION")
    c = sub.add_parser("create", help="create an admin user (the first-run setup, from a shell)")
    c.add_argument("--username", required=True)
    c.add_argument("--password-stdin", action="store_true", help="read the password from standard input")
    c.add_argument("--data-dir", metavar="DIR")
    c.set_defaults(handler=cmd_admin_create)


def _settings(args: argparse.Namespace) -> Settings:
    if getattr(args, "data_dir", None):
        os.environ["PROXUS_DATA_DIR"] = args.data_dir
    if getattr(args, "host", None):
        os.environ["PROXUS_HOST"] = args.host
    if getattr(args, "port", None):
        os.environ["PROXUS_PORT"] = str(args.port)
    return Settings()


def cmd_hub(args: argparse.Namespace, catalog: Any) -> int:
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("asyncua").setLevel(logging.WARNING)  # its INFO is per publish/notification
    return asyncio.run(_run_hub(_settings(args), catalog, local_edge=not args.no_local_edge, demo=args.demo))


async def _run_hub(settings: Settings, catalog: Any, *, local_edge: bool, demo: bool) -> int:
    from backend.app import create_app
    from backend.embedded import start_embedded

    embedded = await start_embedded(settings)
    children: list[asyncio.subprocess.Process] = []
    simulators: list[Any] = []
    try:
        settings = embedded.settings
        app = create_app(settings, catalog, hub_nats_server=embedded.nats)
        server = uvicorn.Server(uvicorn.Config(app, host=settings.host, port=settings.port, log_level="warning"))
        serving = asyncio.create_task(server.serve())
        while not server.started and not serving.done():
            await asyncio.sleep(0.05)
        if serving.done():
            serving.result()
            return 1
        if local_edge and embedded.leaf_port is not None:
            children.append(await _start_local_edge(settings, embedded.leaf_port))
        if demo:
            simulators = await _start_simulators()
        url = f"http://{settings.host}:{settings.port}"
        print(f"\nProxus Hub is running: open {url}", file=sys.stderr)
        print("First start? The page asks you to create the admin account.\n", file=sys.stderr)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError):
                loop.add_signal_handler(sig, stop.set)
        done_wait = asyncio.create_task(stop.wait())
        await asyncio.wait({serving, done_wait}, return_when=asyncio.FIRST_COMPLETED)
        server.should_exit = True
        await serving
        return 0
    finally:
        for child in children:
            with contextlib.suppress(ProcessLookupError):
                child.terminate()
            try:
                await asyncio.wait_for(child.wait(), 10)
            except TimeoutError:
                child.kill()
        for sim in simulators:
            with contextlib.suppress(Exception):
                await sim.stop()
        embedded.stop()


async def _start_local_edge(settings: Settings, leaf_port: int) -> asyncio.subprocess.Process:
    """Register the edge "local" (once) and run it as a child process joined to the hub."""
    import asyncpg  # type: ignore[import-untyped, unused-ignore]

    from backend.edges.service import ensure_local_edge

    assert settings.database_url is not None
    conn = await asyncpg.connect(settings.database_url)
    try:
        edge_id, password = await ensure_local_edge(conn, settings)
    finally:
        await conn.close()
    data_dir = settings.data_dir / f"edge-{edge_id}"
    cmd = [
        sys.executable,
        "-m",
        "proxus.cli",
        "edge",
        "--id",
        edge_id,
        "--data-dir",
        str(data_dir),
        "--hub",
        f"nats-leaf://{edge_id}:{password}@127.0.0.1:{leaf_port}",
    ]
    env = {**os.environ, "PROXUS_EDGE_DATA_DIR": str(data_dir)}
    log_file = (settings.data_dir / f"edge-{edge_id}.log").open("ab")
    print(f"local edge {edge_id!r} started (log: {settings.data_dir / f'edge-{edge_id}.log'})", file=sys.stderr)
    return await asyncio.create_subprocess_exec(*cmd, stdout=log_file, stderr=subprocess.STDOUT, env=env)


async def _start_simulators() -> list[Any]:
    from runtime.simulate import modbus, opcua

    # The ports and register map of examples/modbus-energy-meter.json and opcua-machine-alarm.json.
    mb = await modbus.serve({"profile": "energy_meter", "base_port": 5020, "values": "live", "update_ms": 500})
    ua = await opcua.serve(opcua.OpcUaSimConfig(port=4840))
    print(f"demo: Modbus simulators on ports {mb.ports}, OPC UA at {ua.endpoint}", file=sys.stderr)
    return [mb, ua]


def cmd_admin_create(args: argparse.Namespace, catalog: Any) -> int:
    password = sys.stdin.readline().rstrip("\n") if args.password_stdin else getpass.getpass("Password: ")
    return asyncio.run(_admin_create(_settings(args), args.username, password))


async def _admin_create(settings: Settings, username: str, password: str) -> int:
    import asyncpg
    import msgspec

    from backend.db import migrate
    from backend.embedded import start_embedded
    from backend.errors import ApiError
    from backend.users.schemas import UserCreate
    from backend.users.service import create_user

    try:
        data = msgspec.convert({"username": username, "password": password, "role": "admin"}, UserCreate)
    except msgspec.ValidationError as exc:
        print(f"proxus admin create: {exc}", file=sys.stderr)
        return 1
    embedded = await start_embedded(settings, with_nats=False)
    try:
        assert embedded.settings.database_url is not None
        conn = await asyncpg.connect(embedded.settings.database_url)
        try:
            await migrate(conn)
            await create_user(conn, None, data, address="cli")
        except ApiError as exc:
            print(f"proxus admin create: {exc.message}", file=sys.stderr)
            return 1
        finally:
            await conn.close()
    finally:
        embedded.stop()
    print(f"admin {username!r} created", file=sys.stderr)
    return 0
