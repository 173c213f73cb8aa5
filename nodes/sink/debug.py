"""``sink.debug``: show points and events in the editor's debug panel."""

import time
from typing import Annotated, Any

import msgspec
from msgspec import Meta

from nodes.host import Data, NodeContext, Sink
from nodes.points import QUALITY_NAMES, EventBatch
from nodes.spec import Category, NodeConfig, NodeSpec, any_in


class DebugConfig(NodeConfig, frozen=True):
    """
    Shows the points and events arriving here in the editor's debug panel, to check what a flow
    produces. Output is sampled and rate limited so it never slows the flow down.
    """

    label: Annotated[
        str,
        Meta(
            max_length=200,
            description="Label shown next to each message in the debug panel.",
            examples=["after scaling"],
        ),
    ] = ""
    max_points_per_message: Annotated[
        int,
        Meta(
            ge=1,
            le=10_000,
            description="Largest number of points or events shown per message; larger batches are cut short.",
        ),
    ] = 100
    rate_limit_per_s: Annotated[
        float,
        Meta(
            gt=0,
            le=1000,
            description="Largest number of messages sent to the debug panel per second; further batches are not shown.",
        ),
    ] = 10.0


class DebugSink(Sink):
    """Sends a sample of each batch to the live debug view, at most ``rate_limit_per_s`` messages a second."""

    durable = False  # shows, does not deliver: nothing to buffer through an outage

    def __init__(self, config: DebugConfig, context: NodeContext) -> None:
        self.config = config
        self.context = context
        self._tokens = config.rate_limit_per_s
        self._last = time.monotonic()

    def _allow(self) -> bool:
        now = time.monotonic()
        rate = self.config.rate_limit_per_s
        self._tokens = min(rate, self._tokens + (now - self._last) * rate)
        self._last = now
        if self._tokens >= 1:
            self._tokens -= 1
            return True
        return False

    async def write(self, data: Data, key: str = "") -> None:
        if not self._allow():
            self.context.count("suppressed_messages")
            return
        limit = self.config.max_points_per_message
        items: list[dict[str, Any]]
        if isinstance(data, EventBatch):
            items = [msgspec.to_builtins(e) for e in data.events[:limit]]
        else:
            n = min(limit, len(data.ts))
            q = data.quality
            items = [
                {"ts": data.ts[i], "series": data.series[i], "value": data.values[i], "quality": QUALITY_NAMES[q[i]]}
                for i in range(n)
            ]
        self.context.debug(
            {
                "flow": self.context.flow_id,
                "node": self.context.node_id,
                "label": self.config.label or self.context.label,
                "kind": "events" if isinstance(data, EventBatch) else "points",
                "count": len(data),
                "at": self.context.now_ns(),
                "points": items,
            }
        )


EXAMPLE = DebugConfig(label="after scaling", max_points_per_message=100, rate_limit_per_s=10.0)

SPEC = NodeSpec(
    type_id="sink.debug",
    version=1,
    category=Category.SINK,
    title="Debug",
    description="Shows points and events in the editor's debug panel.",
    config=DebugConfig,
    example=EXAMPLE,
    inputs=(any_in(),),
    stateful=False,
    icon="bug",
    behaviour=DebugSink,
)
