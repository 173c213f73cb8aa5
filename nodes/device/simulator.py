"""``simulator``: a stand-in device that generates signals, for building and testing flows."""

import itertools
import math
import random
import zlib
from collections.abc import Iterator
from fractions import Fraction
from typing import Annotated, Any, Literal

import msgspec
from msgspec import Meta

from nodes.host import NodeContext, Source
from nodes.points import Batch, Value
from nodes.spec import Category, ConfigProblem, NodeConfig, NodeSpec, points_out

Signal = Literal["sine", "ramp", "random_walk", "step", "counter"]


class SimTag(msgspec.Struct, kw_only=True, forbid_unknown_fields=True, frozen=True):
    """One simulated signal."""

    tag: Annotated[
        str,
        Meta(
            min_length=1,
            description="Tag name of the signal; its series key is <device_name>/<tag>.",
            examples=["temperature"],
        ),
    ]
    signal: Annotated[
        Signal,
        Meta(
            description="Shape of the signal: sine wave, sawtooth ramp, random walk, square step between "
            "offset and offset + amplitude, or a counter that grows by step each tick."
        ),
    ] = "sine"
    amplitude: Annotated[float, Meta(description="Height of the sine, ramp or step signal, in engineering units.")] = (
        1.0
    )
    period_s: Annotated[float, Meta(gt=0, description="Period of the sine, ramp or step signal, in seconds.")] = 60.0
    offset: Annotated[
        float, Meta(description="Value the signal starts from or oscillates around, in engineering units.")
    ] = 0.0
    step: Annotated[
        float,
        Meta(description="Increment of the counter, or largest change per tick of the random walk."),
    ] = 1.0
    min: Annotated[float | None, Meta(description="Lowest value the signal may take; values below are clamped.")] = None
    max: Annotated[float | None, Meta(description="Highest value the signal may take; values above are clamped.")] = (
        None
    )


class SimulatorConfig(NodeConfig, frozen=True):
    """
    Generates test signals (sine, ramp, random walk, step, counter) as if a device were connected.
    Use it to build and try out a flow before the real machine is reachable.
    """

    device_name: Annotated[
        str,
        Meta(
            min_length=1,
            description="Device name used in the series keys <device_name>/<tag>.",
            examples=["sim"],
        ),
    ] = "sim"
    rate_hz: Annotated[float, Meta(gt=0, le=10000, description="How many samples per second each signal produces.")] = (
        1.0
    )
    tags: Annotated[list[SimTag], Meta(description="The simulated signals: one entry per tag.")] = msgspec.field(
        default_factory=list
    )

    def problems(self) -> Iterator[ConfigProblem]:
        name = self.device_name
        if not name.strip() or "/" in name:
            yield ConfigProblem(
                "$.device_name",
                f"{name!r} cannot be used as a device name",
                "use a non-empty name without '/'",
            )
        if not self.tags:
            yield ConfigProblem("$.tags", "no signals to simulate", "add at least one tag")
        seen: dict[str, int] = {}
        for i, tag in enumerate(self.tags):
            path = f"$.tags[{i}]"
            if not tag.tag.strip():
                yield ConfigProblem(f"{path}.tag", "tag is empty", "name the signal, e.g. temperature")
            elif tag.tag in seen:
                yield ConfigProblem(
                    f"{path}.tag",
                    f"tag {tag.tag!r} is already used by tags[{seen[tag.tag]}]",
                    "give every signal a unique tag",
                )
            else:
                seen[tag.tag] = i
            if tag.min is not None and tag.max is not None and tag.min >= tag.max:
                yield ConfigProblem(
                    f"{path}.max",
                    f"max {tag.max} is not above min {tag.min}",
                    "set max above min, or leave one of them empty",
                )


MAX_CATCH_UP_S = 10  # one read emits at most this many seconds of ticks; older ones are skipped


