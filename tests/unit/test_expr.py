"""Tests of the filter/expression language (nodes.expr)."""

from __future__ import annotations

import math
import pickle
import string
from typing import Any
from unittest import mock

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from nodes import expr
from nodes.expr import (
    CONSTANTS,
    FILTER_FIELDS,
    FUNCTIONS,
    EvaluationError,
    ExpressionError,
    check,
    compile_expression,
    compile_filter,
)
from nodes.points import Batch, Value

SECOND = 1_000_000_000


def make_batch(*points: tuple[str, Value] | tuple[str, Value, int] | tuple[str, Value, int, int]) -> Batch:
    """A batch from (series, value[, quality[, ts_ns]]) tuples; ts defaults to i seconds."""
    batch = Batch.empty()
    for i, point in enumerate(points):
        series, value = point[0], point[1]
        quality = point[2] if len(point) > 2 else 0
        ts = point[3] if len(point) > 3 else i * SECOND
        batch.ts.append(ts)
        batch.series.append(series)
        batch.values.append(value)
        batch.quality.append(quality)
    return batch


MIXED = make_batch(
    ("plc1/temperature", 21.5, 0, 1_700_000_000 * SECOND),
    ("plc1/pressure", 3, 0, 1_700_000_001 * SECOND),
    ("plc2/temperature", 80.25, 1, 1_700_000_002 * SECOND),
    ("plc2/state", "running", 0, 1_700_000_003 * SECOND),
    ("site/area/plc3/Voltage L1", 230.0, 2, 1_700_000_004 * SECOND),
    ("plc1/alarm", True, 0, 1_700_000_005 * SECOND),
)


# --------------------------------------------------------------------------------------------
# Filters
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("True", [0, 1, 2, 3, 4, 5]),
        ("False", []),
        ("quality == GOOD", [0, 1, 3, 5]),
        ("quality != GOOD", [2, 4]),
        ("quality == UNCERTAIN or quality == BAD", [2, 4]),
        ("quality in (UNCERTAIN, BAD)", [2, 4]),
        ("quality in (1, 2)", [2, 4]),
        ("quality not in [1, 2]", [0, 1, 3, 5]),
        ("tag == 'temperature'", [0, 2]),
        ('device == "plc2"', [2, 3]),
        ("device == 'site' and tag == 'Voltage L1'", [4]),
        ("series == 'plc1/pressure'", [1]),
        ("startswith(series, 'plc1/')", [0, 1, 5]),
        ("endswith(tag, 'ure')", [0, 1, 2]),
        ("contains(series, 'area')", [4]),
        ("tag in ('state', 'alarm', 'x', 'y', 'z')", [3, 5]),
        ("value == 'running'", [3]),
        ("tag == 'state' and value != 'stopped'", [3]),
        ("ts >= 1_700_000_002", [2, 3, 4, 5]),
        ("1_700_000_001 < ts < 1_700_000_004", [2, 3]),
        ('point["ts"] > 1700000004.5', [5]),
        ('point["quality"] == BAD', [4]),
        ('point["tag"] == "Voltage L1"', [4]),
        ("len(tag) > 8", [0, 2, 4]),
        ("tag < 'q'", [1, 4, 5]),  # string ordering; 'V' < 'a'
        ("not (quality == GOOD)", [2, 4]),
        ("(quality if quality > 0 else 10) >= 2", [0, 1, 3, 4, 5]),
    ],
)
def test_filter_selects(source: str, expected: list[int]) -> None:
    indices, errors, first = compile_filter(source).select_with_errors(MIXED)
    assert (indices, errors, first) == (expected, 0, None)
    assert compile_filter(source).select(MIXED) == expected


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("value > 10", [2, 3, 4]),
        ("value > 10 and quality == GOOD", [2, 3]),
        ("value * 2 > 30", [3, 4]),
        ("2 + 3 * value > 40", [3, 4]),  # precedence: 2 + (3 * value)
        ("(2 + 3) * value > 40", [1, 2, 3, 4]),
        ("value ** 2 >= 100", [1, 2, 3, 4]),
        ("-value < -10", [2, 3, 4]),
        ("value % 2 == 0", [0, 1, 3, 4]),
        ("value // 10 == 1", [1, 2]),
        ("value / 4 == 2.5", [1]),
        ("abs(value - 20) < 6", [3]),
        ("sqrt(abs(value)) > 3", [1, 2, 3, 4]),
        ("clamp(value, 5, 20) == 20", [3, 4]),
        ("round(value / 3) == 4", [2]),
        ("round(value, 1) == 12.3", [2]),
        ("max(value, 15) == 15", [0, 1, 2, 5]),
        ("min(value, 15, 100) == value", [0, 1, 2, 5]),
        ("floor(value) == 12", [2]),
        ("ceil(value) == 13", [2]),
        ("int(value) == 12", [2]),
        ("float(value) == 10.0", [1]),
        ("str(value) == '10'", [1]),
        ("bool(value)", [1, 2, 3, 4, 5]),
        ("value", [1, 2, 3, 4, 5]),
        ("value > 0 and log10(value) == 1", [1]),  # `and` short-circuits: no log10(0)
        ("value > 0 and exp(log(value)) > 99", [4]),
        ("sin(0) == 0 and cos(0) == 1 and tan(0) == 0", [0, 1, 2, 3, 4, 5]),
        ("value > pi * 4 and value < e ** 4", [3]),
        ("value in (0, 10, 1e3)", [0, 1]),
        ("value == 0 or value == 1000", [0]),
        ("value if quality == GOOD else 0", [1, 2, 3]),
        ("value > 10 if quality == GOOD else value < 10", [2, 3, 5]),
        ("value > 0 and log(value, 10) == 1", [1]),
    ],
)
def test_filter_numeric(source: str, expected: list[int]) -> None:
    batch = make_batch(("d/a", 0), ("d/a", 10), ("d/a", 12.34), ("d/a", 20, 0), ("d/a", 100, 2), ("d/b", -5, 1))
    assert compile_filter(source).select_with_errors(batch) == (expected, 0, None)


