"""``transform.expression``: compute a new series from the latest values of other series."""

from collections.abc import Iterator
from typing import Annotated, Any

from msgspec import Meta

from nodes.expr import check, compile_expression
from nodes.host import NO_OUTPUT, Data, Health, NodeContext, Operator, Outputs
from nodes.points import Batch, Value
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


_MAX_CACHE = 100_000  # series keys remembered before the cache starts over


class ExpressionBehaviour(Operator):
    """Runtime behaviour: the latest value of every input, and the result at each update.

    Matching inputs to series: a name without '/' (``voltage``, ``point["Voltage L1"]``) matches
    every series whose tag -- the last segment of the key -- is that name, whatever the device
    (the latest of them wins); a name with '/' (``point["meter1/voltage"]``) matches the series key
    itself or any key ending in ``/meter1/voltage`` (so it survives a mapping into the unified
    namespace). One series may feed several inputs.

    Points are applied in time order. At every distinct timestamp where an input received a value
    and all inputs are known, the expression is evaluated (one vectorised call per batch) and the
    result emitted as ``<device>/<tag>`` at that timestamp, with the worst quality of the inputs'
    current values. A point older than the input's current value is ignored. An expression
    without inputs yields a value at every distinct timestamp. Failed evaluations are counted
    (``eval_errors``) and emit nothing; health is WARNING while batches have failures.
    """

    def __init__(self, config: ExpressionConfig, context: NodeContext) -> None:
        self._context = context
        self._expression = compile_expression(config.expression)
        self._inputs = self._expression.inputs
        self._output = f"{config.device}/{config.tag}"
        self._keep_inputs = config.keep_inputs
        n = len(self._inputs)
        self._values: list[Any] = [None] * n
        self._quality: list[int] = [0] * n
        self._ts: list[int | None] = [None] * n
        self._matches: dict[str, tuple[int, ...]] = {}
        self._warning = False

    def _match(self, series: str) -> tuple[int, ...]:
        tag = series.rpartition("/")[2]
        found = []
        for k, name in enumerate(self._inputs):
            if "/" in name:
                if series == name or series.endswith("/" + name):
                    found.append(k)
            elif tag == name:
                found.append(k)
        return tuple(found)

    def process(self, port: str, data: Data, now_ns: int) -> Outputs:
        if not isinstance(data, Batch) or not data.ts:
            return NO_OUTPUT
        ts, series, values, quality = data.ts, data.series, data.values, data.quality
        matches = self._matches
        if len(matches) > _MAX_CACHE:
            matches.clear()
        for s in set(series).difference(matches):
            matches[s] = self._match(s)
        cur_v, cur_q, cur_t = self._values, self._quality, self._ts
        # The points that feed an input (every point, for an expression without inputs).
        relevant = [i for i, s in enumerate(series) if matches[s]] if self._inputs else list(range(len(ts)))
        relevant.sort(key=ts.__getitem__)  # stable: equal times keep batch order
        rows_ts: list[int] = []
        rows: list[tuple[Any, ...]] = []
        rows_q: list[int] = []
        complete = None not in cur_t
        changed = False
        previous = 0  # the time of the points being applied (nothing is recorded before the first)
        for i in relevant:
            t = ts[i]
            if t != previous:
                if changed and complete:
                    rows_ts.append(previous)
                    rows.append(tuple(cur_v))
                    rows_q.append(max(cur_q, default=0))
                changed = False
                previous = t
            if not cur_t:
                changed = True
            for k in matches[series[i]]:
                last = cur_t[k]
                if last is None or t >= last:
                    cur_v[k], cur_q[k], cur_t[k] = values[i], quality[i], t
                    changed = True
                    if last is None:
                        complete = None not in cur_t
        if changed and complete:
            rows_ts.append(previous)
            rows.append(tuple(cur_v))
            rows_q.append(max(cur_q, default=0))
        out_ts: list[int] = []
        out_values: list[Value] = []
        out_q: list[int] = []
        if rows:
            columns = {name: [row[k] for row in rows] for k, name in enumerate(self._inputs)}
            if not self._inputs:
                columns = {}
            results, errors, first = self._evaluate(columns, len(rows))
            if errors:
                self._context.count("eval_errors", errors)
                self._context.set_health(Health.WARNING, f"expression failed for some values: {first}")
                self._warning = True
            elif self._warning:
                self._context.set_health(Health.OK)
                self._warning = False
            for t, result, q in zip(rows_ts, results, rows_q, strict=True):
                if result is not None:
                    out_ts.append(t)
                    out_values.append(result)
                    out_q.append(q)
        if self._keep_inputs:
            if not out_ts:
                return (("out", data),)
            return (
                (
                    "out",
                    Batch(ts + out_ts, series + [self._output] * len(out_ts), values + out_values, quality + out_q),
                ),
            )
        if not out_ts:
            return NO_OUTPUT
        return (("out", Batch(out_ts, [self._output] * len(out_ts), out_values, out_q)),)

    def _evaluate(self, columns: dict[str, list[Any]], n: int) -> tuple[list[Value | None], int, str | None]:
        if not self._inputs:  # evaluate_columns cannot tell the row count without a column
            results: list[Value | None] = []
            errors = 0
            first: str | None = None
            for _ in range(n):
                try:
                    results.append(self._expression.evaluate({}))
                except ValueError as exc:
                    results.append(None)
                    errors += 1
                    first = first or str(exc)
            return results, errors, first
        return self._expression.evaluate_columns(columns)

    def snapshot(self) -> Any:
        return {
            "inputs": {
                name: [self._values[k], self._quality[k], self._ts[k]]
                for k, name in enumerate(self._inputs)
                if self._ts[k] is not None
            }
        }

    def restore(self, state: Any) -> None:
        if not isinstance(state, dict):
            return
        saved = state.get("inputs", {})
        for k, name in enumerate(self._inputs):
            if name in saved:
                value, quality, ts = saved[name]
                self._values[k], self._quality[k], self._ts[k] = value, int(quality), int(ts)


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
    behaviour=ExpressionBehaviour,
)
