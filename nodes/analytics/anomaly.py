"""``analytics.anomaly``: score how unusual each value is and alarm on outliers."""

import math
from collections import deque
from collections.abc import Iterator
from typing import Annotated, Any, Literal

from msgspec import Meta

from nodes.analytics.alarm import ACTIVE, NONE, PENDING_TS, AlarmMachine, make_event
from nodes.host import NO_OUTPUT, Data, NodeContext, Operator, Outputs
from nodes.points import Batch, Event, EventBatch, Value
from nodes.spec import Category, ConfigProblem, NodeConfig, NodeSpec, events_out, points_in, points_out

Severity = Literal["info", "warning", "critical"]
Method = Literal["ewma", "zscore"]


class AnomalyConfig(NodeConfig, frozen=True):
    """
    Scores how unusual each value is compared with the recent behaviour of its series (how many
    standard deviations it lies from the mean) and emits the score as <series>/score. An alarm is raised
    while the score exceeds the threshold.
    """

    method: Annotated[
        Method,
        Meta(
            description="ewma follows an exponentially weighted mean and variance (smoothing set by alpha); "
            "zscore uses the mean and deviation of the last `window` samples."
        ),
    ] = "ewma"
    alpha: Annotated[
        float,
        Meta(
            gt=0,
            le=1,
            description="Smoothing factor for ewma: higher adapts faster to new behaviour; only used by ewma.",
        ),
    ] = 0.1
    window: Annotated[
        int,
        Meta(
            ge=2,
            le=100_000,
            description="Number of recent samples the zscore method compares against; only used by zscore.",
        ),
    ] = 60
    threshold: Annotated[
        float,
        Meta(gt=0, description="Score (in standard deviations) above which a value counts as an anomaly."),
    ] = 3.0
    min_samples: Annotated[
        int,
        Meta(ge=1, description="Samples a series needs before it is scored; earlier values raise no alarm."),
    ] = 10
    severity: Annotated[Severity, Meta(description="Severity of the raised alarm.")] = "warning"
    alarm: Annotated[
        str,
        Meta(
            min_length=1,
            description="Name of the alarm, shown in alarm lists and stored with events.",
            examples=["vibration_anomaly"],
        ),
    ] = "anomaly"

    def problems(self) -> Iterator[ConfigProblem]:
        if self.method == "zscore" and self.min_samples > self.window:
            yield ConfigProblem(
                "$.min_samples",
                f"min_samples {self.min_samples} exceeds the window of "
                f"{self.window} samples, so no value would ever be scored",
                "set min_samples at most window",
            )
        if not self.alarm.strip():
            yield ConfigProblem("$.alarm", "the alarm has no name", "name the alarm")


_TINY = 1e-12  # relative floor of the deviation, so a flat series scores a change as huge, not infinite


class _Window:
    """The last ``size`` samples of a series with running shifted sums (sample mean and deviation)."""

    __slots__ = ("appended", "samples", "shift", "sum", "sumsq")

    def __init__(self, size: int, samples: list[float] | None = None) -> None:
        self.samples: deque[float] = deque(samples or (), maxlen=size)
        self.appended = 0
        self.shift = self.sum = self.sumsq = 0.0
        self.recompute()

    def recompute(self) -> None:
        """Exact sums, shifted by the current mean (keeps the running sums from drifting)."""
        n = len(self.samples)
        self.shift = sum(self.samples) / n if n else 0.0
        d = [x - self.shift for x in self.samples]
        self.sum = sum(d)
        self.sumsq = sum([x * x for x in d])
        self.appended = 0

    def score(self, x: float) -> float:
        n = len(self.samples)
        mean_d = self.sum / n
        var = (self.sumsq - self.sum * mean_d) / (n - 1) if n > 1 else 0.0
        std = math.sqrt(var) if var > 0 else 0.0
        mean = self.shift + mean_d
        return abs(x - mean) / max(std, _TINY * max(1.0, abs(mean)))

    def append(self, x: float) -> None:
        samples = self.samples
        if len(samples) == samples.maxlen:
            d = samples[0] - self.shift
            self.sum -= d
            self.sumsq -= d * d
        samples.append(x)
        d = x - self.shift
        self.sum += d
        self.sumsq += d * d
        self.appended += 1
        if self.appended >= (samples.maxlen or 1):
            self.recompute()


