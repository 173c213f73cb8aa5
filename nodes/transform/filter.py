"""``transform.filter``: keep only the points for which an expression is true."""

from collections.abc import Iterator
from typing import Annotated

from msgspec import Meta

from nodes.expr import check, compile_filter
from nodes.host import NO_OUTPUT, Data, Health, NodeContext, Operator, Outputs
from nodes.points import Batch
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


class Filter(Operator):
    """Runtime behaviour: keeps the points for which the compiled condition is true.

    Points whose evaluation fails are dropped and counted (``eval_errors``); the node reports
    WARNING health with the first failure's message while batches have failures, OK otherwise.
    """

    def __init__(self, config: FilterConfig, context: NodeContext) -> None:
        self._context = context
        self._filter = compile_filter(config.expression)
        self._warning = False

    def process(self, port: str, data: Data, now_ns: int) -> Outputs:
        if not isinstance(data, Batch) or not data.ts:
            return NO_OUTPUT
        keep, errors, first = self._filter.select_with_errors(data)
        if errors:
            self._context.count("eval_errors", errors)
            self._context.set_health(Health.WARNING, f"condition failed for some points: {first}")
            self._warning = True
        elif self._warning:
            self._context.set_health(Health.OK)
            self._warning = False
        if not keep:
            return NO_OUTPUT
        if len(keep) == len(data.ts):
            return (("out", data),)
        return (("out", data.take(keep)),)


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
    behaviour=Filter,
)
