"""``transform.deadband``: report by exception, per series."""

from collections.abc import Iterator
from typing import Annotated, Any

from msgspec import Meta

from nodes.host import NO_OUTPUT, Data, NodeContext, Operator, Outputs
from nodes.points import Batch
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


class Deadband(Operator):
    """Runtime behaviour: per series, the last passed value, quality and time.

    A point passes when it is the first of its series, its quality differs from the last passed
    one, ``max_silence_s`` has elapsed (event time) since the last passed point, its numeric value
    differs from the last passed one by more than ``absolute`` or more than ``percent`` % of
    ``|last|`` (either test, when both are set; any change when neither is), or, for text, on/off and
    mixed types, when it is not equal to the last passed value. Points are taken in batch order.
    """

    def __init__(self, config: DeadbandConfig, context: NodeContext) -> None:
        self._absolute = config.absolute
        self._fraction = config.percent / 100.0
        self._silence = round(config.max_silence_s * 1e9)
        self._last: dict[str, list[Any]] = {}  # series -> [value, quality, ts] of the last passed point

    def process(self, port: str, data: Data, now_ns: int) -> Outputs:
        if not isinstance(data, Batch) or not data.ts:
            return NO_OUTPUT
        absolute, fraction, silence = self._absolute, self._fraction, self._silence
        any_change = absolute <= 0 and fraction <= 0
        state = self._last
        keep: list[int] = []
        for i, (t, s, v, q) in enumerate(zip(data.ts, data.series, data.values, data.quality, strict=True)):
            last = state.get(s)
            if last is None:
                state[s] = [v, q, t]
                keep.append(i)
                continue
            lv = last[0]
            if q != last[1] or (silence and t - last[2] >= silence):
                passed = True
            elif ((c := v.__class__) is float or c is int) and ((lc := lv.__class__) is float or lc is int):
                d = abs(v - lv)
                if d != d:  # NaN: passes when exactly one side is NaN
                    passed = (v == v) != (lv == lv)
                elif any_change:
                    passed = d > 0
                else:
                    passed = (absolute > 0 and d > absolute) or (fraction > 0 and d > fraction * abs(lv))
            else:
                passed = v != lv or v.__class__ is not lv.__class__
            if passed:
                last[0], last[1], last[2] = v, q, t
                keep.append(i)
        if not keep:
            return NO_OUTPUT
        if len(keep) == len(data.ts):
            return (("out", data),)
        return (("out", data.take(keep)),)

    def snapshot(self) -> Any:
        return {"series": [[s, *last] for s, last in self._last.items()]}

    def restore(self, state: Any) -> None:
        if isinstance(state, dict):
            self._last = {row[0]: [row[1], int(row[2]), int(row[3])] for row in state.get("series", ())}


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
    behaviour=Deadband,
)
