"""``simulator``: a stand-in device that generates signals, for building and testing flows."""

from collections.abc import Iterator
from typing import Annotated, Literal

import msgspec
from msgspec import Meta

from nodes.spec import Category, ConfigProblem, NodeConfig, NodeSpec, points_out

Signal = Literal["sine", "ramp", "random_walk", "step", "counter"]


class SimTag(msgspec.Struct, kw_only=True, forbid_unknown_fields=True, frozen=True):
    """One simulated signal."""

    tag: Annotated[
        str,
        Meta(
            min_length=1,
            description="Tag name of the signal; its series key is <device_name>/<tag>.",
            examples=["temperature"],
        ),
    ]
    signal: Annotated[
        Signal,
        Meta(
            description="Shape of the signal: sine wave, sawtooth ramp, random walk, square step between "
            "offset and offset + amplitude, or a counter that grows by step each tick."
        ),
    ] = "sine"
    amplitude: Annotated[float, Meta(description="Height of the sine, ramp or step signal, in engineering units.")] = (
        1.0
    )
    period_s: Annotated[float, Meta(gt=0, description="Period of the sine, ramp or step signal, in seconds.")] = 60.0
    offset: Annotated[
        float, Meta(description="Value the signal starts from or oscillates around, in engineering units.")
    ] = 0.0
    step: Annotated[
        float,
        Meta(description="Increment of the counter, or largest change per tick of the random walk."),
    ] = 1.0
    min: Annotated[float | None, Meta(description="Lowest value the signal may take; values below are clamped.")] = None
    max: Annotated[float | None, Meta(description="Highest value the signal may take; values above are clamped.")] = (
        None
    )


class SimulatorConfig(NodeConfig, frozen=True):
    """
    Generates test signals (sine, ramp, random walk, step, counter) as if a device were connected.
    Use it to build and try out a flow before the real machine is reachable.
    """

    device_name: Annotated[
        str,
        Meta(
            min_length=1,
            description="Device name used in the series keys <device_name>/<tag>.",
            examples=["sim"],
        ),
    ] = "sim"
    rate_hz: Annotated[float, Meta(gt=0, le=10000, description="How many samples per second each signal produces.")] = (
        1.0
    )
    tags: Annotated[list[SimTag], Meta(description="The simulated signals: one entry per tag.")] = msgspec.field(
        default_factory=list
    )

    def problems(self) -> Iterator[ConfigProblem]:
        name = self.device_name
        if not name.strip() or "/" in name:
            yield ConfigProblem(
                "$.device_name",
                f"{name!r} cannot be used as a device name",
                "use a non-empty name without '/'",
            )
        if not self.tags:
            yield ConfigProblem("$.tags", "no signals to simulate", "add at least one tag")
        seen: dict[str, int] = {}
        for i, tag in enumerate(self.tags):
            path = f"$.tags[{i}]"
            if not tag.tag.strip():
                yield ConfigProblem(f"{path}.tag", "tag is empty", "name the signal, e.g. temperature")
            elif tag.tag in seen:
                yield ConfigProblem(
                    f"{path}.tag",
                    f"tag {tag.tag!r} is already used by tags[{seen[tag.tag]}]",
                    "give every signal a unique tag",
                )
            else:
                seen[tag.tag] = i
            if tag.min is not None and tag.max is not None and tag.min >= tag.max:
                yield ConfigProblem(
                    f"{path}.max",
                    f"max {tag.max} is not above min {tag.min}",
                    "set max above min, or leave one of them empty",
                )


EXAMPLE = SimulatorConfig(
    device_name="sim",
    rate_hz=2.0,
    tags=[
        SimTag(tag="temperature", signal="sine", amplitude=5.0, period_s=120.0, offset=60.0),
        SimTag(tag="pressure", signal="random_walk", offset=4.0, step=0.05, min=0.0, max=10.0),
        SimTag(tag="speed_setpoint", signal="step", amplitude=500.0, period_s=300.0, offset=1000.0),
        SimTag(tag="parts_produced", signal="counter", step=1.0),
        SimTag(tag="fill_level", signal="ramp", amplitude=100.0, period_s=600.0),
    ],
)

SPEC = NodeSpec(
    type_id="simulator",
    version=1,
    category=Category.DEVICE,
    title="Simulator",
    description="Generates test signals as if a device were connected.",
    config=SimulatorConfig,
    example=EXAMPLE,
    outputs=(points_out(description="One batch of points per tick"),),
    stateful=False,
    icon="activity",
)
