"""``sink.debug``: show points and events in the editor's debug panel."""

from typing import Annotated

from msgspec import Meta

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
)
