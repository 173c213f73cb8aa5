"""``window.sliding``: aggregate each series over overlapping windows that advance in steps."""

from collections.abc import Iterator
from typing import Annotated

import msgspec
from msgspec import Meta

from nodes.host import NodeContext
from nodes.spec import Category, ConfigProblem, NodeConfig, NodeSpec, points_in, points_out
from nodes.window.aggregate import WindowOperator
from nodes.window.tumbling import Aggregate, aggregate_problems


class SlidingWindowConfig(NodeConfig, frozen=True):
    """
    Computes aggregates over the last window_s seconds, every slide_s seconds, so windows overlap
    (a moving average, for example). With one aggregate the output keeps the series key; with several,
    each result is named <series>/<aggregate>, e.g. line1/temp/avg. Results are stamped with the end of
    their window; stddev is the sample standard deviation; text and on/off values are ignored.
    """

    window_s: Annotated[float, Meta(gt=0, description="Length of each window, in seconds; a multiple of slide_s.")] = (
        60.0
    )
    slide_s: Annotated[
        float,
        Meta(
            gt=0,
            description="How often a window closes and results are emitted, in seconds; at most window_s.",
        ),
    ] = 10.0
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
        if self.slide_s > self.window_s:
            yield ConfigProblem(
                "$.slide_s",
                f"slide {self.slide_s} s is longer than the window {self.window_s} s",
                "make slide_s at most window_s; use a tumbling window when they are equal",
            )
        elif self.slide_s > 0:
            ratio = self.window_s / self.slide_s
            if abs(ratio - round(ratio)) > 1e-9 * max(1.0, ratio):
                yield ConfigProblem(
                    "$.window_s",
                    f"window {self.window_s} s is not a multiple of the slide {self.slide_s} s",
                    f"use a window of {max(1, round(ratio)) * self.slide_s:g} s or adjust slide_s",
                )


class SlidingWindow(WindowOperator):
    """Runtime behaviour: windows of ``window_s`` ending at every epoch multiple of ``slide_s``.

    Points are accumulated per slide (pane) and the ``window_s / slide_s`` panes of a window are
    merged when it closes. Results are stamped with the window END; ``stddev`` is the sample
    deviation; see :mod:`nodes.window.aggregate` for watermarks, lateness and quality.
    """

    def __init__(self, config: SlidingWindowConfig, context: NodeContext) -> None:
        super().__init__(
            context,
            window_s=config.window_s,
            slide_s=min(config.slide_s, config.window_s),
            aggregates=config.aggregates,
            allowed_lateness_s=config.allowed_lateness_s,
            emit_empty=config.emit_empty,
        )


EXAMPLE = SlidingWindowConfig(window_s=300.0, slide_s=60.0, aggregates=["avg"])

SPEC = NodeSpec(
    type_id="window.sliding",
    version=1,
    category=Category.WINDOW,
    title="Sliding window",
    description="Aggregates each series over overlapping time windows, such as a moving average.",
    config=SlidingWindowConfig,
    example=EXAMPLE,
    inputs=(points_in(),),
    outputs=(points_out(description="One point per series and aggregate each slide"),),
    stateful=True,
    icon="move-horizontal",
    behaviour=SlidingWindow,
)