def test_filter_empty_batch() -> None:
    assert compile_filter("value > 1").select_with_errors(Batch.empty()) == ([], 0, None)
    assert compile_filter("True").select(Batch.empty()) == []


def test_filter_keeps_good_points_when_one_fails() -> None:
    batch = make_batch(("d/a", 5), ("d/a", "not a number"), ("d/a", 50), ("d/a", 500))
    indices, errors, first = compile_filter("value > 10").select_with_errors(batch)
    assert indices == [2, 3]
    assert errors == 1
    assert first is not None and "not supported" in first
    assert compile_filter("value > 10").select(batch) == [2, 3]


def test_filter_isolates_division_by_zero_and_math_errors() -> None:
    batch = make_batch(("d/a", 0), ("d/a", 2), ("d/a", -4), ("d/a", 0.5))
    assert compile_filter("10 / value > 1").select_with_errors(batch) == (
        [1, 3],
        1,
        "division by zero",
    )
    indices, errors, _ = compile_filter("sqrt(value) < 1").select_with_errors(batch)
    assert (indices, errors) == ([0, 3], 1)


def test_filter_without_fields_failing_everywhere() -> None:
    batch = make_batch(("d/a", 1), ("d/a", 2))
    indices, errors, first = compile_filter("sqrt(-1) > 0 or True").select_with_errors(batch)
    assert (indices, errors) == ([], 2)
    assert first == "math domain error"


def test_filter_runtime_power_is_guarded() -> None:
    # 1e6 ** 1e6 and 10**6 ** 10**6 must fail fast (counted), not hang or allocate gigabytes.
    batch = make_batch(("d/a", 1e6), ("d/a", 1_000_000), ("d/a", 2), ("d/a", -8))
    indices, errors, first = compile_filter("value ** value > 1").select_with_errors(batch)
    assert indices == [2]
    assert errors == 2  # the two huge exponents; (-8) ** -8 is a small float, not selected
    assert first is not None and "too large" in first


