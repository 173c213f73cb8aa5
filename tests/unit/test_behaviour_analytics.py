"""Runtime behaviours of the analytics nodes, run with a real StepContext on real batches."""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from nodes.analytics import anomaly, rate_of_change, threshold
from nodes.analytics.anomaly import Anomaly, AnomalyConfig
from nodes.analytics.rate_of_change import RateOfChange, RateOfChangeConfig
from nodes.analytics.threshold import Threshold, ThresholdConfig
from nodes.host import Operator, Outputs
from nodes.points import Batch, Event, EventBatch
from runtime.context import StepContext

S = 1_000_000_000
T0 = 1_700_000_000 * S


@pytest.fixture
def ctx(tmp_path: Path) -> StepContext:
    return StepContext(node_id="alarm", data_dir=tmp_path, clock=lambda: T0)


def batch(*points: tuple[Any, ...]) -> Batch:
    """A batch from (series, seconds after T0, value[, quality]) tuples."""
    b = Batch.empty()
    for p in points:
        b.series.append(p[0])
        b.ts.append(T0 + round(p[1] * S))
        b.values.append(p[2])
        b.quality.append(p[3] if len(p) > 3 else 0)
    return b


def split(outputs: Outputs) -> tuple[Batch, list[Event]]:
    points, events = Batch.empty(), []
    for port, data in outputs:
        if port == "out":
            assert isinstance(data, Batch)
            points.extend(data)
        else:
            assert port == "events" and isinstance(data, EventBatch)
            events.extend(data.events)
    return points, events


def transitions(events: list[Event]) -> list[tuple[float, str, str, Any]]:
    return [((e.ts - T0) / S, e.series, e.state, e.value) for e in events]


def series_of(op: Operator, series: str, values: Sequence[tuple[float, Any]], now_ns: int = T0) -> Outputs:
    return op.process("in", batch(*[(series, t, v) for t, v in values]), now_ns)


def test_specs_name_their_behaviours() -> None:
    assert threshold.SPEC.behaviour is Threshold
    assert rate_of_change.SPEC.behaviour is RateOfChange
    assert anomaly.SPEC.behaviour is Anomaly


# --- threshold ------------------------------------------------------------------------------------


def test_threshold_high_with_hysteresis(ctx: StepContext) -> None:
    op = Threshold(ThresholdConfig(high=80.0, hysteresis=2.0, alarm="hot", severity="critical"), ctx)
    assert op.timer_interval_s is None
    values = [(0, 79.0), (1, 81.0), (2, 85.0), (3, 79.0), (4, 77.9), (5, 80.0), (6, 80.5)]
    _, events = split(series_of(op, "d/t", values))
    assert transitions(events) == [
        (1.0, "d/t", "raise", 81.0),
        (4.0, "d/t", "clear", 77.9),
        (6.0, "d/t", "raise", 80.5),
    ]
    assert {(e.alarm, e.severity) for e in events} == {("hot", "critical")}
    assert events[0].message == "d/t raise: 81.0 (limit 80.0)"


def test_threshold_low_and_a_jump_from_high_to_low(ctx: StepContext) -> None:
    op = Threshold(ThresholdConfig(high=80.0, low=5.0, hysteresis=1.0, message="{alarm}/{state}/{limit}"), ctx)
    values = [(0, 6.0), (1, 4.9), (2, 5.5), (3, 6.1), (4, 90.0), (5, 1.0)]
    _, events = split(series_of(op, "d/t", values))
    assert transitions(events) == [
        (1.0, "d/t", "raise", 4.9),
        (3.0, "d/t", "clear", 6.1),
        (4.0, "d/t", "raise", 90.0),
        (5.0, "d/t", "clear", 1.0),
        (5.0, "d/t", "raise", 1.0),
    ]
    assert [e.message for e in events] == [
        "threshold/raise/5.0",
        "threshold/clear/5.0",
        "threshold/raise/80.0",
        "threshold/clear/80.0",
        "threshold/raise/5.0",
    ]


