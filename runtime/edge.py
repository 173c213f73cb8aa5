"""``proxus edge --id ID``: the edge agent.

It joins the hub's NATS as a leaf node (starting its own leaf server with JetStream domain
``ID`` unless ``--nats`` points at one), watches its key in the hub-domain ``plans`` bucket,
validates and applies each new bundle of plans, reports every apply (hash, or the error) and
publishes a heartbeat with health and metrics on ``status.ID``. An invalid plan leaves the last
good one running. Applied plans are kept on disk, so an edge restarted without the hub runs them
at once (edge autonomy). NATS reconnects forever.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import secrets
import signal
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import msgspec
import nats
import psutil
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.js.api import ConsumerConfig, DeliverPolicy
from nats.js.errors import NotFoundError

from nodes.host import Credential
from proxus.catalog import Catalog
from proxus.credrefs import credential_refs
from proxus.plan import PLANS_BUCKET, Plan, PlanBundle, decode_bundle, decode_plan
from proxus.services.nats import LeafRemote, NatsServer
from runtime.credentials import CredentialStore
from runtime.interpreter import Host, PlanError, PlanRunner, backoff_delay
from runtime.outbox import Outbox
from runtime.requests import device_handlers

log = logging.getLogger("proxus.edge")

HUB_DOMAIN = "hub"


@dataclass
class EdgeSettings:
    """Edge settings: flags override environment (PROXUS_EDGE_*) which overrides a settings file."""

    edge_id: str
    data_dir: Path
    nats_url: str | None = None  # an existing local leaf server; else we start one
    hub_leaf_url: str | None = None  # nats-leaf://user:password@hub:7422 for the server we start
    hub_domain: str = HUB_DOMAIN
    heartbeat_s: float = 5.0
    resync_s: float = 15.0
    user: str | None = None
    password: str | None = None
    credentials_file: Path | None = None
    settings: dict[str, str] = field(default_factory=dict)


def status_subject(edge: str) -> str:
    return f"status.{edge}"


def request_subject(edge: str, action: str = "*") -> str:
    return f"proxus.edge.{edge}.req.{action}"


def debug_subject(edge: str, flow: str, node: str) -> str:
    return f"proxus.debug.{edge}.{flow}.{node}"


@dataclass
class FlowState:
    """What the edge knows about one flow's plan: the runner and the outcome of the last apply."""

    runner: PlanRunner | None = None
    desired_hash: str = ""
    applied_hash: str = ""
    state: str = "pending"  # applied | failed | pending
    error: str = ""
    at: float = 0.0


RequestHandler = Callable[[dict[str, Any]], Awaitable[dict[str, Any]]]


