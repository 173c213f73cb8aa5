"""Runtime behaviours of the window nodes, run with a real StepContext on real batches."""

from __future__ import annotations

import math
import random
import statistics
from pathlib import Path
from typing import Any

import pytest

from nodes.host import Operator
from nodes.points import Batch, Value
from nodes.window import sliding, tumbling
from nodes.window.sliding import SlidingWindow, SlidingWindowConfig
from nodes.window.tumbling import Aggregate, TumblingWindow, TumblingWindowConfig
from runtime.context import StepContext

S = 1_000_000_000
T0 = 1_700_000_000 * S  # a multiple of every window length used here
ALL: list[Aggregate] = ["avg", "min", "max", "sum", "count", "first", "last", "stddev"]


@pytest.fixture
def ctx(tmp_path: Path) -> StepContext:
    return StepContext(node_id="window", data_dir=tmp_path, clock=lambda: T0)


def batch(*points: tuple[Any, ...]) -> Batch:
    """A batch from (series, seconds after T0, value[, quality]) tuples."""
    b = Batch.empty()
    for p in points:
        b.series.append(p[0])
        b.ts.append(T0 + round(p[1] * S))
        b.values.append(p[2])
        b.quality.append(p[3] if len(p) > 3 else 0)
    return b


def emitted(outputs: Any) -> list[tuple[float, str, Value, int]]:
    """(seconds after T0, series, value, quality) of every point emitted on "out"."""
    found: list[tuple[float, str, Value, int]] = []
    for port, data in outputs:
        assert port == "out"
        assert isinstance(data, Batch)
        found.extend(zip([(t - T0) / S for t in data.ts], data.series, data.values, data.quality, strict=True))
    return found


def feed(op: Operator, *points: tuple[Any, ...]) -> list[tuple[float, str, Value, int]]:
    return emitted(op.process("in", batch(*points), T0))


def by_series(found: list[tuple[float, str, Value, int]]) -> dict[str, list[tuple[float, Value, int]]]:
    result: dict[str, list[tuple[float, Value, int]]] = {}
    for t, s, v, q in found:
        result.setdefault(s, []).append((t, v, q))
    return result


def test_specs_name_their_behaviours() -> None:
    assert tumbling.SPEC.behaviour is TumblingWindow
    assert sliding.SPEC.behaviour is SlidingWindow


# --- tumbling -------------------------------------------------------------------------------------


def test_tumbling_all_aggregates_exact(ctx: StepContext) -> None:
    op = TumblingWindow(TumblingWindowConfig(window_s=10.0, aggregates=ALL), ctx)
    # Out of time order inside the batch: first/last follow event time, not arrival.
    assert feed(op, ("d/x", 3, 3.0), ("d/x", 1, 1.0, 1), ("d/x", 2, 2.0), ("d/x", 4, 4)) == []
    out = feed(op, ("d/x", 10, 100.0))  # watermark reaches T0 + 10 s: the window [T0, T0 + 10 s) closes
    values = {s: v for _, s, v, _ in out}
    assert {t for t, *_ in out} == {10.0}  # stamped with the window end
    assert {q for *_, q in out} == {1}  # the worst quality of the window
    assert values["d/x/avg"] == 2.5
    assert values["d/x/min"] == 1.0
    assert values["d/x/max"] == 4
    assert values["d/x/sum"] == 10.0
    assert values["d/x/count"] == 4
    assert values["d/x/first"] == 1.0
    assert values["d/x/last"] == 4
    assert values["d/x/stddev"] == pytest.approx(statistics.stdev([1, 2, 3, 4]), rel=1e-12)  # sample
    assert [s for _, s, _, _ in out] == [f"d/x/{a}" for a in ALL]


def test_tumbling_single_aggregate_keeps_the_series_key(ctx: StepContext) -> None:
    op = TumblingWindow(TumblingWindowConfig(window_s=1.0, aggregates=["avg"]), ctx)
    out = feed(op, ("d/x", 0.1, 1.0), ("d/x", 0.6, 2.0), ("d/y", 0.5, 7), ("d/x", 1.0, 5.0), ("d/y", 1.2, 1))
    assert out == [(1.0, "d/x", 1.5, 0), (1.0, "d/y", 7.0, 0)]


def test_tumbling_window_boundaries(ctx: StepContext) -> None:
    op = TumblingWindow(TumblingWindowConfig(window_s=5.0, aggregates=["count", "first"]), ctx)
    out = feed(op, ("d/x", 0, 1), ("d/x", 4.999999999, 2), ("d/x", 5, 3), ("d/x", 9.9, 4), ("d/x", 10, 5))
    assert out == [
        (5.0, "d/x/count", 2, 0),
        (5.0, "d/x/first", 1, 0),
        (10.0, "d/x/count", 2, 0),
        (10.0, "d/x/first", 3, 0),
    ]