def test_threshold_on_delay_in_event_time(ctx: StepContext) -> None:
    op = Threshold(ThresholdConfig(high=10.0, on_delay_s=10.0), ctx)
    # Interrupted at 5 s: the wait restarts at 6 s and ends at 16 s.
    values = [(0, 11.0), (5, 9.0), (6, 12.0), (9, 13.0), (15, 14.0), (16, 15.0), (17, 16.0)]
    _, events = split(series_of(op, "d/t", values))
    assert transitions(events) == [(16.0, "d/t", "raise", 15.0)]


def test_threshold_off_delay(ctx: StepContext) -> None:
    op = Threshold(ThresholdConfig(high=10.0, hysteresis=1.0, off_delay_s=5.0), ctx)
    values = [(0, 11.0), (10, 8.0), (12, 9.5), (13, 8.5), (17, 8.0), (18, 7.0)]
    _, events = split(series_of(op, "d/t", values))
    # 9.5 is inside the hysteresis band: the clear wait restarts at 13 s and ends at 18 s.
    assert transitions(events) == [(0.0, "d/t", "raise", 11.0), (18.0, "d/t", "clear", 7.0)]


def test_threshold_delays_expire_on_the_timer_without_new_points(ctx: StepContext) -> None:
    op = Threshold(ThresholdConfig(high=10.0, on_delay_s=10.0, off_delay_s=4.0), ctx)
    assert op.timer_interval_s is not None and op.timer_interval_s <= 1.0
    wall = T0 + 100 * S  # the wall clock when the point arrives (the device's clock differs)
    assert split(series_of(op, "d/t", [(0, 12.0)], now_ns=wall)) == (Batch.empty(), [])
    assert op.on_timer(wall + 9 * S) == ()
    _, events = split(op.on_timer(wall + 10 * S))
    assert transitions(events) == [(10.0, "d/t", "raise", 12.0)]  # stamped start + delay, event time
    series_of(op, "d/t", [(30, 5.0)], now_ns=wall + 30 * S)
    _, events = split(op.on_timer(wall + 34 * S))
    assert transitions(events) == [(34.0, "d/t", "clear", 5.0)]
    assert op.on_timer(wall + 60 * S) == ()


def test_threshold_timer_does_not_fire_a_contradicted_wait(ctx: StepContext) -> None:
    op = Threshold(ThresholdConfig(high=10.0, on_delay_s=10.0), ctx)
    series_of(op, "d/t", [(0, 12.0)], now_ns=T0)
    series_of(op, "d/t", [(1, 8.0)], now_ns=T0 + S)
    assert op.on_timer(T0 + 20 * S) == ()


def test_threshold_ignores_bad_quality_and_text(ctx: StepContext) -> None:
    op = Threshold(ThresholdConfig(high=10.0), ctx)
    _, events = split(op.process("in", batch(("d/t", 0, 99.0, 2), ("d/t", 1, "high"), ("d/t", 2, 11, 1)), T0))
    assert transitions(events) == [(2.0, "d/t", "raise", 11)]


def test_threshold_series_are_independent(ctx: StepContext) -> None:
    op = Threshold(ThresholdConfig(high=10.0), ctx)
    _, events = split(op.process("in", batch(("a/t", 0, 11.0), ("b/t", 0, 9.0), ("b/t", 1, 12.0), ("a/t", 1, 1)), T0))
    assert transitions(events) == [(0.0, "a/t", "raise", 11.0), (1.0, "b/t", "raise", 12.0), (1.0, "a/t", "clear", 1)]


def test_threshold_bad_template_falls_back(ctx: StepContext) -> None:
    op = Threshold(ThresholdConfig(high=10.0, message="{value:d}"), ctx)
    _, events = split(series_of(op, "d/t", [(0, 11.5)]))
    assert events[0].message == "d/t threshold raise: 11.5 (limit 10.0)"