def test_runtime_power_refusals() -> None:
    pow_expr = compile_expression("a ** b")
    assert pow_expr.evaluate({"a": 2, "b": 64}) == 2**64
    assert pow_expr.evaluate({"a": 2.0, "b": -3}) == 0.125
    refused: list[tuple[Value, Value]] = [
        (10, 65), (2, -100), (1e300, 2.0), (-8, 0.5), (10**2000, 60), ("x", 2), (2, math.inf),
    ]  # fmt: skip
    for a, b in refused:
        with pytest.raises(EvaluationError):
            pow_expr.evaluate({"a": a, "b": b})
    # A chain of powers of constants is folded at compile time and guarded the same way.
    with pytest.raises(ExpressionError, match="too large"):
        compile_expression("((10 ** 64) ** 64) ** 64")


def test_runtime_string_repetition_is_guarded() -> None:
    repeat = compile_expression("a * b")
    assert repeat.evaluate({"a": "ab", "b": 3}) == "ababab"
    assert repeat.evaluate({"a": 3, "b": 4}) == 12
    with pytest.raises(EvaluationError, match="repeated"):
        repeat.evaluate({"a": "x", "b": 10**9})
    with pytest.raises(EvaluationError, match="repeated"):
        compile_expression("(a * 9999) * 9999").evaluate({"a": "abcdef"})
    with pytest.raises(ExpressionError, match="repeated"):
        compile_filter("series * 100000 == 'x'")


def test_runtime_text_formatting_and_round_are_guarded() -> None:
    with pytest.raises(EvaluationError):
        compile_expression("a % 3").evaluate({"a": "%0999999999d"})
    assert compile_expression("a % 3").evaluate({"a": 7}) == 1
    with pytest.raises(EvaluationError, match="digits"):
        compile_expression("round(a, -1000000000)").evaluate({"a": 5})
    assert compile_expression("round(a, -1)").evaluate({"a": 15}) == 20


def test_filter_generated_code_uses_only_referenced_columns() -> None:
    f = compile_filter("value > 10 and quality == GOOD")
    assert f.fields == ("value", "quality")
    assert "_zip(_c_value, _c_quality)" in f.code
    assert "(value > 10)" in f.code and "(quality == 0)" in f.code
    assert "series" not in f.code and "ts_ns" not in f.code
    one = compile_filter("tag == 'x'")
    assert one.fields == ("tag",)
    assert "_enumerate(_c_tag)" in one.code and "_zip" not in one.code
    assert compile_filter("1 < 2").fields == ()


def test_generated_code_has_no_builtins() -> None:
    f = compile_filter("value > 1")
    globals_ = f._fast.__globals__  # inspecting the sandbox on purpose
    assert globals_["__builtins__"] == {}
    assert all(name.startswith("_") for name in globals_)


def test_constant_folding() -> None:
    assert "1024" in compile_filter("value > 2 ** 10").code
    assert compile_expression("1 + 2 * 3 - 4 / 2").evaluate({}) == 5.0
    assert compile_expression("-2 ** 2").evaluate({}) == -4  # ** binds tighter than unary minus
    assert compile_expression("(-2) ** 2").evaluate({}) == 4
    assert compile_expression("2 ** -1").evaluate({}) == 0.5
    assert compile_expression("1e999 > 0").evaluate({}) is True
    nan = compile_expression("1e999 - 1e999 + a").evaluate({"a": 1})
    assert isinstance(nan, float) and math.isnan(nan)


