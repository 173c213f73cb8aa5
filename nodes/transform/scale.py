"""``transform.scale``: linear scaling, unit conversion, rounding and type casts."""

import math
from collections.abc import Callable, Iterator, Mapping
from fnmatch import fnmatchcase
from types import MappingProxyType
from typing import Annotated, Any, Literal

import msgspec
from msgspec import Meta

from nodes.host import NO_OUTPUT, Data, NodeContext, Operator, Outputs
from nodes.points import Batch, Value
from nodes.spec import Category, ConfigProblem, NodeConfig, NodeSpec, points_in, points_out

Conversion = Literal[
    "none",
    "c_to_f",
    "f_to_c",
    "c_to_k",
    "k_to_c",
    "bar_to_psi",
    "psi_to_bar",
    "bar_to_kpa",
    "kpa_to_bar",
    "kw_to_w",
    "w_to_kw",
    "wh_to_kwh",
    "kwh_to_wh",
    "kwh_to_mwh",
    "m3h_to_lpm",
    "lpm_to_m3h",
    "mm_to_in",
    "in_to_mm",
    "rpm_to_hz",
    "hz_to_rpm",
]
Cast = Literal["none", "float", "int", "bool", "string"]

# Every conversion is linear: converted = value * factor + offset.
CONVERSIONS: Mapping[str, tuple[float, float]] = MappingProxyType(
    {
        "none": (1.0, 0.0),
        "c_to_f": (9.0 / 5.0, 32.0),
        "f_to_c": (5.0 / 9.0, -160.0 / 9.0),
        "c_to_k": (1.0, 273.15),
        "k_to_c": (1.0, -273.15),
        "bar_to_psi": (14.503773773, 0.0),
        "psi_to_bar": (1.0 / 14.503773773, 0.0),
        "bar_to_kpa": (100.0, 0.0),
        "kpa_to_bar": (0.01, 0.0),
        "kw_to_w": (1000.0, 0.0),
        "w_to_kw": (0.001, 0.0),
        "wh_to_kwh": (0.001, 0.0),
        "kwh_to_wh": (1000.0, 0.0),
        "kwh_to_mwh": (0.001, 0.0),
        "m3h_to_lpm": (1000.0 / 60.0, 0.0),
        "lpm_to_m3h": (60.0 / 1000.0, 0.0),
        "mm_to_in": (1.0 / 25.4, 0.0),
        "in_to_mm": (25.4, 0.0),
        "rpm_to_hz": (1.0 / 60.0, 0.0),
        "hz_to_rpm": (60.0, 0.0),
    }
)


class ScaleConfig(NodeConfig, frozen=True):
    """
    Scales values (value * factor + offset), then converts units, rounds and casts them, in that
    order. Non-numeric values pass unchanged unless a cast applies.
    """

    factor: Annotated[float, Meta(description="Multiplier applied first: value * factor + offset.")] = 1.0
    offset: Annotated[float, Meta(description="Added after the factor: value * factor + offset.")] = 0.0
    conversion: Annotated[
        Conversion,
        Meta(
            description="Unit conversion applied after factor and offset, e.g. c_to_f converts degrees "
            "Celsius to Fahrenheit."
        ),
    ] = "none"
    round_digits: Annotated[
        Annotated[int, Meta(ge=0, le=15)] | None,
        Meta(description="Round to this many decimal places after conversion; empty keeps full precision."),
    ] = None
    cast: Annotated[
        Cast,
        Meta(
            description="Type the value is finally cast to; none keeps the type. A value that cannot be cast "
            "passes with bad quality."
        ),
    ] = "none"
    tags: Annotated[
        list[str],
        Meta(
            description="Which series to change: tag names or series keys, glob patterns such as temp_* "
            "or line1/*/speed allowed; empty changes all series. Other series pass unchanged.",
            examples=[["temperature", "line1/*/pressure"]],
        ),
    ] = msgspec.field(default_factory=list)

    def problems(self) -> Iterator[ConfigProblem]:
        for i, pattern in enumerate(self.tags):
            if not pattern.strip():
                yield ConfigProblem(f"$.tags[{i}]", "empty tag pattern", "remove it or enter a tag name or glob")


_TRUE = frozenset({"true", "1", "yes", "on"})
_FALSE = frozenset({"false", "0", "no", "off"})
_MAX_CACHE = 100_000  # series keys remembered by the tag filter before it starts over


def _to_float(v: Value) -> float:
    return float(v.strip()) if isinstance(v, str) else float(v)


def _to_int(v: Value) -> int:
    """Decimals are cut, as in the expression language's int(); round first with round_digits."""
    if isinstance(v, str):
        text = v.strip()
        try:
            return int(text)
        except ValueError:
            return int(float(text))
    return int(v)


def _to_bool(v: Value) -> bool:
    if isinstance(v, str):
        text = v.strip().lower()
        if text in _TRUE:
            return True
        if text in _FALSE:
            return False
        raise ValueError(f"{v!r} is not a truth value")
    if isinstance(v, float) and math.isnan(v):
        raise ValueError("NaN is not a truth value")
    return bool(v)


def _to_string(v: Value) -> str:
    if v.__class__ is bool:
        return "true" if v else "false"
    return str(v)


