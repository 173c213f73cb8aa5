"""Runtime behaviours of the transform nodes, run with a real StepContext on real batches."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pytest

from nodes.host import Health, Operator
from nodes.points import Batch, Value
from nodes.transform import deadband, expression, quality_filter, rename, scale
from nodes.transform import filter as filter_
from nodes.transform.deadband import Deadband, DeadbandConfig
from nodes.transform.expression import ExpressionBehaviour, ExpressionConfig
from nodes.transform.filter import Filter, FilterConfig
from nodes.transform.quality_filter import QualityFilter, QualityFilterConfig
from nodes.transform.rename import Rename, RenameBehaviour, RenameConfig
from nodes.transform.scale import Scale, ScaleConfig
from runtime.context import StepContext

S = 1_000_000_000
T0 = 1_700_000_000 * S


@pytest.fixture
def ctx(tmp_path: Path) -> StepContext:
    return StepContext(node_id="node", data_dir=tmp_path, clock=lambda: T0)


def batch(*points: tuple[Any, ...]) -> Batch:
    """A batch from (series, value[, quality[, ts]]) tuples; ts defaults to T0 + i seconds."""
    b = Batch.empty()
    for i, p in enumerate(points):
        b.series.append(p[0])
        b.values.append(p[1])
        b.quality.append(p[2] if len(p) > 2 else 0)
        b.ts.append(p[3] if len(p) > 3 else T0 + i * S)
    return b


def run(op: Operator, data: Batch, port: str = "out") -> Batch:
    """The one batch ``op`` emits on ``port`` for ``data`` (an empty batch when it emits nothing)."""
    outputs = op.process("in", data, T0)
    found = [d for p, d in outputs if p == port]
    assert len(found) <= 1
    if not found:
        return Batch.empty()
    out = found[0]
    assert isinstance(out, Batch)
    assert len(out.ts) == len(out.series) == len(out.values) == len(out.quality)
    return out


def health(ctx: StepContext) -> Health:
    return ctx.metrics.health


def rows(b: Batch) -> list[tuple[int, str, Value, int]]:
    return list(zip(b.ts, b.series, b.values, b.quality, strict=True))


def test_specs_name_their_behaviours() -> None:
    assert scale.SPEC.behaviour is Scale
    assert filter_.SPEC.behaviour is Filter
    assert deadband.SPEC.behaviour is Deadband
    assert expression.SPEC.behaviour is ExpressionBehaviour
    assert rename.SPEC.behaviour is RenameBehaviour
    assert quality_filter.SPEC.behaviour is QualityFilter


# --- scale ----------------------------------------------------------------------------------------


def test_scale_factor_offset_and_conversion(ctx: StepContext) -> None:
    op = Scale(ScaleConfig(factor=0.1, offset=2.0, conversion="c_to_f"), ctx)
    out = run(op, batch(("plc/t", 180), ("plc/t", -20.0), ("plc/t", "text"), ("plc/t", True)))
    # (180 * 0.1 + 2) = 20 °C = 68 °F; (-20 * 0.1 + 2) = 0 °C = 32 °F
    assert out.values[0] == pytest.approx(68.0, abs=1e-12)
    assert out.values[1] == pytest.approx(32.0, abs=1e-12)
    assert out.values[2] == "text"  # non-numeric values pass unchanged
    assert out.values[3] is True  # bool is not a number for scaling
    assert out.quality == [0, 0, 0, 0]
    assert out.ts == [T0, T0 + S, T0 + 2 * S, T0 + 3 * S]


@pytest.mark.parametrize(
    ("conversion", "value", "expected"),
    [
        ("k_to_c", 273.15, 0.0),
        ("bar_to_psi", 2.0, 29.007547546),
        ("kw_to_w", 1.5, 1500.0),
        ("m3h_to_lpm", 6.0, 100.0),
        ("in_to_mm", 2.0, 50.8),
        ("hz_to_rpm", 50, 3000.0),
        ("f_to_c", 212.0, 100.0),
    ],
)
def test_scale_conversions(ctx: StepContext, conversion: Any, value: float, expected: float) -> None:
    out = run(Scale(ScaleConfig(conversion=conversion), ctx), batch(("d/x", value)))
    assert out.values[0] == pytest.approx(expected, rel=1e-12, abs=1e-12)


def test_scale_identity_passes_the_batch_through(ctx: StepContext) -> None:
    data = batch(("d/x", 1), ("d/y", 2.5))
    assert run(Scale(ScaleConfig(), ctx), data) is data


def test_scale_rounds_before_the_cast(ctx: StepContext) -> None:
    op = Scale(ScaleConfig(factor=1.0, round_digits=0, cast="int"), ctx)
    assert run(op, batch(("d/x", 2.7), ("d/x", -2.7), ("d/x", 3.2))).values == [3, -3, 3]
    op = Scale(ScaleConfig(factor=2.0, round_digits=2), ctx)
    out = run(op, batch(("d/x", 1.23456), ("d/x", 7)))
    assert out.values == [2.47, 14.0]
    op = Scale(ScaleConfig(round_digits=1, cast="string"), ctx)
    assert run(op, batch(("d/x", 21.456), ("d/x", True), ("d/x", 3))).values == ["21.5", "true", "3"]


def test_scale_rounding_keeps_inf_and_nan(ctx: StepContext) -> None:
    out = run(Scale(ScaleConfig(round_digits=2), ctx), batch(("d/x", math.inf), ("d/x", 1.005), ("d/x", math.nan)))
    assert out.values[0] == math.inf
    assert out.values[1] == pytest.approx(1.0)
    assert math.isnan(float(out.values[2]))


def test_scale_cast_failures_get_bad_quality_and_are_counted(ctx: StepContext) -> None:
    op = Scale(ScaleConfig(cast="float"), ctx)
    out = run(op, batch(("d/x", "12.5"), ("d/x", "abc"), ("d/x", 3), ("d/x", True), ("d/x", " 7 ", 1)))
    assert out.values == [12.5, "abc", 3.0, 1.0, 7.0]
    assert out.quality == [0, 2, 0, 0, 1]
    assert ctx.metrics.counters["cast_errors"] == 1

    op = Scale(ScaleConfig(cast="int"), ctx)
    out = run(op, batch(("d/x", 2.9), ("d/x", "41"), ("d/x", "12.7"), ("d/x", math.nan), ("d/x", math.inf)))
    assert out.values[:3] == [2, 41, 12]  # decimals are cut, as int() in expressions
    assert out.quality == [0, 0, 0, 2, 2]
    assert ctx.metrics.counters["cast_errors"] == 3

    op = Scale(ScaleConfig(cast="bool"), ctx)
    out = run(op, batch(("d/x", 0), ("d/x", 2.5), ("d/x", "ON"), ("d/x", "false"), ("d/x", "maybe")))
    assert out.values == [False, True, True, False, "maybe"]
    assert out.quality == [0, 0, 0, 0, 2]
    assert ctx.metrics.counters["cast_errors"] == 4


def test_scale_tags_select_series_by_tag_or_key_glob(ctx: StepContext) -> None:
    op = Scale(ScaleConfig(factor=10.0, tags=["temp*", "line1/*/pressure"]), ctx)
    data = batch(
        ("plc/temperature", 1.0),
        ("plc/pressure", 1.0),
        ("line1/plc/pressure", 1.0),
        ("plc/temp_out", 2),
        ("plc/speed", 3.0),
    )
    assert run(op, data).values == [10.0, 1.0, 10.0, 20.0, 3.0]
    # The selection is cached per series key, and a batch with no selected series passes through.
    other = batch(("plc/speed", 5.0))
    assert run(op, other) is other
    assert op._selected == {
        "plc/temperature": True,
        "plc/pressure": False,
        "line1/plc/pressure": True,
        "plc/temp_out": True,
        "plc/speed": False,
    }


def test_scale_cast_only_applies_to_selected_series(ctx: StepContext) -> None:
    op = Scale(ScaleConfig(cast="int", tags=["count"]), ctx)
    out = run(op, batch(("d/count", "5"), ("d/other", "x"), ("d/count", "y")))
    assert out.values == [5, "x", "y"]
    assert out.quality == [0, 0, 2]


# --- filter ---------------------------------------------------------------------------------------


def test_filter_keeps_matching_points(ctx: StepContext) -> None:
    op = Filter(FilterConfig(expression='value > 10 and quality == GOOD and tag != "skip"'), ctx)
    data = batch(("d/a", 11), ("d/a", 9), ("d/a", 12.5, 1), ("d/skip", 50), ("d/b", 100))
    out = run(op, data)
    assert rows(out) == [(T0, "d/a", 11, 0), (T0 + 4 * S, "d/b", 100, 0)]
    assert ctx.metrics.health is Health.OK


def test_filter_isolates_errors_counts_them_and_warns(ctx: StepContext) -> None:
    op = Filter(FilterConfig(expression="value > 10"), ctx)
    out = run(op, batch(("d/a", 11), ("d/a", "text"), ("d/a", 20), ("d/a", "more")))
    assert out.values == [11, 20]
    assert ctx.metrics.counters["eval_errors"] == 2
    assert health(ctx) is Health.WARNING
    assert "'>' not supported between instances of 'str' and 'int'" in ctx.metrics.message
    # A clean batch brings health back to OK.
    assert run(op, batch(("d/a", 12))).values == [12]
    assert health(ctx) is Health.OK
    assert ctx.metrics.counters["eval_errors"] == 2


def test_filter_all_kept_or_none_kept(ctx: StepContext) -> None:
    op = Filter(FilterConfig(expression="value >= 0"), ctx)
    data = batch(("d/a", 1), ("d/a", 2))
    assert run(op, data) is data
    assert op.process("in", batch(("d/a", -1)), T0) == ()


# --- deadband -------------------------------------------------------------------------------------


def test_deadband_absolute(ctx: StepContext) -> None:
    op = Deadband(DeadbandConfig(absolute=0.5, percent=0.0), ctx)
    values = [10.0, 10.3, 10.5, 10.6, 10.0, 9.9, 11.2]
    out = run(op, batch(*[("d/a", v) for v in values]))
    # 10 passes (first); 10.3, 10.5 within 0.5 of 10; 10.6 passes; 10.0 passes (0.6 away); 9.9 no; 11.2 yes
    assert out.values == [10.0, 10.6, 10.0, 11.2]


def test_deadband_percent_is_relative_to_the_last_passed_value(ctx: StepContext) -> None:
    op = Deadband(DeadbandConfig(absolute=0.0, percent=10.0), ctx)
    out = run(op, batch(*[("d/a", v) for v in (100, 109, 111, 121, 124, 0, 0.0)]))
    assert out.values == [100, 111, 124, 0]


def test_deadband_either_test_passes(ctx: StepContext) -> None:
    op = Deadband(DeadbandConfig(absolute=5.0, percent=1.0), ctx)
    # 1 % of 1000 is 10: 1006 passes through the absolute test only.
    assert run(op, batch(("d/a", 1000), ("d/a", 1004), ("d/a", 1006))).values == [1000, 1006]


def test_deadband_quality_text_silence_and_series(ctx: StepContext) -> None:
    op = Deadband(DeadbandConfig(absolute=1.0, percent=0.0, max_silence_s=10.0), ctx)
    data = batch(
        ("d/a", 5.0, 0, T0),
        ("d/b", "run", 0, T0),
        ("d/a", 5.1, 1, T0 + S),  # quality changed
        ("d/b", "run", 0, T0 + S),  # same text
        ("d/b", "stop", 0, T0 + 2 * S),  # text changed
        ("d/a", 5.2, 1, T0 + 5 * S),  # no
        ("d/a", 5.3, 1, T0 + 11 * S),  # 10 s since the last passed (T0 + 1 s)
        ("d/b", True, 0, T0 + 12 * S),  # type changed
        ("d/b", True, 0, T0 + 13 * S),
        ("d/b", 1, 0, T0 + 14 * S),  # bool -> int
    )
    out = run(op, data)
    assert [(t - T0) // S for t in out.ts] == [0, 0, 1, 2, 11, 12, 14]


def test_deadband_nan_passes_once(ctx: StepContext) -> None:
    op = Deadband(DeadbandConfig(absolute=1.0, percent=0.0), ctx)
    out = run(op, batch(("d/a", 1.0), ("d/a", math.nan), ("d/a", math.nan), ("d/a", 1.0)))
    assert len(out) == 3


def test_deadband_state_survives_snapshot_and_restore(ctx: StepContext) -> None:
    config = DeadbandConfig(absolute=1.0, percent=0.0, max_silence_s=60.0)
    first = Deadband(config, ctx)
    run(first, batch(("d/a", 10.0, 0, T0), ("d/b", "x", 0, T0)))
    second = Deadband(config, ctx)
    second.restore(first.snapshot())
    follow = batch(("d/a", 10.5, 0, T0 + S), ("d/b", "x", 0, T0 + S), ("d/a", 11.5, 0, T0 + 2 * S))
    assert run(second, follow).values == [11.5]
    assert run(first, follow).values == [11.5]


# --- expression -----------------------------------------------------------------------------------


def test_expression_latest_values_across_batches(ctx: StepContext) -> None:
    op = ExpressionBehaviour(
        ExpressionConfig(tag="power", device="calc", expression="voltage * current / 1000", keep_inputs=False), ctx
    )
    # Only voltage known: nothing yet.
    assert op.process("in", batch(("m1/voltage", 230.0, 0, T0)), T0) == ()
    out = run(op, batch(("m1/current", 10.0, 0, T0 + S), ("m1/voltage", 240.0, 1, T0 + 2 * S)))
    assert rows(out) == [(T0 + S, "calc/power", 2.3, 0), (T0 + 2 * S, "calc/power", 2.4, 1)]
    # Same timestamp for both inputs: one result; the worst input quality wins.
    out = run(op, batch(("m1/current", 20.0, 2, T0 + 3 * S), ("m1/voltage", 250.0, 0, T0 + 3 * S)))
    assert rows(out) == [(T0 + 3 * S, "calc/power", 5.0, 2)]


def test_expression_orders_points_by_time_and_ignores_older_points(ctx: StepContext) -> None:
    op = ExpressionBehaviour(ExpressionConfig(expression="a - b", keep_inputs=False), ctx)
    data = batch(
        ("d/b", 1, 0, T0 + 2 * S),
        ("d/a", 10, 0, T0 + S),
        ("d/a", 20, 0, T0 + 3 * S),
        ("d/b", 5, 0, T0),  # last in the batch but the earliest: applied first
    )
    out = run(op, data)
    # Time order: b=5 @0 (a unknown), a=10 @1 -> 5, b=1 @2 -> 9, a=20 @3 -> 19
    assert rows(out) == [
        (T0 + S, "calc/power", 5, 0),
        (T0 + 2 * S, "calc/power", 9, 0),
        (T0 + 3 * S, "calc/power", 19, 0),
    ]
    # A point older than an input's current value is ignored.
    assert op.process("in", batch(("d/a", 100, 0, T0 + 2 * S)), T0) == ()


def test_expression_input_names_match_tags_and_series_keys(ctx: StepContext) -> None:
    op = ExpressionBehaviour(
        ExpressionConfig(expression='point["Voltage L1"] + point["meter2/current"]', keep_inputs=False), ctx
    )
    out = run(
        op,
        batch(
            ("acme/site/meter1/Voltage L1", 230.0, 0, T0),
            ("meter1/current", 1.0, 0, T0),  # not meter2: ignored
            ("acme/site/meter2/current", 5.0, 0, T0),  # ends with /meter2/current
            ("meter2/current", 7.0, 0, T0 + S),  # the exact key
        ),
    )
    assert out.values == [235.0, 237.0]
    assert op._matches["meter1/current"] == ()


def test_expression_keep_inputs_and_errors(ctx: StepContext) -> None:
    op = ExpressionBehaviour(ExpressionConfig(tag="ratio", device="calc", expression="a / b", keep_inputs=True), ctx)
    data = batch(("d/a", 1.0, 0, T0), ("d/b", 0.0, 0, T0), ("d/b", 4.0, 0, T0 + S), ("x/other", 3, 0, T0))
    out = run(op, data)
    assert rows(out)[: len(data)] == rows(data)
    assert rows(out)[len(data) :] == [(T0 + S, "calc/ratio", 0.25, 0)]  # 1 / 0 failed and emitted nothing
    assert ctx.metrics.counters["eval_errors"] == 1
    assert ctx.metrics.health is Health.WARNING
    unrelated = batch(("x/other", 4, 0, T0 + 2 * S))
    assert run(op, unrelated) is unrelated


def test_expression_snapshot_restore(ctx: StepContext) -> None:
    config = ExpressionConfig(expression="a + b", keep_inputs=False)
    first = ExpressionBehaviour(config, ctx)
    run(first, batch(("d/a", 1, 0, T0), ("d/b", 2, 1, T0)))
    second = ExpressionBehaviour(config, ctx)
    second.restore(first.snapshot())
    follow = batch(("d/a", 10, 0, T0 + S))
    assert rows(run(second, follow)) == rows(run(first, follow)) == [(T0 + S, "calc/power", 12, 1)]


# --- rename ---------------------------------------------------------------------------------------


def test_rename_builds_uns_paths(ctx: StepContext) -> None:
    config = RenameConfig(
        enterprise="acme",
        site="berlin",
        area="utilities",
        use_device_name=True,
        mappings=[Rename(match="*/voltage_l1", tag="voltage_l1_n"), Rename(match="meter1/*", tag="")],
    )
    op = RenameBehaviour(config, ctx)
    data = batch(("meter1/voltage_l1", 230.0), ("meter1/power", 5.0, 1), ("meter2/voltage_l1", 231.0), ("bare", 1))
    out = run(op, data)
    assert out.series == [
        "acme/berlin/utilities/meter1/voltage_l1_n",
        "acme/berlin/utilities/meter1/power",
        "acme/berlin/utilities/meter2/voltage_l1_n",
        "acme/berlin/utilities/bare",
    ]
    assert (out.ts, out.values, out.quality) == (data.ts, data.values, data.quality)
    assert op._paths["meter1/power"] == "acme/berlin/utilities/meter1/power"


def test_rename_without_device_level(ctx: StepContext) -> None:
    op = RenameBehaviour(RenameConfig(site="s1", line="l2", use_device_name=False), ctx)
    assert run(op, batch(("plc/speed", 1))).series == ["s1/l2/speed"]
    op = RenameBehaviour(RenameConfig(), ctx)
    assert run(op, batch(("plc/speed", 1))).series == ["plc/speed"]


# --- quality filter -------------------------------------------------------------------------------


def test_quality_filter(ctx: StepContext) -> None:
    op = QualityFilter(QualityFilterConfig(keep=["good", "uncertain"]), ctx)
    out = run(op, batch(("d/a", 1, 0), ("d/a", 2, 2), ("d/a", 3, 1)))
    assert out.values == [1, 3]
    data = batch(("d/a", 1, 0))
    assert run(op, data) is data
    assert QualityFilter(QualityFilterConfig(keep=["bad"]), ctx).process("in", data, T0) == ()