# --------------------------------------------------------------------------------------------
# Expressions
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("source", "env", "expected"),
    [
        ("voltage * current / 1000", {"voltage": 230, "current": 10}, 2.3),
        ("a + b * c", {"a": 1, "b": 2, "c": 3}, 7),
        ("(a + b) * c", {"a": 1, "b": 2, "c": 3}, 9),
        ("a - b - c", {"a": 10, "b": 2, "c": 3}, 5),
        ("a ** b ** c", {"a": 2, "b": 3, "c": 2}, 512),
        ("a // b", {"a": 7, "b": 2}, 3),
        ("a % b", {"a": 7, "b": 2}, 1),
        ("-a", {"a": 3}, -3),
        ("+a", {"a": 3}, 3),
        ("not a", {"a": 0}, True),
        ('point["Voltage L1"] * 2', {"Voltage L1": 115}, 230),
        ('point["temp.°C"] + 1', {"temp.°C": 20}, 21),
        ("point['if'] + point['class']", {"if": 1, "class": 2}, 3),
        ("a if a > b else b", {"a": 3, "b": 4}, 4),
        ("'hot' if t > 80 else 'ok'", {"t": 90}, "hot"),
        ("a if ok else None", {"a": 1, "ok": False}, None),
        ("state in ('run', 'idle')", {"state": "idle"}, True),
        ("state not in ['run', 'idle']", {"state": "idle"}, False),
        ("code in (-1, -2)", {"code": -2}, True),
        ("name + '_x'", {"name": "pump"}, "pump_x"),
        ("name == 'pump' and level >= 3", {"name": "pump", "level": 3}, True),
        ("name < 'q'", {"name": "pump"}, True),
        ("q == BAD", {"q": 2}, True),
        ("UNCERTAIN + GOOD", {}, 1),
        ("pi", {}, math.pi),
        ("e", {}, math.e),
        ("clamp(x, 0, 100)", {"x": 150}, 100),
        ("clamp(x, 0, 100)", {"x": -3}, 0),
        ("clamp(x, 0, 100)", {"x": 42}, 42),
        ("max(a, b, c)", {"a": 1, "b": 5, "c": 3}, 5),
        ("min(a, b)", {"a": "b", "b": "a"}, "a"),
        ("round(x, 2)", {"x": 3.14159}, 3.14),
        ("round(x)", {"x": 2.5}, 2),
        ("int(s) + 1", {"s": "41"}, 42),
        ("float(s)", {"s": "1.5"}, 1.5),
        ("str(x) + 'V'", {"x": 12}, "12V"),
        ("bool(x)", {"x": ""}, False),
        ("len(s)", {"s": "abc"}, 3),
        ("startswith(s, 'ab') and endswith(s, 'c') and contains(s, 'b')", {"s": "abc"}, True),
        ("abs(x)", {"x": -2.5}, 2.5),
        ("sqrt(x)", {"x": 16}, 4.0),
        ("floor(x) + ceil(x)", {"x": 1.5}, 3),
        ("log(e)", {}, 1.0),
        ("value * quality", {"value": 2, "quality": 3}, 6),  # plain tag names in this mode
        ("eval + open", {"eval": 1, "open": 2}, 3),  # bare names are tags, not builtins
        ("_private + 1", {"_private": 1}, 2),
        ("1 < x < 3", {"x": 2}, True),
        ("(a +\n 1)", {"a": 1}, 2),
        ("  a + 1  ", {"a": 1}, 2),
        ("a + 1  # a comment", {"a": 1}, 2),
    ],
)
def test_expression_evaluate(source: str, env: dict[str, Value], expected: Value | None) -> None:
    result = compile_expression(source).evaluate(env)
    if isinstance(expected, float):
        assert result == pytest.approx(expected)
    else:
        assert result == expected
        assert type(result) is type(expected)


def test_expression_inputs_in_first_appearance_order() -> None:
    assert compile_expression("voltage * current / 1000").inputs == ("voltage", "current")
    assert compile_expression("b if a > c else b + d").inputs == ("b", "a", "c", "d")
    assert compile_expression('point["x y"] + x + point["x"] + pi').inputs == ("x y", "x")
    assert compile_expression("sqrt(2) * GOOD").inputs == ()


def test_expression_tag_names_are_taken_as_typed() -> None:
    # Python normalises identifiers (NFKC): the micro sign would become a Greek mu.
    e = compile_expression("Iµ * 2")
    assert e.inputs == ("Iµ",)
    assert e.evaluate({"Iµ": 3}) == 6
    assert compile_expression("Iμ * 2").inputs == ("Iμ",)  # a real Greek mu stays one
    assert compile_expression('point["Iµ"] + Iµ').inputs == ("Iµ",)


def test_overflow_message() -> None:
    with pytest.raises(EvaluationError, match="too large"):
        compile_expression("x ** 2").evaluate({"x": 1e300})
    with pytest.raises(EvaluationError, match="too large"):
        compile_expression("exp(x)").evaluate({"x": 1e300})


