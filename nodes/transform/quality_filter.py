"""``transform.quality_filter``: keep only points of the chosen quality classes."""

from collections.abc import Iterator
from typing import Annotated, Literal

import msgspec
from msgspec import Meta

from nodes.host import NO_OUTPUT, Data, NodeContext, Operator, Outputs
from nodes.points import QUALITY_NAMES, Batch
from nodes.spec import Category, ConfigProblem, NodeConfig, NodeSpec, points_in, points_out

QualityName = Literal["good", "uncertain", "bad"]


class QualityFilterConfig(NodeConfig, frozen=True):
    """
    Passes on only points whose quality is one of the chosen classes, e.g. to keep communication
    errors (bad quality) out of calculations or the historian.
    """

    keep: Annotated[
        list[QualityName],
        Meta(
            min_length=1,
            description="Quality classes to keep; points of any other quality are dropped.",
            extra_json_schema={"default": ["good"]},
        ),
    ] = msgspec.field(default_factory=lambda: ["good"])

    def problems(self) -> Iterator[ConfigProblem]:
        if not self.keep:
            yield ConfigProblem(
                "$.keep", "no quality is kept, so every point is dropped", "choose at least one quality"
            )
        seen: set[str] = set()
        for i, quality in enumerate(self.keep):
            if quality in seen:
                yield ConfigProblem(f"$.keep[{i}]", f"{quality} is listed twice", "remove the duplicate")
            seen.add(quality)


class QualityFilter(Operator):
    """Runtime behaviour: keeps the points whose quality is in ``keep``."""

    def __init__(self, config: QualityFilterConfig, context: NodeContext) -> None:
        self._keep = frozenset(QUALITY_NAMES.index(name) for name in config.keep)

    def process(self, port: str, data: Data, now_ns: int) -> Outputs:
        if not isinstance(data, Batch) or not data.ts:
            return NO_OUTPUT
        keep = self._keep
        if keep.issuperset(data.quality):
            return (("out", data),)
        indices = [i for i, q in enumerate(data.quality) if q in keep]
        if not indices:
            return NO_OUTPUT
        return (("out", data.take(indices)),)


EXAMPLE = QualityFilterConfig(keep=["good", "uncertain"])

SPEC = NodeSpec(
    type_id="transform.quality_filter",
    version=1,
    category=Category.TRANSFORM,
    title="Quality filter",
    description="Keeps only points of the chosen quality (good, uncertain, bad).",
    config=QualityFilterConfig,
    example=EXAMPLE,
    inputs=(points_in(),),
    outputs=(points_out(),),
    stateful=False,
    icon="shield-check",
    behaviour=QualityFilter,
)