def test_tumbling_accumulates_across_batches(ctx: StepContext) -> None:
    op = TumblingWindow(TumblingWindowConfig(window_s=60.0, aggregates=ALL), ctx)
    values = [3.5, -1.25, 8.0, 2.0, 2.0, 10.5, 7.25]
    for i, v in enumerate(values):
        assert feed(op, ("d/x", 5 * i + 1, v)) == []
    out = {s: v for _, s, v, _ in feed(op, ("d/x", 61, 0.0))}
    assert out["d/x/avg"] == pytest.approx(statistics.mean(values), rel=1e-12)
    assert out["d/x/stddev"] == pytest.approx(statistics.stdev(values), rel=1e-12)
    assert (out["d/x/min"], out["d/x/max"], out["d/x/count"]) == (-1.25, 10.5, 7)
    assert (out["d/x/first"], out["d/x/last"], out["d/x/sum"]) == (3.5, 7.25, sum(values))


def test_tumbling_stddev_is_stable_with_a_large_offset(ctx: StepContext) -> None:
    op = TumblingWindow(TumblingWindowConfig(window_s=10.0, aggregates=["stddev"]), ctx)
    values = [1e9 + x for x in (0.1, 0.2, 0.3, 0.4)]
    feed(op, *[("d/x", i, v) for i, v in enumerate(values[:2])])
    feed(op, *[("d/x", i + 2, v) for i, v in enumerate(values[2:])])
    ((_, _, std, _),) = feed(op, ("d/x", 10, 0.0))
    assert std == pytest.approx(statistics.stdev([0.1, 0.2, 0.3, 0.4]), rel=1e-6)


def test_tumbling_single_value_stddev_is_bad(ctx: StepContext) -> None:
    op = TumblingWindow(TumblingWindowConfig(window_s=10.0, aggregates=["stddev", "count"]), ctx)
    feed(op, ("d/x", 1, 5.0))
    assert feed(op, ("d/x", 10, 1.0)) == [(10.0, "d/x/stddev", 0.0, 2), (10.0, "d/x/count", 1, 0)]


def test_tumbling_ignores_and_counts_non_numeric_values(ctx: StepContext) -> None:
    op = TumblingWindow(TumblingWindowConfig(window_s=10.0, aggregates=["avg", "count"]), ctx)
    feed(op, ("d/x", 1, 2.0), ("d/x", 2, "text"), ("d/x", 3, True), ("d/x", 4, 4), ("d/s", 5, "only text"))
    out = feed(op, ("d/x", 11, 0.0), ("d/s", 12, "more"))
    assert out == [(10.0, "d/x/avg", 3.0, 0), (10.0, "d/x/count", 2, 0)]
    assert ctx.metrics.counters["non_numeric"] == 4


def test_watermarks_are_per_series(ctx: StepContext) -> None:
    op = TumblingWindow(TumblingWindowConfig(window_s=10.0), ctx)
    feed(op, ("a/x", 1, 1.0), ("b/x", 2, 2.0))
    # a's clock runs far ahead: only a's window closes, b's stays open for b's own points.
    assert feed(op, ("a/x", 500, 1.0)) == [(10.0, "a/x", 1.0, 0)]
    assert feed(op, ("b/x", 3, 4.0)) == []
    assert feed(op, ("b/x", 10, 0.0)) == [(10.0, "b/x", 3.0, 0)]


def test_allowed_lateness(ctx: StepContext) -> None:
    op = TumblingWindow(TumblingWindowConfig(window_s=10.0, allowed_lateness_s=2.0), ctx)
    assert feed(op, ("d/x", 5, 1.0), ("d/x", 11, 2.0)) == []  # watermark T0 + 9 s: still open
    assert feed(op, ("d/x", 8, 3.0)) == []  # late, but within the lateness: included
    assert feed(op, ("d/x", 12.5, 5.0)) == [(10.0, "d/x", 2.0, 0)]  # watermark T0 + 10.5 s
    assert feed(op, ("d/x", 9, 100.0), ("d/x", 9.5, 100.0)) == []  # beyond: dropped
    assert ctx.metrics.counters["late_points"] == 2
    assert feed(op, ("d/x", 22, 0.0)) == [(20.0, "d/x", 3.5, 0)]