def test_threshold_snapshot_restore(ctx: StepContext) -> None:
    config = ThresholdConfig(high=10.0, hysteresis=1.0, on_delay_s=5.0)
    first = Threshold(config, ctx)
    series_of(first, "d/t", [(0, 11.0), (5, 12.0), (20, 13.0), (21, 8.0), (22, 11.0)])  # raised, cleared, pending
    second = Threshold(config, ctx)
    second.restore(first.snapshot())
    follow = [(26, 12.0), (27, 12.5), (28, 5.0)]  # the raise pending since 22 s fires at 27 s
    a = transitions(split(series_of(first, "d/t", follow))[1])
    assert (
        a
        == transitions(split(series_of(second, "d/t", follow))[1])
        == [
            (27.0, "d/t", "raise", 12.5),
            (28.0, "d/t", "clear", 5.0),
        ]
    )


# --- rate of change -------------------------------------------------------------------------------


def test_rate_of_change_values(ctx: StepContext) -> None:
    op = RateOfChange(RateOfChangeConfig(rate_unit="per_second"), ctx)
    points, events = split(
        op.process("in", batch(("d/x", 0, 0.0), ("d/x", 2, 10.0, 1), ("d/x", 3, 10), ("d/x", 6, 4)), T0)
    )
    assert list(zip(points.ts, points.series, points.values, points.quality, strict=True)) == [
        (T0 + 2 * S, "d/x/rate", 5.0, 1),
        (T0 + 3 * S, "d/x/rate", 0.0, 1),
        (T0 + 6 * S, "d/x/rate", -2.0, 0),
    ]
    assert events == []
    # Across batches, and per minute / per hour.
    op = RateOfChange(RateOfChangeConfig(rate_unit="per_minute"), ctx)
    op.process("in", batch(("d/x", 0, 1.0)), T0)
    assert split(op.process("in", batch(("d/x", 0.5, 2.0)), T0))[0].values == [pytest.approx(120.0)]
    op = RateOfChange(RateOfChangeConfig(rate_unit="per_hour"), ctx)
    points, _ = split(op.process("in", batch(("d/x", 0, 1.0), ("d/x", 36, 2.0)), T0))
    assert points.values == [pytest.approx(100.0)]


def test_rate_of_change_skips_repeated_times_and_text(ctx: StepContext) -> None:
    op = RateOfChange(RateOfChangeConfig(), ctx)
    points, _ = split(
        op.process("in", batch(("d/x", 1, 1.0), ("d/x", 1, 5.0), ("d/x", 0, 7.0), ("d/x", 2, "x"), ("d/x", 3, 3.0)), T0)
    )
    assert points.values == [1.0]  # (3 - 1) / 2 s


def test_rate_of_change_alarm_with_hysteresis(ctx: StepContext) -> None:
    op = RateOfChange(RateOfChangeConfig(limit=4.0, hysteresis=1.0, alarm="fast"), ctx)
    values = [0.0, 5.0, 8.5, 10.5, 6.0, 3.0]  # rates 5, 3.5, 2, -4.5, -3
    _, events = split(series_of(op, "d/x", list(enumerate(values))))
    assert transitions(events) == [(1.0, "d/x", "raise", 5.0), (3.0, "d/x", "clear", 2.0), (4.0, "d/x", "raise", -4.5)]
    assert events[0].alarm == "fast"
    assert "faster than ±4/s" in events[0].message


def test_rate_of_change_snapshot_restore(ctx: StepContext) -> None:
    config = RateOfChangeConfig(limit=1.0)
    first = RateOfChange(config, ctx)
    series_of(first, "d/x", [(0, 0.0), (1, 2.0)])
    second = RateOfChange(config, ctx)
    second.restore(first.snapshot())
    a = split(series_of(first, "d/x", [(2, 2.5)]))
    b = split(series_of(second, "d/x", [(2, 2.5)]))
    assert a[0].values == b[0].values == [0.5]
    assert transitions(a[1]) == transitions(b[1]) == [(2.0, "d/x", "clear", 0.5)]


# --- anomaly --------------------------------------------------------------------------------------


