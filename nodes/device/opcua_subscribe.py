"""``opcua.subscribe``: subscribe to data changes of OPC UA nodes.

Behaviour (:class:`OpcUaSubscribeSource`, a push source): ``connect()`` opens a session (security
and certificates: see :mod:`nodes.device.opcua_client`), creates one subscription at the publishing
interval and a monitored item per configured node. The server's notifications are queued as points
(bounded: when full the oldest is dropped and counted as ``dropped_notifications``); ``read()``
waits for the first and returns everything queued so far as one batch.

* Series key ``<device>/<tag>``: device is the managed device id (``device``) when set, otherwise the
  node's label.
* Timestamp: the SourceTimestamp, else the ServerTimestamp, else the edge's clock.
* Quality from the StatusCode's severity bits: Good → GOOD, Uncertain → UNCERTAIN, Bad → BAD. A Bad
  notification without a value carries the status name as its value (e.g. ``"BadNodeIdUnknown"``).
* A node the server refuses to monitor (unknown node id, not a variable, filter not supported)
  yields one BAD point per connect and a WARNING health naming the node id; the others flow on.
* When the server goes away (socket closed, keep-alive/status probe failing, subscription status
  change) ``read()`` raises :class:`NotConnected` within about two seconds; the runtime reconnects
  and ``connect()`` creates a new session and subscription (a restarted server has forgotten the
  old ones).
"""

from __future__ import annotations

import asyncio
import contextlib
import re
from collections import deque
from collections.abc import Iterator
from typing import TYPE_CHECKING, Annotated, Any, Literal, NoReturn

import msgspec
from msgspec import Meta

from nodes.host import Credential, Health, NodeContext, NotConnected, Source
from nodes.points import Batch, Quality, Value, series_key
from nodes.spec import Category, ConfigProblem, NodeConfig, NodeSpec, points_out

if TYPE_CHECKING:
    from types import ModuleType

SecurityPolicy = Literal["None", "Basic256Sha256"]
SecurityMode = Literal["None", "Sign", "SignAndEncrypt"]
DeadbandType = Literal["none", "absolute", "percent"]

# The string form of an OPC UA NodeId (Part 6, 5.3.1.10): an optional namespace index or URI,
# then an identifier that is numeric (i=), a string (s=), a GUID (g=) or opaque base64 (b=).
_GUID = r"[0-9A-Fa-f]{8}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{12}"
_NODE_ID = re.compile(
    r"(?:ns=(?P<ns>\d+);|nsu=[^;]+;)?"
    r"(?:i=(?P<i>\d+)|s=.+|g=" + _GUID + r"|b=(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?)",
    re.DOTALL,
)
_UINT32_MAX = 2**32 - 1
_UINT16_MAX = 2**16 - 1


def node_id_problem(node_id: str) -> str | None:
    """Why ``node_id`` is not a valid NodeId string, or None when it is."""
    m = _NODE_ID.fullmatch(node_id)
    if m is None:
        return f"{node_id!r} is not an OPC UA NodeId"
    if m["ns"] is not None and int(m["ns"]) > _UINT16_MAX:
        return f"namespace index {m['ns']} is larger than {_UINT16_MAX}"
    if m["i"] is not None and int(m["i"]) > _UINT32_MAX:
        return f"numeric identifier {m['i']} is larger than {_UINT32_MAX}"
    return None


