"""``opcua.subscribe``: subscribe to data changes of OPC UA nodes."""

import re
from collections.abc import Iterator
from typing import Annotated, Literal

import msgspec
from msgspec import Meta

from nodes.spec import Category, ConfigProblem, NodeConfig, NodeSpec, points_out

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
)