_CASTS: dict[str, Callable[[Value], Value]] = {
    "float": _to_float,
    "int": _to_int,
    "bool": _to_bool,
    "string": _to_string,
}


class Scale(Operator):
    """Runtime behaviour: value * factor + offset, then the unit conversion (both folded into one
    multiply-add), then rounding, then the cast (the order the config documents: rounding before
    the cast, so round_digits=0 with cast=int rounds instead of truncating).

    Only int and float values are scaled and rounded (bool is not a number here); the cast applies to
    every value of a selected series. A value that cannot be cast keeps its value and gets BAD
    quality (counted as ``cast_errors``). Series not selected by ``tags`` pass unchanged.
    """

    def __init__(self, config: ScaleConfig, context: NodeContext) -> None:
        self._context = context
        factor, offset = CONVERSIONS[config.conversion]
        self._a = config.factor * factor
        self._b = config.offset * factor + offset
        self._linear = not (self._a == 1.0 and self._b == 0.0)
        self._digits = config.round_digits
        self._cast = _CASTS.get(config.cast)
        self._cast_kind = config.cast
        self._patterns = tuple(p.strip() for p in config.tags if p.strip())
        self._selected: dict[str, bool] = {}

    def _select(self, series: str) -> bool:
        tag = series.rpartition("/")[2]
        return any(fnmatchcase(tag, p) or fnmatchcase(series, p) for p in self._patterns)

    def process(self, port: str, data: Data, now_ns: int) -> Outputs:
        if not isinstance(data, Batch) or not data.ts:
            return NO_OUTPUT
        values: list[Any] = data.values
        mask: list[bool] | None = None
        if self._patterns:
            selected = self._selected
            if len(selected) > _MAX_CACHE:
                selected.clear()
            for s in set(data.series).difference(selected):
                selected[s] = self._select(s)
            mask = [selected[s] for s in data.series]
            if not any(mask):
                return (("out", data),)
            if all(mask):
                mask = None
        a, b = self._a, self._b
        if self._linear:
            if mask is None:
                values = [v * a + b if (c := v.__class__) is float or c is int else v for v in values]
            else:
                values = [
                    v * a + b if m and ((c := v.__class__) is float or c is int) else v
                    for v, m in zip(values, mask, strict=True)
                ]
        if self._digits is not None:
            values = self._round(values, mask)
        quality = data.quality
        if self._cast is not None:
            values, quality = self._apply_cast(values, quality, mask)
        if values is data.values and quality is data.quality:
            return (("out", data),)
        return (("out", Batch(data.ts, data.series, values, quality)),)

    def _round(self, values: list[Any], mask: list[bool] | None) -> list[Any]:
        """Floats rounded to ``round_digits`` decimals: ``round(v * 10**d) / 10**d`` (half to even),
        which is round(v, d) up to ties in the last binary digit and twice as fast; values it cannot
        handle (inf, NaN) go through round(v, d)."""
        digits = self._digits
        assert digits is not None
        p = 10.0**digits
        try:
            if mask is None:
                return [round(v * p) / p if v.__class__ is float else v for v in values]
            return [round(v * p) / p if m and v.__class__ is float else v for v, m in zip(values, mask, strict=True)]
        except (ValueError, OverflowError):
            if mask is None:
                return [round(v, digits) if v.__class__ is float else v for v in values]
            return [round(v, digits) if m and v.__class__ is float else v for v, m in zip(values, mask, strict=True)]

    def _fast_cast(self, values: list[Any]) -> list[Any]:
        """The cast of every value, numbers handled inline; raises if any value cannot be cast."""
        kind, cast = self._cast_kind, self._cast
        assert cast is not None
        if kind == "float":
            return [
                v if (c := v.__class__) is float else float(v) if c is int or c is bool else cast(v) for v in values
            ]
        if kind == "int":
            return [v if (c := v.__class__) is int else int(v) if c is float or c is bool else cast(v) for v in values]
        if kind == "string":
            return [str(v) if (c := v.__class__) is float or c is int else cast(v) for v in values]
        return [cast(v) for v in values]

    def _apply_cast(
        self, values: list[Any], quality: list[int], mask: list[bool] | None
    ) -> tuple[list[Any], list[int]]:
        cast = self._cast
        assert cast is not None
        if mask is None:
            try:
                return self._fast_cast(values), quality
            except (ValueError, TypeError, OverflowError):
                pass  # some value cannot be cast: redo point by point to isolate it
        out: list[Any] = list(values)
        bad: list[int] = []
        for i, v in enumerate(values):
            if mask is not None and not mask[i]:
                continue
            try:
                out[i] = cast(v)
            except (ValueError, TypeError, OverflowError):
                bad.append(i)
        if bad:
            self._context.count("cast_errors", len(bad))
            quality = list(quality)
            for i in bad:
                quality[i] = 2
        return out, quality


EXAMPLE = ScaleConfig(factor=0.1, conversion="c_to_f", round_digits=1, tags=["temperature*"])

SPEC = NodeSpec(
    type_id="transform.scale",
    version=1,
    category=Category.TRANSFORM,
    title="Scale & convert",
    description="Scales values, converts units, rounds and casts types.",
    config=ScaleConfig,
    example=EXAMPLE,
    inputs=(points_in(),),
    outputs=(points_out(),),
    stateful=False,
    icon="ruler",
    behaviour=Scale,
)