def test_expression_evaluate_columns() -> None:
    e = compile_expression("voltage * current / 1000")
    results, errors, first = e.evaluate_columns({"voltage": [230, 400, 12], "current": [10, 5, 0]})
    assert results == [2.3, 2.0, 0.0]
    assert (errors, first) == (0, None)
    assert "_zip(_c0, _c1)" in e.code


def test_expression_evaluate_columns_isolates_failures() -> None:
    e = compile_expression("a / b")
    results, errors, first = e.evaluate_columns({"a": [1, 2, "x", 4], "b": [1, 0, 1, 2]})
    assert results == [1.0, None, None, 2.0]
    assert errors == 2
    assert first == "division by zero"


def test_expression_evaluate_columns_edge_cases() -> None:
    assert compile_expression("1 + 1").evaluate_columns({"other": [5, 6, 7]}) == ([2, 2, 2], 0, None)
    assert compile_expression("1 + 1").evaluate_columns({}) == ([], 0, None)
    assert compile_expression("a").evaluate_columns({"a": []}) == ([], 0, None)
    with pytest.raises(EvaluationError, match="'b'"):
        compile_expression("a + b").evaluate_columns({"a": [1]})
    with pytest.raises(EvaluationError, match="lengths"):
        compile_expression("a + b").evaluate_columns({"a": [1], "b": [1, 2]})


def test_expression_evaluate_errors() -> None:
    e = compile_expression('voltage * point["current A"]')
    with pytest.raises(EvaluationError, match="current A"):
        e.evaluate({"voltage": 1})
    with pytest.raises(EvaluationError, match=r"unsupported operand"):
        compile_expression("a - b").evaluate({"a": "x", "b": 1})
    with pytest.raises(EvaluationError, match="division by zero"):
        compile_expression("a / 0").evaluate({"a": 1})
    with pytest.raises(EvaluationError, match="text"):
        compile_expression("len(a)").evaluate({"a": 5})
    assert issubclass(EvaluationError, ValueError)


def test_point_fields_equal_bare_names_in_filters() -> None:
    for name in FILTER_FIELDS:
        bare = compile_filter(f"{name} == {name}")
        subscripted = compile_filter(f'point["{name}"] == {name}')
        assert bare.code == subscripted.code


# --------------------------------------------------------------------------------------------
# Rejections, with positions
# --------------------------------------------------------------------------------------------

BOTH = ("filter", "expression")