def test_a_batch_is_never_late_to_itself(ctx: StepContext) -> None:
    op = TumblingWindow(TumblingWindowConfig(window_s=10.0), ctx)
    out = feed(op, ("d/x", 25, 1.0), ("d/x", 3, 2.0), ("d/x", 14, 4.0), ("d/x", 7, 6.0))
    assert out == [(10.0, "d/x", 4.0, 0), (20.0, "d/x", 4.0, 0)]
    assert "late_points" not in ctx.metrics.counters


def test_timer_flushes_quiet_series_by_wall_clock(ctx: StepContext) -> None:
    op = TumblingWindow(TumblingWindowConfig(window_s=10.0, allowed_lateness_s=1.0), ctx)
    assert op.timer_interval_s is not None and 0 < op.timer_interval_s <= 1.0
    feed(op, ("d/x", 1, 1.0), ("d/x", 2, 3.0), ("d/y", 4, 8.0))
    assert op.on_timer(T0 + 10 * S) == ()  # end + lateness not reached
    assert emitted(op.on_timer(T0 + 11 * S)) == [(10.0, "d/x", 2.0, 0), (10.0, "d/y", 8.0, 0)]
    assert op.on_timer(T0 + 12 * S) == ()
    # The window is closed now: a point for it is late, for any series (even a new one).
    assert feed(op, ("d/x", 9, 1.0), ("d/z", 9.5, 1.0)) == []
    assert ctx.metrics.counters["late_points"] == 2
    assert feed(op, ("d/x", 15, 1.0)) == []
    assert emitted(op.on_timer(T0 + 21 * S)) == [(20.0, "d/x", 1.0, 0)]


def test_polls_of_many_tags_close_windows_as_time_passes(ctx: StepContext) -> None:
    """One point per series per batch (point-by-point ingestion): each window is emitted by the
    first batch past its end, and equals the reference."""
    op = TumblingWindow(TumblingWindowConfig(window_s=1.0, aggregates=["avg", "count", "last"]), ctx)
    tags = [f"line/t{i:02d}" for i in range(20)]
    emitted_at: dict[float, list[tuple[float, str, Value, int]]] = {}
    for k in range(35):  # 10 Hz for 3.5 s
        t = k / 10
        out = feed(op, *[(s, t, float(i * 100 + k)) for i, s in enumerate(tags)])
        if out:
            emitted_at[t] = out
    assert sorted(emitted_at) == [1.0, 2.0, 3.0]
    for t, out in emitted_at.items():
        assert len(out) == 3 * len(tags)
        assert {e for e, *_ in out} == {t}
        got = by_series(out)
        for i, s in enumerate(tags):
            ks = range(round(t * 10) - 10, round(t * 10))
            ((end, avg, quality),) = got[s + "/avg"]
            assert (end, quality) == (t, 0)
            assert avg == pytest.approx(i * 100 + statistics.mean(ks))
            assert got[s + "/count"] == [(t, 10, 0)]
            assert got[s + "/last"] == [(t, float(i * 100 + ks[-1]), 0)]
    assert len(emitted(op.on_timer(T0 + 4 * S))) == 3 * len(tags)
    assert op._closed_counts == {T0 + 4 * S: len(tags)}
    assert "late_points" not in ctx.metrics.counters


def test_emit_empty_fills_gaps_of_known_series(ctx: StepContext) -> None:
    op = TumblingWindow(TumblingWindowConfig(window_s=10.0, aggregates=["avg", "count"], emit_empty=True), ctx)
    feed(op, ("d/x", 1, 1.0))
    out = feed(op, ("d/x", 31, 3.0))
    assert out == [
        (10.0, "d/x/avg", 1.0, 0),
        (10.0, "d/x/count", 1, 0),
        (20.0, "d/x/avg", 0.0, 2),
        (20.0, "d/x/count", 0, 0),
        (30.0, "d/x/avg", 0.0, 2),
        (30.0, "d/x/count", 0, 0),
    ]
    # A quiet series keeps reporting empty windows on the timer.
    assert emitted(op.on_timer(T0 + 40 * S)) == [(40.0, "d/x/avg", 3.0, 0), (40.0, "d/x/count", 1, 0)]
    assert emitted(op.on_timer(T0 + 50 * S)) == [(50.0, "d/x/avg", 0.0, 2), (50.0, "d/x/count", 0, 0)]


