"""``analytics.threshold``: raise an alarm while a value is above a high or below a low limit."""

import string
from collections.abc import Iterator
from typing import Annotated, Literal

from msgspec import Meta

from nodes.spec import Category, ConfigProblem, NodeConfig, NodeSpec, events_out, points_in

Severity = Literal["info", "warning", "critical"]

MESSAGE_FIELDS: frozenset[str] = frozenset({"series", "alarm", "state", "severity", "value", "limit"})


def message_problems(message: str, path: str = "$.message") -> Iterator[ConfigProblem]:
    """Check an alarm message template: only plain ``{name}`` placeholders from MESSAGE_FIELDS,
    optionally with a format spec such as ``{value:.1f}``; no attribute or index access."""
    try:
        parsed = list(string.Formatter().parse(message))
    except ValueError as e:
        yield ConfigProblem(path, f"malformed template: {e}", "write literal braces as {{ and }}")
        return
    allowed = ", ".join("{" + name + "}" for name in sorted(MESSAGE_FIELDS))
    for _literal, field, _spec, _conversion in parsed:
        if field is not None and field not in MESSAGE_FIELDS:
            yield ConfigProblem(path, f"unknown placeholder {{{field}}}", f"use {allowed}")


class ThresholdConfig(NodeConfig, frozen=True):
    """
    Raises an alarm event when a value goes above the high limit or below the low limit, and clears
    it when the value is back inside the limits by more than the hysteresis. Delays suppress alarms
    from short spikes.
    """

    high: Annotated[
        float | None,
        Meta(description="Alarm when the value is above this limit; empty for no high limit.", examples=[80.0]),
    ] = None
    low: Annotated[
        float | None,
        Meta(description="Alarm when the value is below this limit; empty for no low limit.", examples=[5.0]),
    ] = None
    hysteresis: Annotated[
        float,
        Meta(
            ge=0,
            description="How far the value must come back inside the limit before the alarm clears, "
            "in engineering units.",
        ),
    ] = 0.0
    on_delay_s: Annotated[
        float,
        Meta(ge=0, description="How long the limit must be violated before the alarm is raised, in seconds."),
    ] = 0.0
    off_delay_s: Annotated[
        float,
        Meta(
            ge=0,
            description="How long the value must be back inside the limits before the alarm clears, in seconds.",
        ),
    ] = 0.0
    severity: Annotated[Severity, Meta(description="Severity of the raised alarm.")] = "warning"
    alarm: Annotated[
        str,
        Meta(
            min_length=1,
            description="Name of the alarm, shown in alarm lists and stored with events.",
            examples=["high_temperature"],
        ),
    ] = "threshold"
    message: Annotated[
        str,
        Meta(
            description="Text of the alarm event; may use the placeholders {series}, {alarm}, {state}, "
            "{severity}, {value} and {limit}, e.g. {value:.1f}.",
            examples=["{series} is {value:.1f}, limit {limit}"],
        ),
    ] = "{series} {state}: {value} (limit {limit})"

    def problems(self) -> Iterator[ConfigProblem]:
        if self.high is None and self.low is None:
            yield ConfigProblem("$.high", "neither a high nor a low limit is set", "set high, low or both")
        if self.high is not None and self.low is not None:
            if self.low >= self.high:
                yield ConfigProblem(
                    "$.low", f"low limit {self.low} is not below high limit {self.high}", "set low below high"
                )
            elif self.hysteresis >= self.high - self.low:
                yield ConfigProblem(
                    "$.hysteresis",
                    f"hysteresis {self.hysteresis} is as wide as the band {self.low}..{self.high}, "
                    "so a high alarm could only clear below the low limit",
                    "use a hysteresis smaller than the distance between low and high",
                )
        if not self.alarm.strip():
            yield ConfigProblem("$.alarm", "the alarm has no name", "name the alarm, e.g. high_temperature")
        yield from message_problems(self.message)


EXAMPLE = ThresholdConfig(
    high=80.0,
    low=5.0,
    hysteresis=2.0,
    on_delay_s=10.0,
    off_delay_s=30.0,
    severity="critical",
    alarm="temperature_limit",
    message="{series} {state}: {value:.1f} °C (limit {limit})",
)

SPEC = NodeSpec(
    type_id="analytics.threshold",
    version=1,
    category=Category.ANALYTICS,
    title="Threshold alarm",
    description="Raises an alarm while a value is above a high or below a low limit.",
    config=ThresholdConfig,
    example=EXAMPLE,
    inputs=(points_in(),),
    outputs=(events_out(),),
    stateful=True,
    icon="bell",
)
