"""Runtime behaviour of the simulator device node, driven by a controllable clock."""

from __future__ import annotations

import itertools
import math
from pathlib import Path

import pytest

from nodes.device import simulator
from nodes.device.simulator import SimTag, Simulator, SimulatorConfig
from nodes.points import Batch
from runtime.context import StepContext

S = 1_000_000_000
T0 = 1_700_000_000 * S  # a multiple of every period used below


class Clock:
    def __init__(self, now: int) -> None:
        self.now = now

    def __call__(self) -> int:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock(T0)


@pytest.fixture
def ctx(tmp_path: Path, clock: Clock) -> StepContext:
    return StepContext(node_id="sim", data_dir=tmp_path, clock=clock)


def make(ctx: StepContext, rate_hz: float = 2.0, *tags: SimTag, device: str = "sim") -> Simulator:
    return Simulator(SimulatorConfig(device_name=device, rate_hz=rate_hz, tags=list(tags) or [SimTag(tag="x")]), ctx)


async def read(sim: Simulator, clock: Clock, at_s: float) -> Batch | None:
    clock.now = T0 + round(at_s * S)
    return await sim.read()


def per_series(b: Batch) -> dict[str, list[tuple[float, object]]]:
    found: dict[str, list[tuple[float, object]]] = {}
    for t, s, v in zip(b.ts, b.series, b.values, strict=True):
        found.setdefault(s, []).append(((t - T0) / S, v))
    return found


def test_spec_names_the_behaviour() -> None:
    assert simulator.SPEC.behaviour is Simulator


async def test_reads_return_every_tick_due_since_the_last_read(ctx: StepContext, clock: Clock) -> None:
    sim = make(ctx, 2.0, SimTag(tag="a", signal="counter"), SimTag(tag="b", signal="counter", step=2.0))
    assert sim.interval_s == 0.5
    await sim.connect()  # a no-op
    first = await read(sim, clock, 0.3)
    assert first is not None
    assert per_series(first) == {"sim/a": [(0.0, 0)], "sim/b": [(0.0, 0)]}  # only the latest due tick
    assert await read(sim, clock, 0.49) is None  # no tick due
    # A slow runtime: one larger batch, ticks at exact multiples of the interval.
    later = await read(sim, clock, 5.2)
    assert later is not None
    assert per_series(later) == {
        "sim/a": [(0.5 * k, k) for k in range(1, 11)],
        "sim/b": [(0.5 * k, 2 * k) for k in range(1, 11)],
    }
    assert later.quality == [0] * 20
    assert (await read(sim, clock, 5.5)) is not None
    assert "skipped_ticks" not in ctx.metrics.counters


async def test_catch_up_is_capped_at_ten_seconds(ctx: StepContext, clock: Clock) -> None:
    sim = make(ctx, 2.0, SimTag(tag="n", signal="counter"))
    await read(sim, clock, 0)
    b = await read(sim, clock, 100)
    assert b is not None
    times = [t for t, _ in per_series(b)["sim/n"]]
    assert times == [90.5 + 0.5 * k for k in range(20)]  # the latest 10 s of ticks
    assert ctx.metrics.counters["skipped_ticks"] == 180
    # The counter counts skipped ticks too: it is tick-based, not emission-based.
    assert b.values == list(range(181, 201))


async def test_ticks_of_a_rate_that_does_not_divide_a_second(ctx: StepContext, clock: Clock) -> None:
    sim = make(ctx, 3.0, SimTag(tag="x", signal="counter"))
    await read(sim, clock, 0)
    b = await read(sim, clock, 1.0)
    assert b is not None
    assert [t - T0 for t in b.ts] == [333_333_333, 666_666_666, 1_000_000_000]


async def test_signal_values_at_known_times(ctx: StepContext, clock: Clock) -> None:
    sim = make(
        ctx,
        4.0,
        SimTag(tag="sine", signal="sine", amplitude=5.0, period_s=4.0, offset=60.0),
        SimTag(tag="ramp", signal="ramp", amplitude=100.0, period_s=2.0, offset=1.0),
        SimTag(tag="step", signal="step", amplitude=500.0, period_s=2.0, offset=1000.0),
        SimTag(tag="clamped", signal="sine", amplitude=10.0, period_s=4.0, min=-5.0, max=5.0),
        SimTag(tag="frac", signal="counter", offset=0.5, step=0.25),
    )
    await read(sim, clock, 0)
    b = await read(sim, clock, 2.0)
    assert b is not None
    got = per_series(b)
    times = [0.25 * k for k in range(1, 9)]
    assert [t for t, _ in got["sim/sine"]] == times
    for (_, v), expected_t in zip(got["sim/sine"], times, strict=True):
        assert v == pytest.approx(60.0 + 5.0 * math.sin(2 * math.pi * expected_t / 4.0), abs=1e-9)
    assert [v for _, v in got["sim/ramp"]] == pytest.approx([1.0 + 100.0 * ((t % 2.0) / 2.0) for t in times])
    assert [v for _, v in got["sim/step"]] == [1000.0, 1000.0, 1000.0, 1500.0, 1500.0, 1500.0, 1500.0, 1000.0]
    clamped = [v for _, v in got["sim/clamped"]]
    assert clamped == pytest.approx([max(-5.0, min(5.0, 10.0 * math.sin(math.pi * t / 2))) for t in times], abs=1e-9)
    assert [v for _, v in got["sim/frac"]] == [0.5 + 0.25 * k for k in range(1, 9)]


