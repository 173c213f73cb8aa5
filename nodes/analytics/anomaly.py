"""``analytics.anomaly``: score how unusual each value is and alarm on outliers."""

from collections.abc import Iterator
from typing import Annotated, Literal

from msgspec import Meta

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
)
