"""``transform.expression``: compute a new series from the latest values of other series."""

from collections.abc import Iterator
from typing import Annotated

from msgspec import Meta

from nodes.expr import check
from nodes.spec import Category, ConfigProblem, NodeConfig, NodeSpec, points_in, points_out


class ExpressionConfig(NodeConfig, frozen=True):
    """
    Calculates a new value from other tags, such as power from voltage and current; refer to input
    tags by name, or as point["Voltage L1"] when the name has spaces. The node remembers the latest
    value of every input tag and emits the result as <device>/<tag> whenever one of them changes.
    """

    tag: Annotated[
        str,
        Meta(min_length=1, description="Tag name of the calculated value.", examples=["power_kw"]),
    ] = "power"
    device: Annotated[
        str,
        Meta(
            min_length=1,
            description="Device name used in the series key <device>/<tag> of the result.",
            examples=["calc"],
        ),
    ] = "calc"
    expression: Annotated[
        str,
        Meta(
            min_length=1,
            description="Formula that computes the result from the latest values of the input tags, "
            "which it names directly, e.g. voltage * current / 1000.",
            examples=["voltage * current / 1000", 'sqrt(3) * point["Voltage L1"] * point["Current L1"]'],
            extra={"x-widget": "code", "x-language": "expression"},
            extra_json_schema={"x-widget": "code", "x-language": "expression"},
        ),
    ] = "voltage * current / 1000"
    keep_inputs: Annotated[
        bool, Meta(description="Also pass the input points on unchanged, next to the calculated ones.")
    ] = True

    def problems(self) -> Iterator[ConfigProblem]:
        for field, name in (("tag", self.tag), ("device", self.device)):
            if not name.strip() or "/" in name:
                yield ConfigProblem(
                    f"$.{field}",
                    f"{name!r} cannot be used in a series key",
                    "use a non-empty name without '/'",
                )
        error = check(self.expression, "expression")
        if error is not None:
            yield ConfigProblem(
                "$.expression",
                error.message,
                "fix the formula",
                line=error.line,
                column=error.column,
            )


EXAMPLE = ExpressionConfig(
    tag="power_apparent_kva",
    device="calc",
    expression="sqrt(3) * voltage_l1 * current_l1 / 1000",
    keep_inputs=True,
)

SPEC = NodeSpec(
    type_id="transform.expression",
    version=1,
    category=Category.TRANSFORM,
    title="Expression",
    description="Calculates a new series from the latest values of other series.",
    config=ExpressionConfig,
    example=EXAMPLE,
    inputs=(points_in(),),
    outputs=(points_out(),),
    stateful=True,
    icon="calculator",
)
