"""``transform.scale``: linear scaling, unit conversion, rounding and type casts."""

from collections.abc import Iterator, Mapping
from types import MappingProxyType
from typing import Annotated, Literal

import msgspec
from msgspec import Meta

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
)