def test_anomaly_ewma_scores(ctx: StepContext) -> None:
    op = Anomaly(AnomalyConfig(method="ewma", alpha=0.5, min_samples=2, threshold=3.0), ctx)
    points, events = split(series_of(op, "d/x", [(0, 1.0), (1, 3.0), (2, 2.0), (3, 5.0)]))
    # after 1: mean 1, var 0; after 3: mean 2, var 1; 2 scores 0 -> mean 2, var 0.5; 5 scores 3 / sqrt(0.5)
    assert points.series == ["d/x/score", "d/x/score"]
    assert points.ts == [T0 + 2 * S, T0 + 3 * S]
    assert points.values == [0.0, pytest.approx(3 / math.sqrt(0.5))]
    assert transitions(events) == [(3.0, "d/x", "raise", 5.0)]
    assert "4.24 standard deviations" in events[0].message


def test_anomaly_zscore_scores(ctx: StepContext) -> None:
    op = Anomaly(AnomalyConfig(method="zscore", window=3, min_samples=3, threshold=5.0), ctx)
    points, events = split(series_of(op, "d/x", [(0, 1), (1, 2), (2, 3), (3, 4), (4, 10), (5, 6)]))
    # 4 against [1, 2, 3]: mean 2, sample std 1 -> 2; 10 against [2, 3, 4] -> 7;
    # 6 against [3, 4, 10]: mean 17/3, sample variance 43/3 -> 0.088
    assert points.values[:2] == [pytest.approx(2.0), pytest.approx(7.0)]
    assert points.values[2] == pytest.approx(abs(6 - 17 / 3) / math.sqrt(43 / 3), rel=1e-9)
    assert transitions(events) == [(4.0, "d/x", "raise", 10), (5.0, "d/x", "clear", 6)]


@pytest.mark.parametrize("method", ["ewma", "zscore"])
def test_anomaly_flags_a_spike_in_noise(ctx: StepContext, method: Any) -> None:
    op = Anomaly(AnomalyConfig(method=method, alpha=0.05, window=50, min_samples=20, threshold=4.0), ctx)
    noise = [(i, 20.0 + 0.5 * math.sin(i * 1.7) + 0.3 * math.cos(i * 0.9)) for i in range(100)]
    points, events = split(series_of(op, "d/x", [*noise, (100, 35.0), (101, 20.1)]))
    assert len(points) == 102 - 20
    scores = [float(v) for v in points.values]
    assert max(scores[:-2]) < 4.0 < scores[-2]
    assert transitions(events) == [(100.0, "d/x", "raise", 35.0), (101.0, "d/x", "clear", 20.1)]


def test_anomaly_ignores_bad_quality_and_text(ctx: StepContext) -> None:
    op = Anomaly(AnomalyConfig(method="zscore", window=3, min_samples=2), ctx)
    points, _ = split(
        op.process("in", batch(("d/x", 0, 1.0), ("d/x", 1, 999.0, 2), ("d/x", 2, "x"), ("d/x", 3, 3.0)), T0)
    )
    assert points.values == []
    points, _ = split(op.process("in", batch(("d/x", 4, 2.0, 1)), T0))
    assert points.values == [0.0]  # against [1, 3]
    assert points.quality == [1]


@pytest.mark.parametrize("method", ["ewma", "zscore"])
def test_anomaly_snapshot_restore(ctx: StepContext, method: Any) -> None:
    config = AnomalyConfig(method=method, alpha=0.2, window=5, min_samples=3, threshold=2.0)
    first = Anomaly(config, ctx)
    series_of(first, "d/x", [(i, float(i % 3)) for i in range(12)])
    series_of(first, "d/y", [(0, 1.0)])
    second = Anomaly(config, ctx)
    second.restore(first.snapshot())
    follow = [(12, 1.0), (13, 9.0), (14, 1.5), (15, 1.0)]
    a = split(series_of(first, "d/x", follow))
    b = split(series_of(second, "d/x", follow))
    assert a[0].values == pytest.approx(b[0].values, rel=1e-12)
    assert transitions(a[1]) == transitions(b[1])
    assert any(e.state == "raise" for e in a[1])
