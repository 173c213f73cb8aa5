"""``sink.nats``: publish points and events to a NATS subject."""

from collections.abc import Iterator
from typing import Annotated, Literal

from msgspec import Meta

from nodes.host import Data, NodeContext, Sink
from nodes.sink.encoding import encode_json, encode_msgpack, records
from nodes.spec import Category, ConfigProblem, NodeConfig, NodeSpec, any_in

Format = Literal["json", "msgpack"]


def subject_problem(subject: str) -> str | None:
    """Why ``subject`` cannot be published to, or None when it can."""
    if not subject:
        return "the subject is empty"
    if any(c.isspace() or ord(c) < 0x20 or ord(c) == 0x7F for c in subject):
        return f"subject {subject!r} contains whitespace or control characters"
    tokens = subject.split(".")
    if any(not token for token in tokens):
        return f"subject {subject!r} has an empty token (leading, trailing or double '.')"
    if any(token in ("*", ">") or "*" in token or ">" in token for token in tokens):
        return f"subject {subject!r} contains a wildcard, which can only be used to subscribe"
    return None


class NatsSinkConfig(NodeConfig, frozen=True):
    """
    Publishes points and events to a NATS subject on the message bus, for other services to consume.
    Messages are JSON or MessagePack, one per batch or one per point.
    """

    subject: Annotated[
        str,
        Meta(
            min_length=1,
            max_length=255,
            description="NATS subject to publish to: tokens separated by dots, no spaces and no wildcards.",
            examples=["plant.line1.energy"],
        ),
    ] = "proxus.points"
    format: Annotated[
        Format, Meta(description="Encoding of each message: JSON (readable) or MessagePack (compact).")
    ] = "json"
    batch: Annotated[
        bool,
        Meta(description="Send one message per batch; when off, send one message per point or event."),
    ] = True

    def problems(self) -> Iterator[ConfigProblem]:
        why = subject_problem(self.subject)
        if why is not None:
            yield ConfigProblem("$.subject", why, "use dot-separated words such as plant.line1.energy")


class NatsSink(Sink):
    """Publishes on the edge's NATS connection (the runtime retries while NATS is unreachable)."""

    def __init__(self, config: NatsSinkConfig, context: NodeContext) -> None:
        self.config = config
        self.context = context
        self._encode = encode_json if config.format == "json" else encode_msgpack

    async def write(self, data: Data, key: str = "") -> None:
        items = records(data)
        if self.config.batch:
            await self.context.publish(self.config.subject, self._encode(items))
            return
        for item in items:
            await self.context.publish(self.config.subject, self._encode(item))


EXAMPLE = NatsSinkConfig(subject="plant.line1.energy", format="json", batch=True)

SPEC = NodeSpec(
    type_id="sink.nats",
    version=1,
    category=Category.SINK,
    title="NATS publish",
    description="Publishes points and events to a NATS subject.",
    config=NatsSinkConfig,
    example=EXAMPLE,
    inputs=(any_in(),),
    stateful=False,
    icon="radio-tower",
    behaviour=NatsSink,
)
