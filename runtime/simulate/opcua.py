"""An OPC UA simulator server (asyncua) for trying out and testing ``opcua.subscribe`` flows.

The address space has one object, ``Machine`` (namespace ``urn:proxus:simulator``, index 2), with

* ``Speed`` (Double, rpm): a sine around 1500 with a 30 s period;
* ``Temperature`` (Double, °C): a random walk between 40 and 90;
* ``State`` (Int32): 0 stopped, 1 running, 2 idle, 3 fault; changes now and then;
* ``Counter`` (UInt32): grows by one every update;
* ``Setpoint`` (Double): writable, never changed by the simulator (for deadband tests and writes);
* ``Tag001`` … ``TagNNN``: ``tags`` extra variables of the configured types.

All node ids are strings: ``ns=2;s=Machine/<Name>``. The values change every ``update_ms``
(0: only on :meth:`OpcUaSimulator.write`). Speed and Temperature carry an ``EURange`` property, so
percent deadbands make sense on servers that implement them.

Security: the endpoints None, Basic256Sha256 Sign and Basic256Sha256 SignAndEncrypt (configurable);
the server certificate is generated with ``cryptography`` into ``cert_dir`` (a temporary directory
by default) and reused on restarts. Client certificates are all accepted. With ``username`` set,
that user name and password are required (anonymous access is still allowed unless
``anonymous=False``); a wrong password is refused with BadUserAccessDenied.

``proxus simulate opcua`` runs it from the command line (see :func:`add_cli`).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import hmac
import logging
import math
import os
import random
import shutil
import socket
import sys
import tempfile
import time
import weakref
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, get_args

from proxus.services.ports import free_port

if TYPE_CHECKING:  # asyncua is slow to import: the CLI only loads it when the server starts
    from asyncua import ua
    from asyncua.common.node import Node
    from asyncua.crypto.permission_rules import User
    from asyncua.server.server import Server

__all__ = ["NAMESPACE_URI", "OpcUaSimConfig", "OpcUaSimulator", "add_cli", "serve"]

_log = logging.getLogger("proxus.simulate.opcua")

NAMESPACE_URI = "urn:proxus:simulator"
PRODUCT_NAME = "Proxus OPC UA simulator"
PRODUCT_URI = "urn:proxus:simulator"

TagType = Literal["double", "float", "int32", "int64", "uint32", "boolean", "string"]
SecurityOption = Literal["None", "Basic256Sha256_Sign", "Basic256Sha256_SignAndEncrypt"]

# Names of ua.VariantType and ua.SecurityPolicyType members.
_VARIANT: dict[str, str] = {
    "double": "Double",
    "float": "Float",
    "int32": "Int32",
    "int64": "Int64",
    "uint32": "UInt32",
    "boolean": "Boolean",
    "string": "String",
}
_POLICY: dict[str, str] = {
    "None": "NoSecurity",
    "Basic256Sha256_Sign": "Basic256Sha256_Sign",
    "Basic256Sha256_SignAndEncrypt": "Basic256Sha256_SignAndEncrypt",
}
_ALL_SECURITY: tuple[SecurityOption, ...] = ("None", "Basic256Sha256_Sign", "Basic256Sha256_SignAndEncrypt")
MACHINE_TAGS: tuple[str, ...] = ("Speed", "Temperature", "State", "Counter", "Setpoint")


@dataclass(frozen=True, kw_only=True)
class OpcUaSimConfig:
    """Settings of a simulator server."""

    host: str = "127.0.0.1"
    port: int = 0  # 0: a free port, chosen at the first start and kept across restarts
    update_ms: int = 500  # 0: values change only through OpcUaSimulator.write
    tags: int = 0  # extra variables Tag001 … TagNNN
    tag_types: tuple[TagType, ...] = ("double",)  # cycled over the extra variables
    security: tuple[SecurityOption, ...] = _ALL_SECURITY
    cert_dir: Path | None = None  # server certificate and key; a temporary directory when None
    username: str | None = None
    password: str | None = None
    anonymous: bool = True  # with a username set: whether anonymous sessions are still allowed
    seed: int | None = None  # for reproducible random walks

    def __post_init__(self) -> None:
        if self.update_ms < 0:
            raise ValueError("update_ms must be >= 0")
        if self.tags < 0:
            raise ValueError("tags must be >= 0")
        if not self.tag_types or any(t not in _VARIANT for t in self.tag_types):
            raise ValueError(f"tag_types must be some of {', '.join(_VARIANT)}")
        if not self.security or any(s not in _POLICY for s in self.security):
            raise ValueError(f"security must be some of {', '.join(_POLICY)}")
        if (self.username is None) != (self.password is None):
            raise ValueError("set both username and password, or neither")


class _Users:
    """Anonymous sessions (when allowed) and one user name/password; everyone gets the User role."""

    def __init__(self, config: OpcUaSimConfig) -> None:
        self._username = config.username
        self._password = config.password
        self._anonymous = config.anonymous or config.username is None

    def get_user(
        self, iserver: Any, username: str | None = None, password: str | None = None, certificate: Any = None
    ) -> User | None:
        from asyncua.crypto.permission_rules import User, UserRole

        if username is None:
            return User(role=UserRole.User) if self._anonymous else None
        if self._username is None:  # no user configured: any user name is accepted
            return User(role=UserRole.User, name=username)
        if username == self._username and hmac.compare_digest(
            (password or "").encode(), (self._password or "").encode()
        ):
            return User(role=UserRole.User, name=username)
        return None


def _string_node_id(name: str, namespace: int) -> ua.NodeId:
    from asyncua import ua

    return ua.NodeId(ua.String(name), ua.Int16(namespace))


def _new_signal_value(kind: str, i: int, tick: int, t: float, rng: random.Random) -> Any:
    if kind in ("double", "float"):
        return round(50 + 50 * math.sin(2 * math.pi * (t / 20 + i / 7)) + rng.uniform(-0.5, 0.5), 3)
    if kind in ("int32", "int64", "uint32"):
        return (tick + i * 10) % 1000
    if kind == "boolean":
        return (tick + i) % 2 == 0
    return f"value {tick + i}"


class OpcUaSimulator:
    """A running (or stopped) simulator server; restart with :meth:`stop` + :meth:`start`."""

    def __init__(self, config: OpcUaSimConfig) -> None:
        self.config = config
        self._port = config.port
        self._server: Server | None = None
        self._updater: asyncio.Task[None] | None = None
        self._nodes: dict[str, Node] = {}
        self._types: dict[str, str] = {}  # tag → ua.VariantType name
        self._values: dict[str, Any] = {
            "Speed": 1500.0,
            "Temperature": 65.0,
            "State": 1,
            "Counter": 0,
            "Setpoint": 0.0,
        }
        for i in range(config.tags):
            kind = config.tag_types[i % len(config.tag_types)]
            name = f"Tag{i + 1:03d}"
            self._types[name] = _VARIANT[kind]
            self._values[name] = _new_signal_value(kind, i, 0, 0.0, random.Random(i))
        self._types.update(Speed="Double", Temperature="Double", State="Int32", Counter="UInt32", Setpoint="Double")
        self._rng = random.Random(config.seed)
        self._tick = 0
        self._started_at = time.monotonic()
        if config.cert_dir is None:
            tmp = tempfile.mkdtemp(prefix="proxus-opcua-sim-")
            self.cert_dir = Path(tmp)
            weakref.finalize(self, shutil.rmtree, tmp, True)
        else:
            self.cert_dir = Path(config.cert_dir)
        self.server_certificate = self.cert_dir / "server_cert.der"
        self.server_key = self.cert_dir / "server_key.pem"

    # -- public ----------------------------------------------------------------------------------

    @property
    def endpoint(self) -> str:
        return f"opc.tcp://{self.config.host}:{self._port}"

    @property
    def application_uri(self) -> str:
        return f"urn:{socket.gethostname()}:proxus:simulator"

    @property
    def running(self) -> bool:
        return self._server is not None

    @property
    def server(self) -> Server | None:
        """The asyncua server while running (for tests that need more than :meth:`write`)."""
        return self._server

    def node_ids(self) -> dict[str, str]:
        """Tag (browse name) → NodeId string, e.g. ``{"Speed": "ns=2;s=Machine/Speed", ...}``."""
        return {name: f"ns=2;s=Machine/{name}" for name in self._types_in_order()}

    async def write(self, tag: str, value: Any) -> None:
        """Set a variable now (keeps its data type); subscribed clients see the change."""
        if tag not in self._types:
            raise KeyError(f"no variable {tag!r}; known: {', '.join(self._types_in_order())}")
        self._values[tag] = value
        if self._server is not None:
            await self._write(tag, value)

    async def start(self) -> None:
        """Start listening (again, after :meth:`stop`: same port, certificate and current values)."""
        if self._server is not None:
            return
        await asyncio.to_thread(self._ensure_certificate)
        retry = self._port == 0  # a port we choose: try another one when somebody takes it first
        for attempt in range(5):
            if self._port == 0:
                self._port = free_port(self.config.host)
            try:
                self._server = await self._start_server()
                break
            except OSError:
                if not retry or attempt == 4:
                    raise
                self._port = 0
        if self.config.update_ms > 0:
            self._updater = asyncio.create_task(self._update_loop(), name="opcua-simulator-updates")
        _log.info("OPC UA simulator listening on %s", self.endpoint)

    async def stop(self) -> None:
        """Stop listening; connected clients lose their connection. :meth:`start` brings it back."""
        updater, self._updater = self._updater, None
        if updater is not None:
            updater.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await updater
        server, self._server = self._server, None
        self._nodes = {}
        if server is not None:
            await server.stop()

    async def restart(self, down_s: float = 0.0) -> None:
        """Stop, stay down for ``down_s`` seconds, start again."""
        await self.stop()
        if down_s > 0:
            await asyncio.sleep(down_s)
        await self.start()

    async def __aenter__(self) -> OpcUaSimulator:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    # -- internals -------------------------------------------------------------------------------

    def _types_in_order(self) -> list[str]:
        return [*MACHINE_TAGS, *(f"Tag{i + 1:03d}" for i in range(self.config.tags))]

    def _ensure_certificate(self) -> None:
        from nodes.device.opcua_client import certificate_usable, generate_certificate

        if certificate_usable(self.server_certificate, self.server_key, self.application_uri, None):
            return
        hostname = socket.gethostname()
        cert, key = generate_certificate(
            common_name=f"{PRODUCT_NAME}@{hostname}",
            application_uri=self.application_uri,
            hostnames=[hostname, "localhost", self.config.host, "127.0.0.1"],
            server=True,
        )
        self.cert_dir.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.server_key, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(key)
        self.server_certificate.write_bytes(cert)

    async def _start_server(self) -> Server:
        from asyncua import ua
        from asyncua.server.server import Server
        from asyncua.ua.object_ids import ObjectIds

        config = self.config
        server = Server(user_manager=_Users(config))  # type: ignore[arg-type]
        await server.init()
        server.set_endpoint(self.endpoint)
        server.set_server_name(PRODUCT_NAME)
        server.product_uri = PRODUCT_URI
        server.manufacturer_name = "Proxus"
        await server.set_application_uri(self.application_uri)
        await server.set_build_info(PRODUCT_URI, "Proxus", PRODUCT_NAME, "1.0", "1", dt.datetime.now(dt.UTC))
        if any(s != "None" for s in config.security):
            await server.load_certificate(self.server_certificate)
            await server.load_private_key(self.server_key)
        server.set_security_policy([ua.SecurityPolicyType[_POLICY[s]] for s in config.security])
        tokens: list[type] = [ua.UserNameIdentityToken]
        if config.anonymous or config.username is None:
            tokens.insert(0, ua.AnonymousIdentityToken)
        server.set_identity_tokens(tokens)
        idx = await server.register_namespace(NAMESPACE_URI)
        machine = await server.nodes.objects.add_object(
            _string_node_id("Machine", idx), ua.QualifiedName("Machine", idx)
        )
        nodes: dict[str, Node] = {}
        for name in self._types_in_order():
            node = await machine.add_variable(
                _string_node_id(f"Machine/{name}", idx),
                ua.QualifiedName(name, idx),
                ua.Variant(self._values[name], ua.VariantType[self._types[name]]),
            )
            nodes[name] = node
        await nodes["Setpoint"].set_writable()
        for name, low, high in (("Speed", 0.0, 3000.0), ("Temperature", 0.0, 150.0)):
            await nodes[name].add_property(
                _string_node_id(f"Machine/{name}/EURange", idx),
                ua.QualifiedName("EURange", 0),
                ua.Range(Low=low, High=high),
                datatype=ua.NodeId(ua.Int32(ObjectIds.Range)),
            )
        try:
            await server.start()
        except BaseException:
            with contextlib.suppress(Exception):
                await server.stop()
            raise
        self._nodes = nodes
        return server

    async def _write(self, tag: str, value: Any) -> None:
        server, node = self._server, self._nodes.get(tag)
        if server is None or node is None:
            return
        from asyncua import ua

        now = ua.DateTime.now(dt.UTC)
        variant = ua.Variant(value, ua.VariantType[self._types[tag]])
        dv = ua.DataValue(variant, SourceTimestamp=now, ServerTimestamp=now)
        await server.write_attribute_value(node.nodeid, dv)

    def _next_values(self) -> dict[str, Any]:
        self._tick += 1
        tick, rng = self._tick, self._rng
        t = time.monotonic() - self._started_at
        temperature = float(self._values["Temperature"]) + rng.uniform(-0.3, 0.3)
        values: dict[str, Any] = {
            "Speed": round(1500 + 300 * math.sin(2 * math.pi * t / 30) + rng.uniform(-2, 2), 3),
            "Temperature": round(min(90.0, max(40.0, temperature)), 3),
            "Counter": (int(self._values["Counter"]) + 1) % 2**32,
        }
        if rng.random() < 0.05:
            values["State"] = rng.choice([0, 1, 1, 1, 2, 3])
        for i in range(self.config.tags):
            kind = self.config.tag_types[i % len(self.config.tag_types)]
            values[f"Tag{i + 1:03d}"] = _new_signal_value(kind, i, tick, t, rng)
        return values

    async def _update_loop(self) -> None:
        period = self.config.update_ms / 1000
        next_at = time.monotonic()
        while True:
            next_at += period
            await asyncio.sleep(max(0.0, next_at - time.monotonic()))
            try:
                for tag, value in self._next_values().items():
                    self._values[tag] = value
                    await self._write(tag, value)
            except Exception:  # keep simulating; a single failed write is not worth stopping for
                _log.exception("simulator update failed")


async def serve(config: OpcUaSimConfig | None = None) -> OpcUaSimulator:
    """Start a simulator server and return it (running); ``await sim.stop()`` ends it."""
    simulator = OpcUaSimulator(config or OpcUaSimConfig())
    await simulator.start()
    return simulator


# --------------------------------------------------------------------------------------------------
# Command line: proxus simulate opcua


def add_cli(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> argparse.ArgumentParser:
    """Register ``opcua`` under the ``proxus simulate`` sub-command parsers.

    The parser's default ``handler(args, catalog) -> int`` runs the server until interrupted.
    """
    p = subparsers.add_parser(
        "opcua",
        help="run an OPC UA server with a simulated Machine (Speed, Temperature, State, Counter, ...)",
        description="Run an OPC UA simulator server until interrupted (Ctrl-C).",
    )
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=4840, help="TCP port (default 4840; 0 picks a free one)")
    p.add_argument("--update-ms", type=int, default=500, help="how often values change (default 500; 0 never)")
    p.add_argument("--tags", type=int, default=0, help="number of extra variables Tag001 … (default 0)")
    p.add_argument(
        "--tag-type",
        action="append",
        choices=list(get_args(TagType)),
        help="type of the extra variables; repeat to cycle several types (default double)",
    )
    p.add_argument(
        "--security",
        action="append",
        choices=list(_POLICY),
        help="endpoint security to offer; repeat for several (default: all three)",
    )
    p.add_argument("--cert-dir", type=Path, help="where the server certificate is kept (default: a temp directory)")
    p.add_argument("--user", help="require this user name (with --password)")
    p.add_argument(
        "--password",
        default=os.environ.get("PROXUS_SIMULATE_OPCUA_PASSWORD"),
        help="password of --user (default: $PROXUS_SIMULATE_OPCUA_PASSWORD)",
    )
    p.add_argument("--no-anonymous", action="store_true", help="with --user: refuse anonymous sessions")
    p.add_argument("--seed", type=int, help="random seed for reproducible values")
    p.set_defaults(handler=run_cli)
    return p


def run_cli(args: argparse.Namespace, catalog: object = None) -> int:
    try:
        config = OpcUaSimConfig(
            host=args.host,
            port=args.port,
            update_ms=args.update_ms,
            tags=args.tags,
            tag_types=tuple(args.tag_type or ("double",)),
            security=tuple(args.security or _ALL_SECURITY),
            cert_dir=args.cert_dir,
            username=args.user,
            password=args.password if args.user else None,
            anonymous=not args.no_anonymous,
            seed=args.seed,
        )
    except ValueError as exc:
        print(f"proxus simulate opcua: {exc}", file=sys.stderr)
        return 2
    try:
        asyncio.run(_run_forever(config))
    except KeyboardInterrupt:
        pass
    except OSError as exc:
        print(f"proxus simulate opcua: cannot listen on {config.host}:{config.port}: {exc}", file=sys.stderr)
        return 1
    return 0


async def _run_forever(config: OpcUaSimConfig) -> None:
    simulator = await serve(config)
    try:
        _print_banner(simulator)
        await asyncio.Event().wait()
    finally:
        await simulator.stop()


def _print_banner(simulator: OpcUaSimulator, out: Any = None) -> None:
    out = out or sys.stdout
    config = simulator.config
    users = "anonymous" if config.username is None else f"user {config.username!r}"
    if config.username is not None and config.anonymous:
        users += " or anonymous"
    lines: Sequence[str] = [
        f"OPC UA simulator on {simulator.endpoint}",
        f"  security: {', '.join(config.security)}; access: {users}",
        f"  server certificate: {simulator.server_certificate}",
        f"  values change every {config.update_ms} ms" if config.update_ms else "  values change only on writes",
        "  node ids:",
        *(f"    {tag:<12} {node_id}" for tag, node_id in simulator.node_ids().items()),
        "Ctrl-C stops it.",
    ]
    print("\n".join(lines), file=out, flush=True)