def test_tumbling_snapshot_restore_continues_identically(ctx: StepContext) -> None:
    config = TumblingWindowConfig(window_s=10.0, aggregates=ALL, allowed_lateness_s=3.0)
    first = TumblingWindow(config, ctx)
    feed(first, ("d/x", 1, 1.0), ("d/x", 5, 4.0, 1), ("d/y", 2, 7), ("d/x", 12, 2.0))
    first.on_timer(T0 + 5 * S)
    second = TumblingWindow(config, ctx)
    second.restore(first.snapshot())
    follow = [("d/x", 9, 10.0), ("d/y", 14, 1.0), ("d/x", 25, 0.0)]
    assert feed(second, *follow) == feed(first, *follow)
    assert emitted(second.on_timer(T0 + 40 * S)) == emitted(first.on_timer(T0 + 40 * S))
    assert second.snapshot() == first.snapshot()


# --- sliding --------------------------------------------------------------------------------------


def test_sliding_windows_overlap(ctx: StepContext) -> None:
    op = SlidingWindow(SlidingWindowConfig(window_s=10.0, slide_s=5.0, aggregates=["avg"]), ctx)
    out = feed(op, ("d/x", 1, 1.0), ("d/x", 6, 2.0), ("d/x", 11, 3.0), ("d/x", 16, 4.0), ("d/x", 30, 9.0))
    # Windows [end - 10 s, end) every 5 s, stamped with their end.
    assert out == [
        (5.0, "d/x", 1.0, 0),
        (10.0, "d/x", 1.5, 0),
        (15.0, "d/x", 2.5, 0),
        (20.0, "d/x", 3.5, 0),
        (25.0, "d/x", 4.0, 0),
    ]
    assert emitted(op.on_timer(T0 + 40 * S)) == [(35.0, "d/x", 9.0, 0), (40.0, "d/x", 9.0, 0)]


def test_sliding_all_aggregates_merge_panes(ctx: StepContext) -> None:
    op = SlidingWindow(SlidingWindowConfig(window_s=6.0, slide_s=2.0, aggregates=ALL), ctx)
    points = [(0.5, 4.0, 0), (1.5, 1.0, 0), (2.5, 9.0, 1), (3.0, 2.0, 0), (4.5, 5.0, 0), (5.9, 3.0, 0)]
    found = []
    for t, v, q in points:  # one point per batch: accumulators merge across batches and panes
        found.extend(feed(op, ("d/x", t, v, q)))
    out = by_series(found + feed(op, ("d/x", 6.0, 100.0)))
    got = {s.rsplit("/", 1)[1]: [(t, v, q) for t, v, q in rows if t == 6.0] for s, rows in out.items()}
    numbers = [v for _, v, _ in points]
    expected = {
        "avg": statistics.mean(numbers),
        "min": 1.0,
        "max": 9.0,
        "sum": sum(numbers),
        "count": 6,
        "first": 4.0,
        "last": 3.0,
        "stddev": statistics.stdev(numbers),
    }
    for agg, value in expected.items():
        ((_, result, quality),) = got[agg]
        assert result == pytest.approx(value, rel=1e-12), agg
        assert quality == 1
    # The window ending at 4 s holds the first four points only.
    early = {s.rsplit("/", 1)[1]: [v for t, v, _ in rows if t == 4.0] for s, rows in out.items()}
    assert early["count"] == [4]
    assert early["avg"] == [pytest.approx(4.0)]


def test_sliding_lateness_drops_only_points_of_fully_closed_windows(ctx: StepContext) -> None:
    op = SlidingWindow(SlidingWindowConfig(window_s=10.0, slide_s=5.0, aggregates=["count"]), ctx)
    feed(op, ("d/x", 7, 1.0), ("d/x", 11, 1.0))  # closes the windows ending at 5 s and 10 s
    # 8 s belongs to the windows ending at 10 s (closed) and 15 s (open): kept for the open one.
    assert feed(op, ("d/x", 8, 1.0), ("d/x", 3, 1.0)) == []  # 3 s: windows ending 5 and 10, both closed
    assert ctx.metrics.counters["late_points"] == 1
    assert feed(op, ("d/x", 15, 1.0)) == [(15.0, "d/x", 3, 0)]  # 7, 8 and 11 s


def test_sliding_snapshot_restore(ctx: StepContext) -> None:
    config = SlidingWindowConfig(window_s=30.0, slide_s=10.0, aggregates=["avg", "stddev"])
    first = SlidingWindow(config, ctx)
    feed(first, ("d/x", 1, 1.0), ("d/x", 12, 2.0), ("d/x", 25, 6.0), ("d/y", 3, 5.0))
    second = SlidingWindow(config, ctx)
    second.restore(first.snapshot())
    follow = [("d/x", 31, 3.0), ("d/x", 55, 4.0), ("d/y", 44, 1.0)]
    a, b = feed(first, *follow), feed(second, *follow)
    assert a == b and len(a) > 0
    assert emitted(first.on_timer(T0 + 100 * S)) == emitted(second.on_timer(T0 + 100 * S))