class Simulator(Source):
    """Runtime behaviour: ticks at exact epoch multiples of 1 / rate_hz, catching up.

    Each read returns every tick due since the previous read (the first read only the latest due
    tick), stamped with the tick times, so throughput does not depend on scheduling jitter; at most
    ``MAX_CATCH_UP_S`` seconds of ticks per read, older ones are skipped and counted
    (``skipped_ticks``). No tick due: ``None``. Quality GOOD. A batch with at least as many ticks
    as tags is tag-major (all ticks of one tag, then the next: one comprehension per tag),
    otherwise tick-major (all tags of one tick, then the next: one comprehension per signal kind);
    each series is in time order either way.

    Signals at tick time t: sine ``offset + amplitude * sin(2π t / period)``, ramp
    ``offset + amplitude * (t mod period) / period``, step ``offset`` in the first half of each
    period and ``offset + amplitude`` in the second, counter ``offset + step * n`` where n counts
    ticks since the first read (skipped ticks included; ints when offset and step are whole),
    random walk starting at ``offset`` and moving by a uniform amount in ±step per emitted tick,
    from a generator seeded with the series key. ``min``/``max`` clamp every signal.
    """

    def __init__(self, config: SimulatorConfig, context: NodeContext) -> None:
        self._context = context
        self._config = config
        rate = Fraction(config.rate_hz).limit_denominator(1_000_000)
        # Tick k is at floor(k * num / den) ns since the epoch.
        self._num = rate.denominator * 1_000_000_000
        self._den = rate.numerator
        self.interval_s = 1.0 / config.rate_hz
        self._max_ticks = max(1, math.ceil(MAX_CATCH_UP_S * config.rate_hz))
        self._last_tick: int | None = None  # the last tick emitted
        self._first_tick: int | None = None  # the counters' origin
        self._walk: dict[str, float] = {}
        self._rngs: dict[str, random.Random] = {}
        tags = config.tags
        self._keys = [f"{config.device_name}/{tag.tag}" for tag in tags]
        for tag, key in zip(tags, self._keys, strict=True):
            if tag.signal == "random_walk":
                self._rngs[tag.tag] = random.Random(zlib.crc32(key.encode()))
                self._walk[tag.tag] = _clamp(tag.offset, tag.min, tag.max)
        # Tick-major layout: tags grouped by signal kind, with their constants.
        # (The order of the kinds is the order in which _tick_major computes them.)
        kinds = ("sine", "ramp", "step", "counter", "random_walk")
        by_kind = {kind: [i for i, tag in enumerate(tags) if tag.signal == kind] for kind in kinds}
        order = [i for indices in by_kind.values() for i in indices]
        self._tick_keys = [self._keys[i] for i in order]
        self._sines = [
            (t.offset, t.amplitude, _period(t), 2.0 * math.pi / _period(t)) for t in _pick(tags, by_kind["sine"])
        ]
        self._ramps = [(t.offset, t.amplitude, _period(t)) for t in _pick(tags, by_kind["ramp"])]
        self._steps = [(t.offset, t.offset + t.amplitude, _period(t)) for t in _pick(tags, by_kind["step"])]
        self._counters = [_counter(t) for t in _pick(tags, by_kind["counter"])]
        self._walkers = _pick(tags, by_kind["random_walk"])
        self._bounds: tuple[list[float], list[float]] | None = None
        if any(t.min is not None or t.max is not None for t in tags):
            ordered = _pick(tags, order)
            self._bounds = (
                [-math.inf if t.min is None else t.min for t in ordered],
                [math.inf if t.max is None else t.max for t in ordered],
            )

    async def connect(self) -> None:
        return None

    async def read(self) -> Batch | None:
        return self.generate(self._context.now_ns())

    def generate(self, now_ns: int) -> Batch | None:
        """The points of the ticks due at ``now_ns`` that were not emitted yet."""
        current = (now_ns * self._den) // self._num
        last = self._last_tick
        if last is None:
            first = current
            self._first_tick = current
        elif current <= last:
            return None
        else:
            first = last + 1
        if current - first + 1 > self._max_ticks:
            skipped = current - first + 1 - self._max_ticks
            self._context.count("skipped_ticks", skipped)
            first += skipped
        self._last_tick = current
        ticks = range(first, current + 1)
        num, den = self._num, self._den
        if num % den == 0:
            step = num // den
            ts = list(range(first * step, (current + 1) * step, step))
        else:
            ts = [(k * num) // den for k in ticks]
        n = len(ts)
        if n < len(self._keys):
            return self._tick_major(ts, ticks)
        out_series: list[str] = []
        out_values: list[Value] = []
        for tag, key in zip(self._config.tags, self._keys, strict=True):
            out_series.extend(itertools.repeat(key, n))
            out_values.extend(self._signal(tag, ts, ticks))
        count = len(out_values)
        return Batch(ts * len(self._keys), out_series, out_values, [0] * count)

    def _tick_major(self, ts: list[int], ticks: range) -> Batch:
        sin = math.sin
        origin = self._first_tick if self._first_tick is not None else ticks.start
        keys = self._tick_keys
        width = len(keys)
        out_ts: list[int] = []
        out_series: list[str] = []
        out_values: list[Any] = []
        for k, t in zip(ticks, ts, strict=True):
            values: list[Any] = [off + amp * sin((t % period) * w) for off, amp, period, w in self._sines]
            if self._ramps:
                values += [off + amp * ((t % period) / period) for off, amp, period in self._ramps]
            if self._steps:
                values += [low if 2 * (t % period) < period else high for low, high, period in self._steps]
            if self._counters:
                values += [base + inc * (k - origin) for base, inc in self._counters]
            if self._walkers:
                values += [self._walk_step(tag) for tag in self._walkers]
            if self._bounds is not None:
                lows, highs = self._bounds
                values = [lo if v < lo else hi if v > hi else v for v, lo, hi in zip(values, lows, highs, strict=True)]
            out_ts.extend(itertools.repeat(t, width))
            out_series.extend(keys)
            out_values.extend(values)
        return Batch(out_ts, out_series, out_values, [0] * len(out_values))

    def _walk_step(self, tag: SimTag) -> float:
        """The random walk's current value; moves it one step for the next tick."""
        value = self._walk[tag.tag]
        spread = 2.0 * tag.step
        self._walk[tag.tag] = _clamp(value + (self._rngs[tag.tag].random() - 0.5) * spread, tag.min, tag.max)
        return value

    def _signal(self, tag: SimTag, ts: list[int], ticks: range) -> list[Value]:
        offset, amplitude = tag.offset, tag.amplitude
        period = _period(tag)
        values: list[Any]
        n = len(ts)
        # With a whole-nanosecond interval, the phase of tick j is phase0 + j * step: float
        # arithmetic on small numbers instead of a big-int modulo per point.
        step = self._num // self._den if self._num % self._den == 0 else None
        if tag.signal == "sine":
            w = 2.0 * math.pi / period
            sin = math.sin
            if step is not None:
                phase0, dphase = (ts[0] % period) * w, step * w
                values = [offset + amplitude * sin(phase0 + dphase * j) for j in range(n)]
            else:
                values = [offset + amplitude * sin((t % period) * w) for t in ts]
        elif tag.signal == "ramp":
            values = [offset + amplitude * ((t % period) / period) for t in ts]
        elif tag.signal == "step":
            high = offset + amplitude
            values = [offset if 2 * (t % period) < period else high for t in ts]
        elif tag.signal == "counter":
            origin = self._first_tick if self._first_tick is not None else ticks.start
            base, inc = _counter(tag)
            values = [base + inc * (k - origin) for k in ticks]
        else:
            return self._random_walk(tag, n)
        if tag.min is not None or tag.max is not None:
            lo = -math.inf if tag.min is None else tag.min
            hi = math.inf if tag.max is None else tag.max
            values = [lo if v < lo else hi if v > hi else v for v in values]
        return values

    def _random_walk(self, tag: SimTag, n: int) -> list[Value]:
        rng = self._rngs[tag.tag]
        r = rng.random
        spread = 2.0 * tag.step
        steps = [(r() - 0.5) * spread for _ in range(n - 1)]
        start = self._walk[tag.tag]
        if tag.min is None and tag.max is None:
            values: list[Any] = list(itertools.accumulate(steps, initial=start))
        else:
            lo = -math.inf if tag.min is None else tag.min
            hi = math.inf if tag.max is None else tag.max
            values = list(itertools.accumulate(steps, lambda a, b: min(max(a + b, lo), hi), initial=start))
        # The next read continues one step after the last value emitted.
        self._walk[tag.tag] = _clamp(values[-1] + (r() - 0.5) * spread, tag.min, tag.max)
        return values

    def snapshot(self) -> Any:
        return {
            "last_tick": self._last_tick,
            "first_tick": self._first_tick,
            "walk": dict(self._walk),
            "rng": {name: _rng_state(rng) for name, rng in self._rngs.items()},
        }

    def restore(self, state: Any) -> None:
        if not isinstance(state, dict):
            return
        self._last_tick = state.get("last_tick")
        self._first_tick = state.get("first_tick")
        for name, value in state.get("walk", {}).items():
            if name in self._walk:
                self._walk[name] = float(value)
        for name, saved in state.get("rng", {}).items():
            if name in self._rngs:
                version, internal, gauss = saved
                self._rngs[name].setstate((version, tuple(internal), gauss))


def _period(tag: SimTag) -> int:
    return max(1, round(tag.period_s * 1e9))


def _pick(tags: list[SimTag], indices: list[int]) -> list[SimTag]:
    return [tags[i] for i in indices]


def _counter(tag: SimTag) -> tuple[float, float]:
    """(base, increment) of a counter: ints when both are whole numbers."""
    if float(tag.offset).is_integer() and float(tag.step).is_integer():
        return int(tag.offset), int(tag.step)
    return tag.offset, tag.step


def _clamp(value: float, lo: float | None, hi: float | None) -> float:
    if lo is not None and value < lo:
        return lo
    if hi is not None and value > hi:
        return hi
    return value


def _rng_state(rng: random.Random) -> list[Any]:
    version, internal, gauss = rng.getstate()
    return [version, list(internal), gauss]


EXAMPLE = SimulatorConfig(
    device_name="sim",
    rate_hz=2.0,
    tags=[
        SimTag(tag="temperature", signal="sine", amplitude=5.0, period_s=120.0, offset=60.0),
        SimTag(tag="pressure", signal="random_walk", offset=4.0, step=0.05, min=0.0, max=10.0),
        SimTag(tag="speed_setpoint", signal="step", amplitude=500.0, period_s=300.0, offset=1000.0),
        SimTag(tag="parts_produced", signal="counter", step=1.0),
        SimTag(tag="fill_level", signal="ramp", amplitude=100.0, period_s=600.0),
    ],
)

SPEC = NodeSpec(
    type_id="simulator",
    version=1,
    category=Category.DEVICE,
    title="Simulator",
    description="Generates test signals as if a device were connected.",
    config=SimulatorConfig,
    example=EXAMPLE,
    outputs=(points_out(description="One batch of points per tick"),),
    stateful=False,
    icon="activity",
    behaviour=Simulator,
)
