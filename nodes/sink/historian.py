"""``sink.historian``: store points and events in the Hub's historian database."""

from typing import Annotated

from msgspec import Meta

from nodes.spec import Category, NodeConfig, NodeSpec, any_in


class HistorianConfig(NodeConfig, frozen=True):
    """
    Stores points and alarm events in the historian on the Hub: a TimescaleDB hypertable, or plain
    PostgreSQL where TimescaleDB is not installed. Writes are batched for throughput.
    """

    batch_size: Annotated[
        int,
        Meta(ge=1, le=100_000, description="Largest number of rows written in one database transaction."),
    ] = 5000
    flush_interval_ms: Annotated[
        int,
        Meta(
            ge=10,
            le=60_000,
            description="Longest time rows wait before being written, in milliseconds, "
            "even when fewer than batch_size are pending.",
        ),
    ] = 1000
    store_events: Annotated[
        bool, Meta(description="Also store alarm events arriving on the input; when off they are dropped.")
    ] = True


EXAMPLE = HistorianConfig(batch_size=5000, flush_interval_ms=1000, store_events=True)

SPEC = NodeSpec(
    type_id="sink.historian",
    version=1,
    category=Category.SINK,
    title="Historian",
    description="Stores points and events in the Hub's time-series database.",
    config=HistorianConfig,
    example=EXAMPLE,
    inputs=(any_in(),),
    stateful=False,
    icon="database",
)
