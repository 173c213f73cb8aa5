"""``transform.quality_filter``: keep only points of the chosen quality classes."""

from collections.abc import Iterator
from typing import Annotated, Literal

import msgspec
from msgspec import Meta

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
)
