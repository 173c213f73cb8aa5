"""``transform.deadband``: report by exception, per series."""

from collections.abc import Iterator
from typing import Annotated

from msgspec import Meta

from nodes.spec import Category, ConfigProblem, NodeConfig, NodeSpec, points_in, points_out


class DeadbandConfig(NodeConfig, frozen=True):
    """
    Passes a point on only when its value has moved far enough from the last value passed for the
    same series (report by exception). Text and on/off values pass whenever they change, and a quality
    change always passes.
    """

    absolute: Annotated[
        float,
        Meta(ge=0, description="Smallest change that passes, in engineering units; 0 disables this test."),
    ] = 0.0
    percent: Annotated[
        float,
        Meta(
            ge=0,
            description="Smallest change that passes, in percent of the last passed value; 0 disables "
            "this test. When both tests are set, a change passes if it exceeds either.",
        ),
    ] = 1.0
    max_silence_s: Annotated[
        float,
        Meta(
            ge=0,
            description="Pass the current value at least this often even without a change, in "
            "seconds; 0 never forces a value through.",
        ),
    ] = 0.0

    def problems(self) -> Iterator[ConfigProblem]:
        if self.absolute <= 0 and self.percent <= 0:
            yield ConfigProblem(
                "$.absolute",
                "neither an absolute nor a percent deadband is set",
                "set absolute or percent above 0; otherwise every change passes",
            )


EXAMPLE = DeadbandConfig(absolute=0.5, percent=0.0, max_silence_s=300.0)

SPEC = NodeSpec(
    type_id="transform.deadband",
    version=1,
    category=Category.TRANSFORM,
    title="Deadband",
    description="Passes a value only when it changes by more than a deadband.",
    config=DeadbandConfig,
    example=EXAMPLE,
    inputs=(points_in(),),
    outputs=(points_out(),),
    stateful=True,
    icon="chevrons-up-down",
)
