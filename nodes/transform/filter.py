"""``transform.filter``: keep only the points for which an expression is true."""

from collections.abc import Iterator
from typing import Annotated

from msgspec import Meta

from nodes.expr import check
from nodes.spec import Category, ConfigProblem, NodeConfig, NodeSpec, points_in, points_out


class FilterConfig(NodeConfig, frozen=True):
    """
    Passes on only the points for which the condition is true and drops the others, e.g.
    value > 10 and quality == GOOD. The condition can use each point's value, quality, ts, series,
    tag and device.
    """

    expression: Annotated[
        str,
        Meta(
            min_length=1,
            description="Condition evaluated for every point; points where it is false are dropped.",
            examples=["value > 10 and quality == GOOD", 'tag == "temperature" and value < 90'],
            extra={"x-widget": "code", "x-language": "expression"},
            extra_json_schema={"x-widget": "code", "x-language": "expression"},
        ),
    ] = "value > 0"

    def problems(self) -> Iterator[ConfigProblem]:
        error = check(self.expression, "filter")
        if error is not None:
            yield ConfigProblem(
                "$.expression",
                error.message,
                "fix the condition; it can use value, quality, ts, series, tag and device",
                line=error.line,
                column=error.column,
            )


EXAMPLE = FilterConfig(expression="value > 10 and quality == GOOD")

SPEC = NodeSpec(
    type_id="transform.filter",
    version=1,
    category=Category.TRANSFORM,
    title="Filter",
    description="Keeps only the points for which a condition is true.",
    config=FilterConfig,
    example=EXAMPLE,
    inputs=(points_in(),),
    outputs=(points_out(),),
    stateful=False,
    icon="filter",
)