@pytest.mark.parametrize(
    ("source", "line", "column", "fragment"),
    [
        ("value.__class__", 1, 7, "attribute access is not allowed"),
        ("x.real", 1, 3, "attribute access"),
        ("1 + value . real", 1, 13, "attribute access"),
        ("__import__('os')", 1, 1, "'__'"),
        ("1 + __builtins__", 1, 5, "'__'"),
        ("lambda: 1", 1, 1, "lambda"),
        ("(lambda x: x)(1)", 1, 2, "lambda"),
        ("[x for x in (1, 2)]", 1, 1, "comprehensions"),
        ("{x for x in (1, 2)}", 1, 1, "comprehensions"),
        ("{x: 1 for x in (1, 2)}", 1, 1, "comprehensions"),
        ("1 + (x for x in (1, 2))", 1, 5, "generator"),
        ("f'{value}'", 1, 1, "f-strings"),
        ("1 + f'a'", 1, 5, "f-strings"),
        ("round(1.5, ndigits=2)", 1, 12, "keyword arguments"),
        ("max(1, 2, **{'key': 1})", 1, 11, "**"),
        ("eval('1')", 1, 1, "unknown function 'eval'"),
        ("1 + open('/etc/passwd')", 1, 5, "unknown function 'open'"),
        ("getattr(1, 'real')", 1, 1, "unknown function 'getattr'"),
        ("'a'.upper()", 1, 5, "method calls are not allowed"),
        ("sqrt(2).hex()", 1, 9, "method calls"),
        ("point['value'](1)", 1, 1, "only functions can be called"),
        ("(1)(2)", 1, 2, "only functions can be called"),
        ("abs(1, 2)", 1, 1, "abs() takes 1 argument (2 given)"),
        ("max(1)", 1, 1, "at least 2"),
        ("round()", 1, 1, "1 or 2"),
        ("sqrt", 1, 1, "is a function"),
        ("x[0]", 1, 1, "brackets are only allowed after point"),
        ("'abc'[0]", 1, 1, "brackets"),
        ("point[value]", 1, 7, "needs a name in quotes"),
        ("point[1]", 1, 7, "needs a name in quotes"),
        ("point['a' + 'b']", 1, 7, "needs a name in quotes"),
        ("point['a', 'b']", 1, 7, "needs a name in quotes"),
        ("point[1:2]", 1, 7, "slices"),
        ("point", 1, 1, "point must be followed"),
        ("2 ** 100000", 1, 6, "exponent is too large"),
        ("10 ** 10 ** 10", 1, 7, "exponent is too large"),
        ("2 ** -65", 1, 6, "exponent is too large"),
        ("2 ** (60 + 5)", 1, 7, "exponent is too large"),
        ("(x := 1)", 1, 2, ":="),
        ("max(*(1, 2))", 1, 5, "unpacking with *"),
        ("{'a': 1}", 1, 1, "dict"),
        ("{1, 2}", 1, 1, "set literals"),
        ("1 in {1, 2}", 1, 6, "use a tuple"),
        ("(1, 2)", 1, 1, "only allowed after 'in'"),
        ("[1] == [1]", 1, 1, "only allowed after 'in'"),
        ("1 in ('a', x)", 1, 12, "only constants"),
        ("1 in ('a', BAD, -1, +2.5, None, True)", None, None, ""),
        ("'a' in 'abc'", 1, 8, "contains("),
        ("1 is None", 1, 3, "'is' is not allowed"),
        ("1 is not None", 1, 3, "'is' is not allowed"),
        ("1 & 2", 1, 3, "use 'and'"),
        ("1 | 2", 1, 3, "use 'or'"),
        ("2 ^ 3", 1, 3, "use **"),
        ("1 << 2", 1, 3, "shift"),
        ("~1", 1, 1, "~"),
        ("'%s' % 1", 1, 6, "% is not defined for text"),
        ("1j + 1", 1, 1, "complex"),
        ("b'x'", 1, 1, "bytes"),
        ("...", 1, 1, "is not allowed"),
        ("1 / 0", 1, 1, "division by zero"),
        ("await 1", 1, 1, "await"),
        ('1 + point["a"].b', 1, 16, "attribute access"),
        ("(1 +\n  2).real", 2, 6, "attribute access"),
        ("(1 +\r\n  x.y)", 2, 5, "attribute access"),
        ("(1 +\r  x.y)", 2, 5, "attribute access"),
        ('min("µ°", (x).y)', 1, 15, "attribute access"),  # columns count characters, not bytes
        ("  x.y", 1, 5, "attribute access"),  # leading whitespace is stripped but counted
        ("\n\n  x.y", 3, 5, "attribute access"),
    ],
)
@pytest.mark.parametrize("mode", BOTH)
def test_rejections(source: str, line: int | None, column: int | None, fragment: str, mode: Any) -> None:
    error = check(source, mode)
    if line is None:  # a near miss that is valid
        assert error is None, str(error)
        return
    assert error is not None, source
    assert fragment in error.message
    assert (error.line, error.column) == (line, column), str(error)
    # offset, line and column describe the same place.
    before = source[: error.offset]
    assert error.line == before.count("\n") + before.count("\r") - before.count("\r\n") + 1
    assert str(error) == f"line {line}, column {column}: {error.message}"
    compile_fn = compile_filter if mode == "filter" else compile_expression
    with pytest.raises(ExpressionError) as raised:
        compile_fn(source)
    assert (raised.value.message, raised.value.offset) == (error.message, error.offset)


@pytest.mark.parametrize(
    ("source", "line", "column", "fragment"),
    [
        ("voltage > 1", 1, 1, "unknown name 'voltage'"),
        ("value > 1 and x", 1, 15, "unknown name 'x'"),
        ('point["Voltage L1"] > 1', 1, 7, "unknown name 'Voltage L1'"),
    ],
)
def test_filter_rejects_unknown_names(source: str, line: int, column: int, fragment: str) -> None:
    error = check(source, "filter")
    assert error is not None
    assert fragment in error.message
    assert (error.line, error.column) == (line, column)
    assert check(source, "expression") is None