class Anomaly(Operator):
    """Runtime behaviour: a score per point, ``|x - mean| / deviation`` of the series' recent past.

    ewma: mean and variance follow exponentially weighted updates (``mean += alpha * d``,
    ``var = (1 - alpha) * (var + alpha * d * d)`` with ``d = x - mean``); zscore: the sample mean
    and deviation of the last ``window`` samples. A value is scored against the state *before* it
    is added, once the series has ``min_samples`` samples; scores go out as ``<series>/score`` at
    the value's time and quality. An alarm is raised while ``score > threshold`` (Event value: the
    value; message: the score) and cleared at the first scored value at or below it. Non-numeric
    values are ignored; BAD-quality values are ignored entirely (neither scored nor learned).
    """

    def __init__(self, config: AnomalyConfig, context: NodeContext) -> None:
        self._config = config
        self._ewma: dict[str, list[float]] = {}  # series -> [samples, mean, variance]
        self._windows: dict[str, _Window] = {}
        self._names: dict[str, str] = {}
        self._machine = AlarmMachine()

    def process(self, port: str, data: Data, now_ns: int) -> Outputs:
        if not isinstance(data, Batch) or not data.ts:
            return NO_OUTPUT
        values: list[Any] = data.values  # numbers are told apart by class below
        c = self._config
        ewma = c.method == "ewma"
        alpha, min_samples, threshold = c.alpha, c.min_samples, c.threshold
        names = self._names
        machine = self._machine
        states = machine.states
        out_ts: list[int] = []
        out_series: list[str] = []
        out_values: list[Value] = []
        out_q: list[int] = []
        events: list[Event] = []
        for t, s, x, q in zip(data.ts, data.series, values, data.quality, strict=True):
            if q == 2 or ((cls := x.__class__) is not float and cls is not int):
                continue
            score: float | None = None
            if ewma:
                est = self._ewma.get(s)
                if est is None:
                    self._ewma[s] = [1, float(x), 0.0]
                    continue
                n, mean, var = est
                if n >= min_samples:
                    score = abs(x - mean) / max(math.sqrt(var), _TINY * max(1.0, abs(mean)))
                d = x - mean
                inc = alpha * d
                est[0], est[1], est[2] = n + 1, mean + inc, (1.0 - alpha) * (var + d * inc)
            else:
                window = self._windows.get(s)
                if window is None:
                    window = self._windows[s] = _Window(c.window)
                if len(window.samples) >= min_samples:
                    score = window.score(x)
                window.append(float(x))
            if score is None:
                continue
            name = names.get(s)
            if name is None:
                name = names[s] = s + "/score"
            out_ts.append(t)
            out_series.append(name)
            out_values.append(score)
            out_q.append(q)
            side = 1 if score > threshold else 0
            st = states.get(s)
            if st is None:
                if not side:
                    continue
                st = machine.state(s)
            elif not side and not st[ACTIVE] and st[PENDING_TS] == NONE:
                continue
            for transition in machine.step(s, st, t, x, side, not side, now_ns):
                state = transition[2]
                if state == "raise":
                    message = f"{s} is anomalous: {x} is {score:.2f} standard deviations from its recent mean"
                else:
                    message = f"{s} is back to normal: {x} is {score:.2f} standard deviations from its recent mean"
                events.append(make_event(transition, alarm=c.alarm, severity=c.severity, message=message))
        outputs: list[tuple[str, Data]] = []
        if out_ts:
            outputs.append(("out", Batch(out_ts, out_series, out_values, out_q)))
        if events:
            outputs.append(("events", EventBatch(events)))
        return outputs

    def snapshot(self) -> Any:
        return {
            "ewma": {s: list(est) for s, est in self._ewma.items()},
            "windows": {s: list(w.samples) for s, w in self._windows.items()},
            "alarms": self._machine.snapshot(),
        }

    def restore(self, state: Any) -> None:
        if not isinstance(state, dict):
            return
        self._ewma = {s: [int(e[0]), float(e[1]), float(e[2])] for s, e in state.get("ewma", {}).items()}
        size = self._config.window
        self._windows = {s: _Window(size, [float(x) for x in xs]) for s, xs in state.get("windows", {}).items()}
        self._machine.restore(state.get("alarms"))


EXAMPLE = AnomalyConfig(method="zscore", window=120, threshold=4.0, min_samples=30, alarm="vibration_anomaly")

SPEC = NodeSpec(
    type_id="analytics.anomaly",
    version=1,
    category=Category.ANALYTICS,
    title="Anomaly detection",
    description="Scores how unusual values are (EWMA or z-score) and alarms on outliers.",
    config=AnomalyConfig,
    example=EXAMPLE,
    inputs=(points_in(),),
    outputs=(points_out(description="The anomaly score of each series, as <series>/score"), events_out()),
    stateful=True,
    icon="radar",
    behaviour=Anomaly,
)