class MonitoredNode(msgspec.Struct, kw_only=True, forbid_unknown_fields=True, frozen=True):
    """One OPC UA variable to watch; the server reports its value whenever it changes."""

    tag: Annotated[
        str,
        Meta(
            min_length=1,
            description="Tag name of the value; its series key is <device>/<tag>.",
            examples=["speed"],
        ),
    ]
    node_id: Annotated[
        str,
        Meta(
            min_length=1,
            description="NodeId of the variable: an optional ns=<index>; followed by i=<number>, "
            "s=<string>, g=<guid> or b=<base64>.",
            examples=["ns=2;s=Machine/Speed", "i=2258"],
        ),
    ]
    sampling_interval_ms: Annotated[
        int,
        Meta(
            ge=0,
            description="How often the server samples the value, in milliseconds; 0 lets the server "
            "sample as fast as it can.",
        ),
    ] = 250
    queue_size: Annotated[
        int,
        Meta(
            ge=1,
            le=10000,
            description="How many changes the server keeps between two publishes; 1 keeps only the latest.",
        ),
    ] = 1
    deadband: Annotated[
        float,
        Meta(
            ge=0,
            description="Smallest change the server reports, in engineering units or percent of the "
            "value range depending on deadband_type; 0 reports every change.",
        ),
    ] = 0.0
    deadband_type: Annotated[
        DeadbandType,
        Meta(
            description="How deadband is measured: absolute in engineering units, percent of the variable's "
            "EU range, or none."
        ),
    ] = "none"


class OpcUaSubscribeConfig(NodeConfig, frozen=True):
    """
    Subscribes to OPC UA variables and emits a batch of points whenever the server publishes changes.
    Use a deadband to suppress noise at the source.
    """

    device: Annotated[
        str | None,
        Meta(
            description="Id of a managed device; when set, its connection settings come from device "
            "management and the connection fields set on this node override them."
        ),
    ] = None
    endpoint: Annotated[
        str | None,
        Meta(description="Endpoint URL of the OPC UA server.", examples=["opc.tcp://192.168.1.30:4840"]),
    ] = None
    security_policy: Annotated[
        SecurityPolicy,
        Meta(description="Security policy of the secure channel; None sends everything in clear text."),
    ] = "None"
    security_mode: Annotated[
        SecurityMode,
        Meta(
            description="Message security mode: None, Sign (tamper-proof) or SignAndEncrypt "
            "(tamper-proof and confidential)."
        ),
    ] = "None"
    credential: Annotated[
        str | None,
        Meta(description="Id of a stored credential holding the user name and password; anonymous when not set."),
    ] = None
    publishing_interval_ms: Annotated[
        int,
        Meta(ge=10, description="How often the server sends collected changes, in milliseconds."),
    ] = 500
    nodes: Annotated[
        list[MonitoredNode],
        Meta(description="The variables to monitor: one entry per value."),
    ] = msgspec.field(default_factory=list)

    def problems(self) -> Iterator[ConfigProblem]:
        endpoint = (self.endpoint or "").strip()
        if self.device is None and not endpoint:
            yield ConfigProblem("$.endpoint", "no endpoint to connect to", "set an endpoint or choose a managed device")
        elif endpoint and not (endpoint.startswith("opc.tcp://") and len(endpoint) > len("opc.tcp://")):
            yield ConfigProblem(
                "$.endpoint",
                f"{self.endpoint!r} is not an opc.tcp:// endpoint URL",
                "use the form opc.tcp://host:4840",
            )
        if self.security_policy == "None" and self.security_mode != "None":
            yield ConfigProblem(
                "$.security_mode",
                f"security mode {self.security_mode} needs a security policy",
                "choose the Basic256Sha256 policy or set the mode to None",
            )
        elif self.security_policy != "None" and self.security_mode == "None":
            yield ConfigProblem(
                "$.security_mode",
                f"security policy {self.security_policy} needs a security mode",
                "choose Sign or SignAndEncrypt, or set the policy to None",
            )
        if not self.nodes:
            yield ConfigProblem("$.nodes", "no variables to monitor", "add at least one node")
        seen: dict[str, int] = {}
        for i, node in enumerate(self.nodes):
            path = f"$.nodes[{i}]"
            if not node.tag.strip():
                yield ConfigProblem(f"{path}.tag", "tag is empty", "name the value, e.g. speed")
            elif node.tag in seen:
                yield ConfigProblem(
                    f"{path}.tag",
                    f"tag {node.tag!r} is already used by nodes[{seen[node.tag]}]",
                    "give every node a unique tag",
                )
            else:
                seen[node.tag] = i
            why = node_id_problem(node.node_id)
            if why is not None:
                yield ConfigProblem(
                    f"{path}.node_id",
                    why,
                    "use the form ns=2;s=Machine/Speed, i=2258, g=<guid> or b=<base64>",
                )
            if node.deadband > 0 and node.deadband_type == "none":
                yield ConfigProblem(
                    f"{path}.deadband_type",
                    "a deadband is set but deadband_type is none",
                    "choose absolute or percent, or set deadband to 0",
                )
            if node.deadband_type == "percent" and node.deadband > 100:
                yield ConfigProblem(
                    f"{path}.deadband",
                    "a percent deadband cannot exceed 100",
                    "set a deadband between 0 and 100",
                )