def test_expression_error_attributes() -> None:
    with pytest.raises(ExpressionError) as raised:
        compile_filter("value.__class__")
    error = raised.value
    assert isinstance(error, ValueError)
    assert (error.offset, error.line, error.column) == (6, 1, 7)
    assert str(error) == ('line 1, column 7: attribute access is not allowed (use point["name"] for tag names)')
    copy = pickle.loads(pickle.dumps(error))
    assert (copy.message, copy.offset, copy.line, copy.column) == (
        error.message,
        error.offset,
        error.line,
        error.column,
    )


@pytest.mark.parametrize(
    ("source", "line", "column", "fragment"),
    [
        ("value >", 1, 8, "syntax error"),
        ("value > > 1", 1, 9, "syntax error"),
        ("(value > 1", 1, 1, "never closed"),
        ("value > 1)", 1, 10, "syntax error"),
        ("value = 1", 1, 7, "syntax error"),
        ("(value >\n  1 +)", 2, 6, "syntax error"),
        ("value >\n 1", 1, 8, "syntax error"),  # newlines need parentheses
        ('"abc', 1, 1, "syntax error"),
        ("value > 1; 2", 1, 10, "syntax error"),
        ("x if", 1, 5, "syntax error"),
        ("µµ µ", 1, 4, "syntax error"),  # character columns
        ("", 1, 1, "empty"),
        ("   \n\t", 1, 1, "empty"),
        ("a\x00b", 1, 2, "not allowed"),
        ("a + '\ud800'", 1, 6, "not allowed"),
        ("(" * 300, 1, 201, "syntax error"),
    ],
)
def test_syntax_errors(source: str, line: int, column: int, fragment: str) -> None:
    for mode in BOTH:
        error = check(source, mode)  # type: ignore[arg-type]
        assert error is not None
        assert fragment in error.message, error.message
        assert (error.line, error.column) == (line, column), str(error)
        assert 0 <= error.offset <= len(source)


def test_too_long() -> None:
    source = "1 + " * 1000 + "1"
    assert len(source) > expr.MAX_SOURCE_LENGTH
    error = check(source, "expression")
    assert error is not None
    assert "too long" in error.message
    assert error.offset == expr.MAX_SOURCE_LENGTH
    assert check("a" * 4000, "expression") is None  # exactly at the limit


@pytest.mark.parametrize(
    "source",
    [
        "(" * 49 + "1" + ")" * 49 + " + " + "-" * 60 + "1",
        "-" * 3000 + "1",
        "not " * 60 + "x",
        "+".join(["1"] * 60),
        "abs(" * 60 + "1" + ")" * 60,
        "1 if value else " * 60 + "1",
        "(" * 150 + "1" + ")" * 150 + "+ x" * 50,
    ],
)
def test_too_deep(source: str) -> None:
    for mode in BOTH:
        error = check(source, mode)  # type: ignore[arg-type]
        assert error is not None
        assert "nested too deeply" in error.message


def test_nesting_at_the_limit_is_fine() -> None:
    assert compile_expression("-" * 49 + "1").evaluate({}) == -1
    assert compile_expression("+".join(["1"] * 50)).evaluate({}) == 50


# --------------------------------------------------------------------------------------------
# check(), help tables
# --------------------------------------------------------------------------------------------


def test_check_valid() -> None:
    assert check("value > 10 and quality == GOOD", "filter") is None
    assert check("voltage * current / 1000", "expression") is None
    with pytest.raises(ValueError, match="mode"):
        check("1", "other")  # type: ignore[arg-type]


def test_check_never_executes() -> None:
    with mock.patch.object(expr, "_load", side_effect=AssertionError("executed")):
        assert check("value > 1", "filter") is None
        assert check("a * b", "expression") is None
        assert check("eval('1')", "expression") is not None


