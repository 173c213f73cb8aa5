"""``analytics.threshold``: raise an alarm while a value is above a high or below a low limit."""

import math
import string
from collections.abc import Iterator
from typing import Annotated, Any, Literal

from msgspec import Meta

from nodes.analytics.alarm import ACTIVE, NONE, PENDING_TS, SIDE, AlarmMachine, Transition, make_event, timer_interval
from nodes.host import NO_OUTPUT, Data, NodeContext, Operator, Outputs
from nodes.points import Batch, Event, EventBatch
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


HIGH, LOW = 1, -1


def render_message(template: str, fields: dict[str, Any]) -> str:
    """The alarm text; a template that does not fit the values (``{value:d}`` of a float) falls back
    to a plain message rather than failing the batch."""
    try:
        return template.format(**fields)
    except (ValueError, TypeError, KeyError, IndexError, AttributeError):
        return "{series} {alarm} {state}: {value} (limit {limit})".format(**fields)


class Threshold(Operator):
    """Runtime behaviour: one alarm per series (see :mod:`nodes.analytics.alarm`).

    Raised when a value is above ``high`` (or below ``low``) -- strictly -- for ``on_delay_s`` of
    event time; cleared when it is below ``high - hysteresis`` (above ``low + hysteresis``) for
    ``off_delay_s``. With delays, ``on_timer`` also fires a pending raise/clear once the delay has
    passed on the wall clock since the point that started it arrived and nothing contradicted it.
    Non-numeric values and values of BAD quality are ignored. Events carry the value that caused
    the transition; ``{limit}`` is the limit concerned.
    """

    def __init__(self, config: ThresholdConfig, context: NodeContext) -> None:
        self._config = config
        self._high = math.inf if config.high is None else config.high
        self._low = -math.inf if config.low is None else config.low
        self._machine = AlarmMachine(round(config.on_delay_s * 1e9), round(config.off_delay_s * 1e9))
        self.timer_interval_s = timer_interval(config.on_delay_s, config.off_delay_s)

    def process(self, port: str, data: Data, now_ns: int) -> Outputs:
        if not isinstance(data, Batch) or not data.ts:
            return NO_OUTPUT
        values: list[Any] = data.values  # numbers are told apart by class below
        high, low = self._high, self._low
        clear_high = high - self._config.hysteresis
        clear_low = low + self._config.hysteresis
        machine = self._machine
        states = machine.states
        transitions: list[Transition] = []
        for t, s, v, q in zip(data.ts, data.series, values, data.quality, strict=True):
            if q == 2 or ((c := v.__class__) is not float and c is not int):
                continue
            side = HIGH if v > high else LOW if v < low else 0
            st = states.get(s)
            if st is None:
                if not side:
                    continue  # the common case: no alarm, nothing pending, value inside the limits
                st = machine.state(s)
            elif not side and not st[ACTIVE] and st[PENDING_TS] == NONE:
                continue
            clear = bool(st[ACTIVE]) and (v < clear_high if st[SIDE] == HIGH else v > clear_low)
            transitions.extend(machine.step(s, st, t, v, side, clear, now_ns))
        return self._events(transitions)

    def on_timer(self, now_ns: int) -> Outputs:
        return self._events(self._machine.expire(now_ns))

    def _events(self, transitions: list[Transition]) -> Outputs:
        if not transitions:
            return NO_OUTPUT
        c = self._config
        events: list[Event] = []
        for transition in transitions:
            series, _ts, state, side, value = transition
            limit = c.high if side == HIGH else c.low
            fields = {
                "series": series,
                "alarm": c.alarm,
                "state": state,
                "severity": c.severity,
                "value": value,
                "limit": limit,
            }
            message = render_message(c.message, fields)
            events.append(make_event(transition, alarm=c.alarm, severity=c.severity, message=message))
        return (("events", EventBatch(events)),)

    def snapshot(self) -> Any:
        return {"alarms": self._machine.snapshot()}

    def restore(self, state: Any) -> None:
        if isinstance(state, dict):
            self._machine.restore(state.get("alarms"))


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
    behaviour=Threshold,
)
