"""``analytics.rate_of_change``: how fast a value changes, with an optional alarm."""

from collections.abc import Iterator
from typing import Annotated, Any, Literal

from msgspec import Meta

from nodes.analytics.alarm import ACTIVE, NONE, PENDING_TS, AlarmMachine, Transition, make_event
from nodes.host import NO_OUTPUT, Data, NodeContext, Operator, Outputs
from nodes.points import Batch, Event, EventBatch, Value
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


UNIT_SECONDS: dict[str, float] = {"per_second": 1.0, "per_minute": 60.0, "per_hour": 3600.0}
_UNIT_TEXT: dict[str, str] = {"per_second": "/s", "per_minute": "/min", "per_hour": "/h"}


class RateOfChange(Operator):
    """Runtime behaviour: per series, ``(v - v_prev) / (t - t_prev)`` between consecutive points.

    Emitted as ``<series>/rate`` at the later point's time, with the worse quality of the two. A
    point not later than its predecessor (a duplicate or out-of-order time) yields no rate and is
    ignored; non-numeric values are ignored. With ``limit`` set, an alarm is raised (Event on
    "events", series = the input series, value = the rate) when ``|rate| > limit`` and cleared when
    ``|rate| < limit - hysteresis``; rates from BAD-quality points do not move the alarm.
    """

    def __init__(self, config: RateOfChangeConfig, context: NodeContext) -> None:
        self._config = config
        self._factor = UNIT_SECONDS[config.rate_unit] * 1e9  # (change per ns) * factor = change per unit
        self._last: dict[str, list[Any]] = {}  # series -> [ts, value, quality]
        self._names: dict[str, str] = {}
        self._machine = AlarmMachine()

    def process(self, port: str, data: Data, now_ns: int) -> Outputs:
        if not isinstance(data, Batch) or not data.ts:
            return NO_OUTPUT
        last_by_series = self._last
        names = self._names
        factor = self._factor
        limit = self._config.limit
        clear_below = (limit or 0.0) - self._config.hysteresis
        machine = self._machine
        states = machine.states
        out_ts: list[int] = []
        out_series: list[str] = []
        out_values: list[Value] = []
        out_q: list[int] = []
        transitions: list[Transition] = []
        for t, s, v, q in zip(data.ts, data.series, data.values, data.quality, strict=True):
            if (c := v.__class__) is not float and c is not int:
                continue
            last = last_by_series.get(s)
            if last is None:
                last_by_series[s] = [t, v, q]
                continue
            dt = t - last[0]
            if dt <= 0:
                continue
            rate = (v - last[1]) * factor / dt
            worst = q if q > last[2] else last[2]
            last[0], last[1], last[2] = t, v, q
            name = names.get(s)
            if name is None:
                name = names[s] = s + "/rate"
            out_ts.append(t)
            out_series.append(name)
            out_values.append(rate)
            out_q.append(worst)
            if limit is None or worst == 2:
                continue
            magnitude = abs(rate)
            side = 1 if magnitude > limit else 0
            st = states.get(s)
            if st is None:
                if not side:
                    continue
                st = machine.state(s)
            elif not side and not st[ACTIVE] and st[PENDING_TS] == NONE:
                continue
            transitions.extend(machine.step(s, st, t, rate, side, magnitude < clear_below, now_ns))
        outputs: list[tuple[str, Data]] = []
        if out_ts:
            outputs.append(("out", Batch(out_ts, out_series, out_values, out_q)))
        if transitions:
            outputs.append(("events", EventBatch([self._event(tr) for tr in transitions])))
        return outputs

    def _event(self, transition: Transition) -> Event:
        c = self._config
        series, _ts, state, _side, rate = transition
        unit = _UNIT_TEXT[c.rate_unit]
        if state == "raise":
            message = f"{series} changes at {rate:.6g}{unit}, faster than ±{c.limit:g}{unit}"
        else:
            message = f"{series} changes at {rate:.6g}{unit}, back within ±{c.limit:g}{unit}"
        return make_event(transition, alarm=c.alarm, severity=c.severity, message=message)

    def snapshot(self) -> Any:
        return {"last": [[s, *last] for s, last in self._last.items()], "alarms": self._machine.snapshot()}

    def restore(self, state: Any) -> None:
        if not isinstance(state, dict):
            return
        self._last = {row[0]: [int(row[1]), row[2], int(row[3])] for row in state.get("last", ())}
        self._machine.restore(state.get("alarms"))


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
    behaviour=RateOfChange,
)