def test_help_tables() -> None:
    assert set(FUNCTIONS) == {
        "abs", "min", "max", "round", "sqrt", "log", "log10", "exp", "sin", "cos", "tan", "floor",
        "ceil", "clamp", "int", "float", "bool", "str", "len", "startswith", "endswith", "contains",
    }  # fmt: skip
    assert set(CONSTANTS) == {"pi", "e", "GOOD", "UNCERTAIN", "BAD"}
    for name, doc in {**FUNCTIONS, **CONSTANTS, **FILTER_FIELDS}.items():
        assert doc.startswith(name) and "\n" not in doc
    for name in FUNCTIONS:  # each documented function is usable as documented
        assert check(FUNCTIONS[name].split(":")[0].split(" or ")[0].replace("...", "c"), "expression") is None


# --------------------------------------------------------------------------------------------
# Properties
# --------------------------------------------------------------------------------------------


@settings(max_examples=500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.text(alphabet=string.printable, max_size=200))
def test_check_printable_never_raises_or_executes(source: str) -> None:
    with mock.patch.object(expr, "_load", side_effect=AssertionError("executed")):
        for mode in BOTH:
            result = check(source, mode)  # type: ignore[arg-type]
            assert result is None or isinstance(result, ExpressionError)
            if result is not None:
                assert 0 <= result.offset <= len(source)
                assert result.line >= 1 and result.column >= 1


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=100))
def test_check_any_text_never_raises(source: str) -> None:
    for mode in BOTH:
        result = check(source, mode)  # type: ignore[arg-type]
        assert result is None or isinstance(result, ExpressionError)


_ATOMS = st.sampled_from(
    [
        "value", "quality", "ts", "series", "tag", "device", "x", "point['value']", "point['a b']",
        "0", "1", "-1", "2.5", "1e308", "10", "64", "65", "1000000", "'abc'", "''", "True", "None",
        "pi", "GOOD", "BAD", "(1, 2)", "[1, 'a']", "x.y", "__class__", "_k0",
    ]
)  # fmt: skip
_OPERATORS = st.sampled_from(
    [" + ", " - ", " * ", " / ", " // ", " % ", " ** ", " == ", " < ", " >= ", " in ", " not in ",
     " and ", " or ", " if ", " else ", " is ", " & "]
)  # fmt: skip
_FUNCTION_NAMES = st.sampled_from([*FUNCTIONS, "eval", "getattr"])


@st.composite
def _expressions(draw: st.DrawFn, depth: int = 0) -> str:
    choice = draw(st.integers(0, 5 if depth < 4 else 0))
    if choice == 0:
        return draw(_ATOMS)
    if choice in (1, 2):
        return draw(_expressions(depth + 1)) + draw(_OPERATORS) + draw(_expressions(depth + 1))
    if choice == 3:
        return "(" + draw(_expressions(depth + 1)) + ")"
    if choice == 4:
        return draw(st.sampled_from(["-", "not ", "+"])) + draw(_expressions(depth + 1))
    args = draw(st.lists(_expressions(depth + 1), min_size=0, max_size=3))
    return f"{draw(_FUNCTION_NAMES)}({', '.join(args)})"


FUZZ_BATCH = make_batch(
    ("plc1/a", 0), ("plc1/b", 1.5), ("plc2/c", -3), ("d/e", "abc"), ("d/f", True), ("g", 1e300),
    ("h/i", 10**6), ("h/j", math.nan), ("h/k", ""),
)  # fmt: skip


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_expressions())
def test_compiled_expressions_never_crash(source: str) -> None:
    """Whatever compiles evaluates without raising: failures are counted per point."""
    try:
        f = compile_filter(source)
    except ExpressionError:
        pass
    else:
        indices, errors, first = f.select_with_errors(FUZZ_BATCH)
        assert len(indices) + errors <= len(FUZZ_BATCH)
        assert (errors == 0) == (first is None)
    try:
        e = compile_expression(source)
    except ExpressionError:
        return
    columns = {name: list(FUZZ_BATCH.values) for name in e.inputs}
    results, errors, first = e.evaluate_columns(columns)
    assert len(results) == (len(FUZZ_BATCH) if e.inputs else 0)
    assert (errors == 0) == (first is None)