async def test_random_walk_is_seeded_bounded_and_reproducible(ctx: StepContext, clock: Clock, tmp_path: Path) -> None:
    tag = SimTag(tag="p", signal="random_walk", offset=4.0, step=0.05, min=3.95, max=4.1)
    sim = make(ctx, 10.0, tag)
    twin = Simulator(
        SimulatorConfig(device_name="sim", rate_hz=10.0, tags=[tag]),
        StepContext(node_id="twin", data_dir=tmp_path, clock=clock),
    )
    values: list[float] = []
    for at in (0.0, 3.0, 9.0):
        a = await read(sim, clock, at)
        b = await twin.read()
        assert a is not None and b is not None
        assert a.values == b.values
        values.extend(float(v) for v in a.values)
    assert values[0] == 4.0  # starts at the offset
    assert all(3.95 <= v <= 4.1 for v in values)
    assert all(abs(b - a) <= 0.05 + 1e-12 for a, b in itertools.pairwise(values))
    assert len(set(values)) > 10
    other = make(ctx, 10.0, tag, device="other")  # another series key: another sequence
    await other.read()
    o = await read(other, clock, 12.0)
    assert o is not None and o.series[0] == "other/p"


async def test_tick_major_and_tag_major_batches_carry_the_same_signals(ctx: StepContext, clock: Clock) -> None:
    """Few ticks per read (tick-major batches) and many (tag-major) give the same series."""
    tags = [
        SimTag(tag="walk", signal="random_walk", step=0.5, min=-1.0, max=1.0),
        SimTag(tag="count", signal="counter", step=3.0),
        SimTag(tag="sine", signal="sine", amplitude=3.0, period_s=1.7, offset=1.0, max=3.5),
        SimTag(tag="free", signal="random_walk", step=0.5),
        SimTag(tag="ramp", signal="ramp", amplitude=2.0, period_s=0.9),
        SimTag(tag="step", signal="step", amplitude=1.0, period_s=0.6, offset=-1.0),
    ]
    slow, fast = make(ctx, 20.0, *tags), make(ctx, 20.0, *tags)
    await read(slow, clock, 0)
    await fast.read()
    slow_batches = [await read(slow, clock, 4.0)]  # 80 ticks, 6 tags: tag-major
    fast_batches = []
    for k in range(1, 41):  # 2 ticks per read: tick-major
        fast_batches.append(await read(fast, clock, k * 0.1))
    assert all(b is not None for b in slow_batches + fast_batches)
    assert slow_batches[0] is not None and slow_batches[0].series[:2] == ["sim/walk", "sim/walk"]
    assert fast_batches[0] is not None  # grouped by signal kind
    assert fast_batches[0].series[:6] == ["sim/sine", "sim/ramp", "sim/step", "sim/count", "sim/walk", "sim/free"]
    merged = Batch.empty()
    for b in fast_batches:
        assert b is not None
        merged.extend(b)
    expected, got = per_series(slow_batches[0]), per_series(merged)
    assert expected.keys() == got.keys()
    for key in expected:
        assert [t for t, _ in got[key]] == [t for t, _ in expected[key]]
        assert [v for _, v in got[key]] == pytest.approx([v for _, v in expected[key]], abs=1e-9), key
    assert [v for _, v in got["sim/walk"]] == [v for _, v in expected["sim/walk"]]  # exactly the same steps
    assert max(v for _, v in got["sim/sine"]) == 3.5  # type: ignore[type-var]


async def test_snapshot_restore_continues_without_gaps_or_repeats(ctx: StepContext, clock: Clock) -> None:
    tags = (SimTag(tag="n", signal="counter"), SimTag(tag="w", signal="random_walk", step=1.0))
    first = make(ctx, 1.0, *tags)
    await read(first, clock, 0)
    await read(first, clock, 3)
    second = make(ctx, 1.0, *tags)
    second.restore(first.snapshot())
    a = await read(first, clock, 6)
    b = await second.read()
    assert a is not None and b is not None
    assert (a.ts, a.series, a.values) == (b.ts, b.series, b.values)
    assert per_series(a)["sim/n"] == [(4.0, 4), (5.0, 5), (6.0, 6)]
