"""``analytics.anomaly``: score how unusual each value is and alarm on outliers."""

import math
from collections import deque
from collections.abc import Iterator, Sequence
from typing import Annotated, Any, Literal

from msgspec import Meta

from nodes.analytics.alarm import ACTIVE, NONE, PENDING_TS, AlarmMachine, make_event, series_groups
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


_TINY = 1e-12  # the deviation of a flat series, so that a change scores huge instead of infinite


def _window_sums(samples: deque[float]) -> tuple[float, float, float]:
    """(shift, sum, sum of squares) of the samples, shifted by their mean (exact, no drift)."""
    n = len(samples)
    shift = sum(samples) / n if n else 0.0
    d = [x - shift for x in samples]
    return shift, sum(d), sum([x * x for x in d])


class Anomaly(Operator):
    """Runtime behaviour: a score per point, ``|x - mean| / deviation`` of the series' recent past.

    ewma: mean and variance follow exponentially weighted updates (``mean += alpha * d``,
    ``var = (1 - alpha) * (var + alpha * d * d)`` with ``d = x - mean``); zscore: the sample mean
    and deviation (n - 1) of the last ``window`` samples, kept as running sums shifted by the mean
    and recomputed exactly every ``window`` samples. A value is scored against the state *before*
    it is added, once the series has ``min_samples`` samples; scores go out as ``<series>/score``
    at the value's time and quality (grouped by series). A zero deviation counts as 1e-12. An
    alarm is raised while ``score > threshold`` (Event value: the value; message: the score) and
    cleared at the first scored value at or below it. Non-numeric values are ignored; BAD-quality
    values are ignored entirely (neither scored nor learned).
    """

    def __init__(self, config: AnomalyConfig, context: NodeContext) -> None:
        self._config = config
        self._ewma: dict[str, list[float]] = {}  # series -> [samples, mean, variance]
        # series -> [samples, shift, sum, sum of squares, appended since the last exact recompute]
        self._windows: dict[str, list[Any]] = {}
        self._names: dict[str, str] = {}
        self._machine = AlarmMachine()

    def process(self, port: str, data: Data, now_ns: int) -> Outputs:
        if not isinstance(data, Batch) or not data.ts:
            return NO_OUTPUT
        values: list[Any] = data.values  # numbers are told apart by class below
        quality = data.quality
        c = self._config
        threshold = c.threshold
        names = self._names
        machine = self._machine
        states = machine.states
        ts = data.ts
        score_series = self._ewma_scores if c.method == "ewma" else self._zscores
        scored: list[int] = []
        scores: list[float] = []
        out_series: list[str] = []
        events: list[Event] = []
        for s, indices in series_groups(data.series):
            begin = len(scored)
            score_series(s, indices, values, quality, scored, scores)
            count = len(scored) - begin
            if not count:
                continue
            name = names.get(s)
            if name is None:
                name = names[s] = s + "/score"
            out_series.extend([name] * count)
            st = states.get(s)
            k, end = begin, begin + count
            while k < end:
                if st is None or (not st[ACTIVE] and st[PENDING_TS] == NONE):
                    # Nothing raised or pending: skip to the next score above the threshold.
                    k = next((j for j in range(k, end) if scores[j] > threshold), end)
                    if k == end:
                        break
                    if st is None:
                        st = machine.state(s)
                score = scores[k]
                side = 1 if score > threshold else 0
                i = scored[k]
                x = values[i]
                for transition in machine.step(s, st, ts[i], x, side, not side, now_ns):
                    what = "is anomalous" if transition[2] == "raise" else "is back to normal"
                    message = f"{s} {what}: {x} is {score:.2f} standard deviations from its recent mean"
                    events.append(make_event(transition, alarm=c.alarm, severity=c.severity, message=message))
                k += 1
        if not scored:
            return NO_OUTPUT
        out_values: list[Value] = list(scores)
        outputs: list[tuple[str, Data]] = [
            ("out", Batch([ts[i] for i in scored], out_series, out_values, [quality[i] for i in scored]))
        ]
        if events:
            outputs.append(("events", EventBatch(events)))
        return outputs

    def _ewma_scores(
        self,
        s: str,
        indices: Sequence[int],
        values: list[Any],
        quality: list[int],
        scored: list[int],
        scores: list[float],
    ) -> None:
        alpha, min_samples = self._config.alpha, self._config.min_samples
        keep = 1.0 - alpha
        sqrt = math.sqrt
        est = self._ewma.get(s)
        n, mean, var = (0, 0.0, 0.0) if est is None else est
        for i in indices:
            x = values[i]
            if quality[i] == 2 or ((cls := x.__class__) is not float and cls is not int):
                continue
            if n >= min_samples:
                dev = x - mean if x >= mean else mean - x
                scored.append(i)
                scores.append(dev / (sqrt(var) if var > 0.0 else _TINY))
            if n:
                d = x - mean
                inc = alpha * d
                mean += inc
                var = keep * (var + d * inc)
            else:
                mean, var = float(x), 0.0
            n += 1
        if n:
            self._ewma[s] = [n, mean, var]

    def _zscores(
        self,
        s: str,
        indices: Sequence[int],
        values: list[Any],
        quality: list[int],
        scored: list[int],
        scores: list[float],
    ) -> None:
        size, min_samples = self._config.window, self._config.min_samples
        sqrt = math.sqrt
        state = self._windows.get(s)
        if state is None:
            state = self._windows[s] = [deque(maxlen=size), 0.0, 0.0, 0.0, 0]
        samples: deque[float] = state[0]
        shift, total, sumsq, appended = state[1], state[2], state[3], state[4]
        n = len(samples)
        for i in indices:
            x = values[i]
            if quality[i] == 2 or ((cls := x.__class__) is not float and cls is not int):
                continue
            if n >= min_samples:
                mean_d = total / n
                var = (sumsq - total * mean_d) / (n - 1) if n > 1 else 0.0
                dev = x - shift - mean_d
                scored.append(i)
                scores.append((dev if dev >= 0 else -dev) / (sqrt(var) if var > 0.0 else _TINY))
            if n == size:
                d = samples[0] - shift
                total -= d
                sumsq -= d * d
            else:
                n += 1
            samples.append(x)
            d = x - shift
            total += d
            sumsq += d * d
            appended += 1
            if appended >= size:
                shift, total, sumsq = _window_sums(samples)
                appended = 0
        state[1], state[2], state[3], state[4] = shift, total, sumsq, appended

    def snapshot(self) -> Any:
        return {
            "ewma": {s: list(est) for s, est in self._ewma.items()},
            "windows": {s: list(w[0]) for s, w in self._windows.items()},
            "alarms": self._machine.snapshot(),
        }

    def restore(self, state: Any) -> None:
        if not isinstance(state, dict):
            return
        self._ewma = {s: [int(e[0]), float(e[1]), float(e[2])] for s, e in state.get("ewma", {}).items()}
        size = self._config.window
        self._windows = {}
        for s, xs in state.get("windows", {}).items():
            samples: deque[float] = deque((float(x) for x in xs), maxlen=size)
            self._windows[s] = [samples, *_window_sums(samples), 0]
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
