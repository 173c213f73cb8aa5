"""``analytics.rate_of_change``: how fast a value changes, with an optional alarm."""

from collections.abc import Iterator
from typing import Annotated, Literal

from msgspec import Meta

from nodes.spec import Category, ConfigProblem, NodeConfig, NodeSpec, events_out, points_in, points_out

Severity = Literal["info", "warning", "critical"]
RateUnit = Literal["per_second", "per_minute", "per_hour"]


class RateOfChangeConfig(NodeConfig, frozen=True):
    """
    Computes how fast each series changes (for example °C per minute) and emits it as
    <series>/rate. With a limit set, it also raises an alarm while the rate, rising or falling,
    exceeds the limit.
    """

    rate_unit: Annotated[
        RateUnit, Meta(description="Time basis of the rate: change per second, per minute or per hour.")
    ] = "per_second"
    limit: Annotated[
        Annotated[float, Meta(gt=0)] | None,
        Meta(
            description="Raise an alarm when the absolute rate exceeds this, in engineering units per "
            "rate_unit; empty computes the rate without alarming.",
            examples=[2.0],
        ),
    ] = None
    hysteresis: Annotated[
        float,
        Meta(ge=0, description="How far the rate must fall below the limit before the alarm clears."),
    ] = 0.0
    severity: Annotated[Severity, Meta(description="Severity of the raised alarm.")] = "warning"
    alarm: Annotated[
        str,
        Meta(
            min_length=1,
            description="Name of the alarm, shown in alarm lists and stored with events.",
            examples=["temperature_rising_fast"],
        ),
    ] = "rate_of_change"

    def problems(self) -> Iterator[ConfigProblem]:
        if self.limit is not None and self.hysteresis >= self.limit:
            yield ConfigProblem(
                "$.hysteresis",
                f"hysteresis {self.hysteresis} is not below the limit {self.limit}, so the alarm would never clear",
                "use a hysteresis smaller than the limit",
            )
        if not self.alarm.strip():
            yield ConfigProblem("$.alarm", "the alarm has no name", "name the alarm")


EXAMPLE = RateOfChangeConfig(
    rate_unit="per_minute", limit=5.0, hysteresis=1.0, severity="warning", alarm="temperature_rising_fast"
)

SPEC = NodeSpec(
    type_id="analytics.rate_of_change",
    version=1,
    category=Category.ANALYTICS,
    title="Rate of change",
    description="Computes how fast values change and alarms when they change too fast.",
    config=RateOfChangeConfig,
    example=EXAMPLE,
    inputs=(points_in(),),
    outputs=(points_out(description="The rate of each series, as <series>/rate"), events_out()),
    stateful=True,
    icon="trending-up",
)