class EdgeAgent:
    """Applies desired plan bundles, runs them, reports status; survives hub and link outages."""

    def __init__(self, settings: EdgeSettings, catalog: Catalog) -> None:
        self.settings = settings
        self.catalog = catalog
        self.edge = settings.edge_id
        self.flows: dict[str, FlowState] = {}
        self.nc: Client | None = None
        self.outbox: Outbox | None = None
        self.host: Host | None = None
        self.started = time.time()
        self._apply_lock = asyncio.Lock()
        self._last_bundle_revision = 0
        self._watch_sub: Any = None
        self._tasks: list[asyncio.Task[None]] = []
        self._process = psutil.Process()
        self._process.cpu_percent(None)
        self._taps: set[tuple[str, str]] = set()
        self.handlers: dict[str, RequestHandler] = {
            "ping": self._ping,
            "taps": self._set_taps,
            **device_handlers(settings.data_dir),
        }
        self.stopped = asyncio.Event()
        self.credentials = CredentialStore(settings.data_dir, _load_credentials(settings.credentials_file))

    # -- persistence (edge autonomy) ------------------------------------------------------------

    @property
    def plans_dir(self) -> Path:
        return self.settings.data_dir / "plans"

    def _persist(self, plan: Plan) -> None:
        self.plans_dir.mkdir(parents=True, exist_ok=True)
        target = self.plans_dir / f"{plan.flow_id}.json"
        tmp = target.with_suffix(".tmp")
        tmp.write_bytes(plan.encode())
        os.replace(tmp, target)  # atomic: a crash never leaves half a plan

    def _forget(self, flow_id: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            (self.plans_dir / f"{flow_id}.json").unlink()

    def _saved_plans(self) -> list[Plan]:
        plans = []
        for path in sorted(self.plans_dir.glob("*.json")):
            try:
                plans.append(decode_plan(path.read_bytes()))
            except (OSError, ValueError) as exc:
                log.error("ignoring saved plan %s: %s", path, exc)
        return plans

    # -- applying --------------------------------------------------------------------------------

    async def apply_bundle(self, bundle: PlanBundle) -> None:
        async with self._apply_lock:
            for _flow_id, plan in sorted(bundle.plans.items()):
                await self._apply(plan)
            for flow_id in sorted(set(self.flows) - set(bundle.plans)):
                await self._remove(flow_id)

    async def _apply(self, plan: Plan) -> None:
        assert self.host is not None
        state = self.flows.setdefault(plan.flow_id, FlowState())
        state.desired_hash = plan.hash
        if state.runner is not None and state.runner.plan.hash == plan.hash and state.state == "applied":
            return
        if plan.edge != self.edge:
            self._report(plan.flow_id, plan.hash, f"plan is for edge {plan.edge!r}, not {self.edge!r}")
            return
        missing = await self.credentials.ensure(self.nc, self.edge, credential_refs([plan]))
        if missing:
            self._report(
                plan.flow_id, plan.hash, f"credentials not available on this edge: {', '.join(sorted(missing))}"
            )
            return
        runner = PlanRunner(plan, self.catalog, self.host)
        previous = state.runner
        try:
            await runner.start(previous)
        except (PlanError, Exception) as exc:  # the last good plan keeps running
            log.error("plan %s (%s) not applied: %s", plan.plan_id, plan.hash[:19], exc)
            self._report(plan.flow_id, plan.hash, str(exc))
            return
        if previous is not None:
            removed = set(previous.steps) - set(runner.steps)
            if removed:
                self._spawn(previous.drain_and_forget(removed, timeout_s=30.0), f"drain {plan.flow_id}")
        state.runner = runner
        runner.set_taps({node for flow, node in self._taps if flow == plan.flow_id})
        self._persist(plan)
        log.info("applied plan %s %s (%d steps)", plan.plan_id, plan.hash[:19], len(plan.steps))
        self._report(plan.flow_id, plan.hash, None)

    async def _remove(self, flow_id: str) -> None:
        state = self.flows.get(flow_id)
        if state is not None and state.runner is not None:
            await state.runner.stop()
            log.info("undeployed flow %s", flow_id)
        self._forget(flow_id)
        self.flows.pop(flow_id, None)
        self._publish_status({"kind": "plan", "flow_id": flow_id, "state": "removed"})

    def _report(self, flow_id: str, plan_hash: str, error: str | None) -> None:
        state = self.flows.setdefault(flow_id, FlowState())
        state.at = time.time()
        if error is None:
            state.state, state.error, state.applied_hash = "applied", "", plan_hash
        else:
            state.state, state.error = "failed", error
        self._publish_status(
            {
                "kind": "plan",
                "flow_id": flow_id,
                "hash": plan_hash,
                "state": state.state,
                "error": state.error,
                "applied_hash": state.applied_hash,
            }
        )

    # -- NATS ------------------------------------------------------------------------------------

    def _publish_status(self, body: dict[str, Any]) -> None:
        if self.nc is None or not self.nc.is_connected:
            return  # the next heartbeat carries the state once the link is back
        body = {"edge": self.edge, "at": time.time(), **body}
        self._spawn(self.nc.publish(status_subject(self.edge), msgspec.json.encode(body)), "status")

    def _spawn(self, coro: Awaitable[Any], name: str) -> None:
        async def guarded() -> None:
            try:
                await coro
            except Exception as exc:
                log.warning("%s: %s", name, exc)

        task = asyncio.create_task(guarded(), name=name)
        self._tasks.append(task)
        task.add_done_callback(lambda t: self._tasks.remove(t) if t in self._tasks else None)

    async def _on_plans_message(self, msg: Msg) -> None:
        op = (msg.headers or {}).get("KV-Operation")
        if op in ("DEL", "PURGE"):
            await self.apply_bundle(PlanBundle(edge=self.edge))
            return
        await self._apply_value(msg.data, getattr(msg.metadata.sequence, "stream", 0) if msg.metadata else 0)

    async def _apply_value(self, data: bytes, revision: int) -> None:
        try:
            bundle = decode_bundle(data)
        except ValueError as exc:
            log.error("invalid plan bundle (revision %s): %s", revision, exc)
            self._publish_status({"kind": "plan", "state": "failed", "error": str(exc), "revision": revision})
            return
        if bundle.edge != self.edge:
            self._publish_status({"kind": "plan", "state": "failed", "error": f"bundle is for {bundle.edge!r}"})
            return
        self._last_bundle_revision = max(self._last_bundle_revision, revision)
        await self.apply_bundle(bundle)

    async def _watch(self) -> None:
        """Subscribe to our key with a named ordered consumer (a filter that permissions can scope)."""
        assert self.nc is not None
        js = self.nc.jetstream(domain=self.settings.hub_domain)
        if self._watch_sub is not None:
            with contextlib.suppress(Exception):
                await self._watch_sub.unsubscribe()
        self._watch_sub = await js.subscribe(
            f"$KV.{PLANS_BUCKET}.{self.edge}",
            stream=f"KV_{PLANS_BUCKET}",
            cb=self._on_plans_message,
            ordered_consumer=True,
            config=ConsumerConfig(
                name=f"watch_{self.edge}_{secrets.token_hex(4)}",
                deliver_policy=DeliverPolicy.LAST_PER_SUBJECT,
                inactive_threshold=120.0,
            ),
        )

    async def _resync(self) -> None:
        """Read our key directly: catches up after link outages and a hub restart."""
        assert self.nc is not None
        js = self.nc.jetstream(domain=self.settings.hub_domain, timeout=5.0)
        try:
            kv = await js.key_value(PLANS_BUCKET)
            entry = await kv.get(self.edge)
        except NotFoundError:
            if self.flows and self._last_bundle_revision:
                await self.apply_bundle(PlanBundle(edge=self.edge))  # our key was deleted
            return
        if entry.value is not None and (entry.revision or 0) != self._last_bundle_revision:
            await self._apply_value(entry.value, entry.revision or 0)

    async def _link_loop(self) -> None:
        """Keep the watch alive: (re)subscribe and resync after every reconnect, and periodically."""
        failures = 0
        while True:
            try:
                if self._watch_sub is None:
                    await self._watch()
                await self._resync()
                failures = 0
            except Exception as exc:
                if failures == 0:
                    log.info("hub not reachable (%s); running the last applied plans", exc or type(exc).__name__)
                failures += 1
                self._watch_sub = None
            # After a failure retry soon (the leaf link may just be coming up), then back off.
            await asyncio.sleep(
                min(self.settings.resync_s, backoff_delay(failures - 1)) if failures else self.settings.resync_s
            )

    async def _heartbeat_loop(self) -> None:
        last: dict[str, tuple[int, int, float]] = {}
        while True:
            await asyncio.sleep(self.settings.heartbeat_s)
            try:
                self._publish_status(await self.heartbeat(last))
            except Exception as exc:
                log.warning("heartbeat: %s", exc)

    async def heartbeat(self, last: dict[str, tuple[int, int, float]]) -> dict[str, Any]:
        now = time.monotonic()
        flows: dict[str, Any] = {}
        devices: dict[str, Any] = {}
        for flow_id, state in self.flows.items():
            nodes = state.runner.status()["nodes"] if state.runner else {}
            for node_id, metrics in nodes.items():
                key = f"{flow_id}/{node_id}"
                prev = last.get(key)
                if prev is not None and now > prev[2]:
                    metrics["rate_in"] = (metrics["points_in"] - prev[0]) / (now - prev[2])
                    metrics["rate_out"] = (metrics["points_out"] - prev[1]) / (now - prev[2])
                last[key] = (metrics["points_in"], metrics["points_out"], now)
                if "connected" in metrics["gauges"] and state.runner is not None:
                    step = state.runner.steps[node_id]
                    if step.spec.is_source:
                        devices[key] = {
                            "connected": bool(metrics["gauges"]["connected"]),
                            "message": metrics["message"],
                        }
            flows[flow_id] = {
                "hash": state.applied_hash,
                "desired_hash": state.desired_hash,
                "state": state.state,
                "error": state.error,
                "nodes": nodes,
            }
        depth = await self.outbox.depth() if self.outbox is not None else 0
        memory = self._process.memory_info()
        return {
            "kind": "heartbeat",
            "uptime_s": time.time() - self.started,
            "flows": flows,
            "devices": devices,
            "outbox_depth": depth,
            "cpu_percent": self._process.cpu_percent(None),
            "rss_bytes": memory.rss,
            "pid": os.getpid(),
        }

    # -- requests from the Hub -------------------------------------------------------------------

    async def _on_request(self, msg: Msg) -> None:
        action = msg.subject[len(request_subject(self.edge, "")) :]  # actions may be dotted (opcua.browse)
        handler = self.handlers.get(action)
        try:
            body = json.loads(msg.data or b"{}")
            if handler is None:
                reply: dict[str, Any] = {"ok": False, "error": f"unknown request {action!r}"}
            else:
                reply = await handler(body)
        except Exception as exc:  # a request never takes the agent down
            reply = {"ok": False, "error": f"{type(exc).__name__}: {exc}"}
        if msg.reply:
            await msg.respond(msgspec.json.encode(reply))

    async def _ping(self, body: dict[str, Any]) -> dict[str, Any]:
        return {"ok": True, "edge": self.edge, "flows": {f: s.applied_hash for f, s in self.flows.items()}}

    async def _set_taps(self, body: dict[str, Any]) -> dict[str, Any]:
        self._taps = {(str(t["flow"]), str(t["node"])) for t in body.get("taps", [])}
        for flow_id, state in self.flows.items():
            if state.runner is not None:
                state.runner.set_taps({node for flow, node in self._taps if flow == flow_id})
        return {"ok": True, "taps": len(self._taps)}

    def _debug(self, message: dict[str, Any]) -> None:
        if self.nc is not None and self.nc.is_connected:
            subject = debug_subject(self.edge, str(message.get("flow", "")), str(message.get("node", "")))
            self._spawn(self.nc.publish(subject, msgspec.json.encode(message)), "debug")

    # -- lifecycle -------------------------------------------------------------------------------

    async def run(self) -> None:
        settings = self.settings
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        async with contextlib.AsyncExitStack() as stack:
            url = settings.nats_url
            if url is None:
                server = NatsServer(
                    settings.data_dir / "nats",
                    name=self.edge,
                    domain=self.edge,
                    leaf_remotes=[LeafRemote(settings.hub_leaf_url)] if settings.hub_leaf_url else [],
                    max_file_store="4GB",  # room for both outbox streams (1 GiB each by default)
                )
                server.start()
                stack.callback(server.stop)
                url = server.url
            self.nc = await nats.connect(
                url,
                name=f"proxus-edge-{self.edge}",
                user=settings.user,
                password=settings.password,
                inbox_prefix=f"_INBOX_{self.edge}".encode(),
                max_reconnect_attempts=-1,
                reconnect_time_wait=1,
            )
            stack.push_async_callback(self._close_nats)
            self.outbox = Outbox(self.nc.jetstream(), self.edge)
            await self.outbox.ensure()

            async def publish(subject: str, payload: bytes, headers: dict[str, str] | None = None) -> None:
                assert self.nc is not None
                await self.nc.publish(subject, payload, headers=headers)

            self.host = Host(
                edge_id=self.edge,
                data_dir=settings.data_dir,
                outbox=self.outbox,
                mode="edge",
                credentials=self.credentials.values,
                debug=self._debug,
                publisher=publish,
                settings=settings.settings,
            )
            saved = self._saved_plans()
            if saved:  # autonomy: run what we ran before, without waiting for the hub
                log.info("starting %d saved plan(s)", len(saved))
                await self.apply_bundle(PlanBundle(edge=self.edge, plans={p.flow_id: p for p in saved}))
            await self.nc.subscribe(request_subject(self.edge, ">"), cb=self._on_request)
            loops = [asyncio.create_task(self._link_loop()), asyncio.create_task(self._heartbeat_loop())]
            try:
                await self.stopped.wait()
            finally:
                for task in loops:
                    task.cancel()
                await asyncio.gather(*loops, return_exceptions=True)
                if self._watch_sub is not None:  # no late plan may start anything now
                    with contextlib.suppress(Exception):
                        await self._watch_sub.unsubscribe()
                async with self._apply_lock:
                    for state in list(self.flows.values()):
                        if state.runner is not None:
                            await state.runner.stop()

    async def _close_nats(self) -> None:
        if self.nc is not None:
            with contextlib.suppress(Exception):
                await self.nc.drain()


def _load_credentials(path: Path | None) -> dict[str, Credential]:
    if path is None or not path.exists():
        return {}
    return {c.id: c for c in msgspec.json.decode(path.read_bytes(), type=list[Credential])}


def settings_from(args: argparse.Namespace) -> EdgeSettings:
    """Flags, then PROXUS_EDGE_* environment, then the --config JSON file."""
    file: dict[str, Any] = json.loads(Path(args.config).read_text()) if args.config else {}

    def pick(flag: Any, env: str, key: str, default: Any = None) -> Any:
        if flag is not None:
            return flag
        if env in os.environ:
            return os.environ[env]
        return file.get(key, default)

    edge_id = pick(args.id, "PROXUS_EDGE_ID", "id")
    if not edge_id:
        raise SystemExit("proxus edge: an edge id is required (--id, PROXUS_EDGE_ID or 'id' in --config)")
    data_dir = Path(pick(args.data_dir, "PROXUS_EDGE_DATA_DIR", "data_dir", f".proxus/edge-{edge_id}"))
    historian = pick(None, "PROXUS_HISTORIAN_URL", "historian_url")
    credentials = pick(args.credentials, "PROXUS_EDGE_CREDENTIALS", "credentials_file")
    return EdgeSettings(
        edge_id=edge_id,
        data_dir=data_dir,
        nats_url=pick(args.nats, "PROXUS_EDGE_NATS_URL", "nats_url"),
        hub_leaf_url=pick(args.hub, "PROXUS_EDGE_HUB_URL", "hub_leaf_url"),
        hub_domain=pick(None, "PROXUS_HUB_DOMAIN", "hub_domain", HUB_DOMAIN),
        heartbeat_s=float(pick(args.heartbeat, "PROXUS_EDGE_HEARTBEAT_S", "heartbeat_s", 5.0)),
        user=pick(None, "PROXUS_EDGE_NATS_USER", "nats_user"),
        password=pick(None, "PROXUS_EDGE_NATS_PASSWORD", "nats_password"),
        credentials_file=Path(credentials) if credentials else None,
        settings={"historian_url": historian} if historian else {},
    )


def add_cli(subparsers: Any) -> None:
    p = subparsers.add_parser("edge", help="run an edge agent: receive plans from the Hub and run them")
    p.add_argument("--id", help="edge id (also PROXUS_EDGE_ID)")
    p.add_argument("--nats", metavar="URL", help="an existing local leaf NATS server (default: start one)")
    p.add_argument("--hub", metavar="URL", help="hub leaf URL for the server we start: nats-leaf://user:pw@host:7422")
    p.add_argument("--data-dir", metavar="DIR", help="plans, node state and the local NATS store")
    p.add_argument("--heartbeat", type=float, metavar="S", help="heartbeat interval in seconds (default 5)")
    p.add_argument("--credentials", metavar="FILE", help="credentials as a JSON list (id, kind, username, secret)")
    p.add_argument("--config", metavar="FILE", help="settings as JSON (keys as the long flag names)")
    p.set_defaults(handler=cmd_edge)


def cmd_edge(args: argparse.Namespace, catalog: Catalog) -> int:
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("asyncua").setLevel(logging.WARNING)  # its INFO is per publish/notification
    agent = EdgeAgent(settings_from(args), catalog)

    async def main() -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError):
                loop.add_signal_handler(sig, agent.stopped.set)
        await agent.run()

    asyncio.run(main())
    return 0