EXAMPLE = OpcUaSubscribeConfig(
    endpoint="opc.tcp://127.0.0.1:4840",
    publishing_interval_ms=500,
    nodes=[
        MonitoredNode(tag="speed", node_id="ns=2;s=Machine/Speed", deadband=0.5, deadband_type="absolute"),
        MonitoredNode(tag="temperature", node_id="ns=2;s=Machine/Temperature", sampling_interval_ms=1000),
        MonitoredNode(tag="state", node_id="ns=2;i=1005"),
        MonitoredNode(tag="server_time", node_id="i=2258", sampling_interval_ms=1000),
    ],
)

Point = tuple[int, str, Value, int]


class _Handler:
    """asyncua subscription handler of one connection (``generation``) of a source."""

    def __init__(self, source: OpcUaSubscribeSource, generation: int) -> None:
        self._source = source
        self._generation = generation

    def datachange_notification(self, node: Any, val: Any, data: Any) -> None:
        self._source._on_data(self._generation, data.subscription_data.client_handle, data.monitored_item.Value)

    def status_change_notification(self, status: Any) -> None:
        self._source._on_status(self._generation, status.Status)


class OpcUaSubscribeSource(Source):
    """Push source: the server publishes changes, :meth:`read` hands them on as batches."""

    interval_s = None
    max_queued_points = 10_000
    connect_timeout_s = 10.0
    # read() re-checks the connection state at least this often while waiting for data.
    check_interval_s = 0.5

    def __init__(self, config: OpcUaSubscribeConfig, context: NodeContext) -> None:
        self._config = config
        self._ctx = context
        device = config.device or context.label
        self._series = [series_key(device, node.tag) for node in config.nodes]
        self._pending: deque[Point] = deque()
        self._wakeup = asyncio.Event()
        self._client: Any = None
        self._subscription: Any = None
        self._generation = 0
        self._lost: str | None = None
        self._oc: ModuleType | None = None
        # A warning found while connecting, re-applied by the first read: the runtime resets the
        # health to OK after a successful connect.
        self._warning: str | None = None

    # -- runtime contract ------------------------------------------------------------------------

    async def connect(self) -> None:
        from nodes.device import opcua_client as oc

        self._oc = oc
        await self._teardown()
        self._lost = self._warning = None
        config, ctx = self._config, self._ctx
        credential: Credential | None = None
        if config.credential:
            try:
                credential = ctx.credential(config.credential)
            except KeyError:
                self._fail(f"credential {config.credential!r} is not available on this edge")
        try:
            opened = await oc.open_client(config, credential, ctx.data_dir, self.connect_timeout_s)
        except oc.OpcUaError as exc:
            self._fail(str(exc), exc)
        client = opened.client
        self._generation += 1
        generation = self._generation

        async def lost(exc: Exception) -> None:
            self._mark_lost(generation, f"connection to {opened.endpoint} lost ({exc or type(exc).__name__})")

        client.connection_lost_callback = lost
        try:
            subscription, failures = await asyncio.wait_for(
                oc.subscribe(client, config, _Handler(self, generation)), self.connect_timeout_s
            )
        except Exception as exc:
            await oc.close_client(client)
            self._fail(
                f"subscribing failed: {oc.describe_error(exc, opened.endpoint, timeout_s=self.connect_timeout_s)}", exc
            )
        self._client, self._subscription = client, subscription
        warnings = list(opened.warnings)
        now = ctx.now_ns()
        for failure in failures:
            self._push((now, self._series[failure.index], failure.status, int(Quality.BAD)))
        if failures:
            warnings.append(
                "cannot monitor "
                + ", ".join(f"{f.node_id} (tag {config.nodes[f.index].tag!r}: {f.status})" for f in failures)
            )
        ctx.set_gauge("connected", 1)
        ctx.set_gauge("monitored_items", len(config.nodes) - len(failures))
        self._warning = "; ".join(warnings) or None
        if self._warning:
            ctx.set_health(Health.WARNING, self._warning)
        else:
            ctx.set_health(Health.OK, f"subscribed to {len(config.nodes)} node(s) on {opened.endpoint}")

    async def read(self) -> Batch | None:
        if self._warning is not None:
            self._ctx.set_health(Health.WARNING, self._warning)
            self._warning = None
        while not self._pending:
            if self._lost is None and self._client is None:
                self._lost = "not connected"
            if self._lost is None and self._oc is not None and not self._oc.is_connected(self._client):
                self._mark_lost(self._generation, f"connection to {self._config.endpoint} lost")
            if self._lost is not None:
                reason = self._lost
                await self._teardown()  # stops asyncua's publish loop on the dead connection at once
                self._ctx.set_gauge("connected", 0)
                raise NotConnected(reason)
            self._wakeup.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wakeup.wait(), self.check_interval_s)
        pending = self._pending
        n = len(pending)
        ts: list[int] = [0] * n
        series: list[str] = [""] * n
        values: list[Value] = [0] * n
        quality: list[int] = [0] * n
        for i in range(n):
            ts[i], series[i], values[i], quality[i] = pending.popleft()
        return Batch(ts, series, values, quality)

    async def close(self) -> None:
        await self._teardown()
        self._ctx.set_gauge("connected", 0)

    # -- internals -------------------------------------------------------------------------------

    def _fail(self, message: str, cause: BaseException | None = None) -> NoReturn:
        self._ctx.set_gauge("connected", 0)
        self._ctx.set_health(Health.ERROR, message)
        raise NotConnected(message) from cause

    async def _teardown(self) -> None:
        """Delete the subscription (when the server is still there) and disconnect."""
        self._generation += 1  # late callbacks of the old connection are ignored
        client, subscription = self._client, self._subscription
        self._client = self._subscription = None
        if client is None or self._oc is None:
            return
        if subscription is not None and self._oc.is_connected(client):
            try:
                await asyncio.wait_for(subscription.delete(), 2.0)
            except Exception as exc:
                self._ctx.log.debug("deleting the subscription failed: %r", exc)
        await self._oc.close_client(client)

    def _push(self, point: Point) -> None:
        if len(self._pending) >= self.max_queued_points:
            self._pending.popleft()
            self._ctx.count("dropped_notifications")
        self._pending.append(point)
        self._wakeup.set()

    def _on_data(self, generation: int, handle: int | None, value: Any) -> None:
        if generation != self._generation or self._oc is None or handle is None:
            return
        index = handle - 1
        if not 0 <= index < len(self._series):
            return
        ts, out, quality = self._oc.point_from_datavalue(value, self._ctx.now_ns())
        self._push((ts, self._series[index], out, quality))

    def _on_status(self, generation: int, status: Any) -> None:
        name = self._oc.status_name(status) if self._oc is not None else str(status)
        self._mark_lost(generation, f"the subscription on {self._config.endpoint} ended ({name})")

    def _mark_lost(self, generation: int, reason: str) -> None:
        if generation == self._generation and self._lost is None:
            self._lost = reason
            self._wakeup.set()


SPEC = NodeSpec(
    type_id="opcua.subscribe",
    version=1,
    category=Category.DEVICE,
    title="OPC UA subscribe",
    description="Subscribes to data changes of OPC UA variables.",
    config=OpcUaSubscribeConfig,
    example=EXAMPLE,
    outputs=(points_out(description="One batch of points per publish"),),
    stateful=False,
    device_protocol="opcua",
    icon="radio",
    behaviour=OpcUaSubscribeSource,
)