# --- against a brute-force reference ----------------------------------------------------------------


def reference(
    points: list[tuple[str, int, float, int]], window: int, slide: int
) -> dict[tuple[str, int], dict[str, Any]]:
    """Aggregates of every window [end - window, end) with data, ends at multiples of slide."""
    found: dict[tuple[str, int], list[tuple[int, float, int]]] = {}
    for s, t, v, q in points:
        end = t - t % slide + slide
        while end - window <= t:
            found.setdefault((s, end), []).append((t, v, q))
            end += slide
    result = {}
    for key, rows in found.items():
        values = [v for _, v, _ in rows]
        ordered = sorted(rows, key=lambda r: r[0])  # stable: arrival order on equal times
        result[key] = {
            "avg": statistics.fmean(values),
            "min": min(values),
            "max": max(values),
            "sum": math.fsum(values),
            "count": len(values),
            "first": ordered[0][1],
            "last": [v for t, v, _ in rows if t == ordered[-1][0]][-1],
            "stddev": statistics.stdev(values) if len(values) > 1 else 0.0,
            "quality": max(q for *_, q in rows),
        }
    return result


@pytest.mark.parametrize("chunk", [None, 100, 7], ids=["one-batch", "batches-of-100", "batches-of-7"])
@pytest.mark.parametrize("layout", ["runs", "interleaved", "polls", "shuffled"])
@pytest.mark.parametrize(("window_s", "slide_s"), [(5.0, 5.0), (6.0, 2.0)])
def test_windows_match_a_brute_force_reference(
    ctx: StepContext, layout: str, window_s: float, slide_s: float, chunk: int | None
) -> None:
    """Both ingestion paths (groups of one series, point by point for few points per series) and
    every batch layout give the aggregates a brute-force computation gives."""
    rng = random.Random(f"{layout}{window_s}")

    def value() -> float:
        return round(rng.uniform(-50, 50), 3)

    if layout == "polls":  # every tick, all series in the same order (a repeating sequence)
        ticks = sorted(rng.sample(range(0, 60 * S, S // 4), 200))
        points = [(f"dev/s{k}", T0 + t, value(), rng.choice((0, 0, 0, 1))) for t in ticks for k in range(4)]
    else:
        points = [
            (f"dev/s{k}", T0 + rng.randrange(0, 60 * S, S // 4), value(), rng.choice((0, 0, 0, 1)))
            for k in range(4)
            for _ in range(200)
        ]
    if layout == "runs":
        points.sort(key=lambda p: (p[0], p[1]))
    elif layout == "interleaved":
        points.sort(key=lambda p: (p[1], p[0]))
    elif layout == "shuffled":
        rng.shuffle(points)
    lateness = 3600.0  # nothing is late, whatever the batch order
    op: Operator
    if window_s == slide_s:
        op = TumblingWindow(TumblingWindowConfig(window_s=window_s, aggregates=ALL, allowed_lateness_s=lateness), ctx)
    else:
        config = SlidingWindowConfig(window_s=window_s, slide_s=slide_s, aggregates=ALL, allowed_lateness_s=lateness)
        op = SlidingWindow(config, ctx)
    size = chunk or len(points)
    outputs: list[tuple[str, Any]] = []
    for i in range(0, len(points), size):
        part = points[i : i + size]
        data = Batch([p[1] for p in part], [p[0] for p in part], [p[2] for p in part], [p[3] for p in part])
        outputs.extend(op.process("in", data, T0))
    outputs.extend(op.on_timer(T0 + 2 * 3600 * S))
    got: dict[tuple[str, int], dict[str, Any]] = {}
    for port, out in outputs:
        assert port == "out" and isinstance(out, Batch)
        for t, s, v, q in zip(out.ts, out.series, out.values, out.quality, strict=True):
            series, agg = s.rsplit("/", 1)
            entry = got.setdefault((series, t), {})
            entry[agg] = v
            if agg != "stddev":
                entry["quality"] = q
    expected = reference(points, round(window_s * S), round(slide_s * S))
    assert got.keys() == expected.keys()
    for key, aggregates in expected.items():
        for agg, value in aggregates.items():
            assert got[key][agg] == pytest.approx(value, rel=1e-9, abs=1e-9), (key, agg)
    assert "late_points" not in ctx.metrics.counters
