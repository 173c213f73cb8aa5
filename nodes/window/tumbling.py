"""``window.tumbling``: aggregate each series over fixed, back-to-back time windows."""

from collections.abc import Iterator
from typing import Annotated, Literal

import msgspec
from msgspec import Meta

from nodes.host import NodeContext
from nodes.spec import Category, ConfigProblem, NodeConfig, NodeSpec, points_in, points_out
from nodes.window.aggregate import WindowOperator

Aggregate = Literal["avg", "min", "max", "sum", "count", "first", "last", "stddev"]


def aggregate_problems(aggregates: list[Aggregate]) -> Iterator[ConfigProblem]:
    """The problems of an aggregate list: it must be non-empty and free of duplicates."""
    if not aggregates:
        yield ConfigProblem("$.aggregates", "no aggregate chosen", "choose at least one, e.g. avg")
    seen: set[str] = set()
    for i, aggregate in enumerate(aggregates):
        if aggregate in seen:
            yield ConfigProblem(f"$.aggregates[{i}]", f"{aggregate} is listed twice", "remove the duplicate")
        seen.add(aggregate)


class TumblingWindowConfig(NodeConfig, frozen=True):
    """
    Cuts time into fixed windows that follow each other without overlap, and emits one aggregate per
    series and window when the window closes. With one aggregate the output keeps the series key; with
    several, each result is named <series>/<aggregate>, e.g. line1/temp/max. Results are stamped with
    the end of their window; stddev is the sample standard deviation; text and on/off values are ignored.
    """

    window_s: Annotated[
        float, Meta(gt=0, description="Length of each window, in seconds; windows align to the clock.")
    ] = 60.0
    aggregates: Annotated[
        list[Aggregate],
        Meta(
            min_length=1,
            description="Statistics computed for each window (each one once).",
            extra_json_schema={"default": ["avg"]},
        ),
    ] = msgspec.field(default_factory=lambda: ["avg"])
    allowed_lateness_s: Annotated[
        float,
        Meta(
            ge=0,
            description="How long a window stays open for late points after it ends, in seconds; "
            "points arriving later are dropped.",
        ),
    ] = 0.0
    emit_empty: Annotated[
        bool,
        Meta(
            description="Emit a point for a series even when a window received no data (count 0, other "
            "aggregates with bad quality)."
        ),
    ] = False

    def problems(self) -> Iterator[ConfigProblem]:
        yield from aggregate_problems(self.aggregates)


class TumblingWindow(WindowOperator):
    """Runtime behaviour: one window per series and ``window_s``, aligned to epoch multiples.

    Results are stamped with the window END (``[end - window_s, end)``); ``stddev`` is the sample
    deviation; see :mod:`nodes.window.aggregate` for watermarks, lateness and quality.
    """

    def __init__(self, config: TumblingWindowConfig, context: NodeContext) -> None:
        super().__init__(
            context,
            window_s=config.window_s,
            slide_s=config.window_s,
            aggregates=config.aggregates,
            allowed_lateness_s=config.allowed_lateness_s,
            emit_empty=config.emit_empty,
        )


EXAMPLE = TumblingWindowConfig(window_s=60.0, aggregates=["avg", "min", "max"], allowed_lateness_s=5.0)

SPEC = NodeSpec(
    type_id="window.tumbling",
    version=1,
    category=Category.WINDOW,
    title="Tumbling window",
    description="Aggregates each series over fixed, non-overlapping time windows.",
    config=TumblingWindowConfig,
    example=EXAMPLE,
    inputs=(points_in(),),
    outputs=(points_out(description="One point per series, aggregate and window"),),
    stateful=True,
    icon="sigma",
    behaviour=TumblingWindow,
)
