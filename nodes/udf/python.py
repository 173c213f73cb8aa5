"""``udf.python``: user Python code that processes each batch of points in a sandbox."""

from collections.abc import Iterator
from typing import Annotated, Any

import msgspec
from msgspec import Meta

from nodes.host import NO_OUTPUT, AsyncOperator, Data, Health, NodeContext, Outputs
from nodes.points import Batch
from nodes.spec import Category, ConfigProblem, NodeConfig, NodeSpec, points_in, points_out
from nodes.udf.sandbox import policy
from nodes.udf.sandbox.pool import Outcome, PoolSettings, UdfStartError, WorkerPool

DEFAULT_CODE = '''\
def process(batch, state):
    """Called once per batch of points; returns the points to pass on.

    batch has four columns of equal length: batch.ts (timestamps in ns),
    batch.series (series keys), batch.values and batch.quality (0 good,
    1 uncertain, 2 bad). state is a dict kept between calls; it starts as
    the node's state_init.
    """
    state["points_seen"] = state.get("points_seen", 0) + len(batch.ts)
    # Example: double every number, leave text and on/off values alone.
    batch.values = [
        v * 2 if isinstance(v, (int, float)) and not isinstance(v, bool) else v
        for v in batch.values
    ]
    return batch
'''


def code_problems(code: str, path: str = "$.code") -> Iterator[ConfigProblem]:
    """The sandbox policy's verdict on ``code`` (see :mod:`nodes.udf.sandbox.policy`): syntax, the
    ``process(batch, state)`` signature, imports, names, attributes and top-level statements.

    The code is parsed and compiled, never run: no statement, default value or decorator is evaluated.
    """
    for error in policy.check(code):
        yield ConfigProblem(path, error.message, error.hint, line=error.line, column=error.column)


class PythonUdfConfig(NodeConfig, frozen=True):
    """
    Runs your own Python function on every batch of points, in a sandboxed worker process with a
    time and memory limit. The function process(batch, state) returns the points to pass on (the
    batch, changed or replaced, or None for nothing); state keeps values between batches and is
    saved as plain data (numbers, text, booleans, None, lists and dicts).
    The code may import only bisect, cmath, collections, datetime, decimal, fractions, functools,
    heapq, itertools, json, math, operator, random, re, statistics, struct and time; it has no file,
    network or process access, and names or attributes starting with an underscore are refused.
    At the top level only imports, definitions and constant assignments are allowed. A call that
    fails, times out or returns too much drops its batch; print() output goes to the debug view.
    """

    code: Annotated[
        str,
        Meta(
            min_length=1,
            max_length=200_000,
            description="Python source defining process(batch, state), which returns the batch of points to pass on.",
            extra={"x-widget": "code", "x-language": "python"},
            extra_json_schema={"x-widget": "code", "x-language": "python"},
        ),
    ] = DEFAULT_CODE
    timeout_ms: Annotated[
        int,
        Meta(
            ge=10,
            le=60_000,
            description="Longest time one call of process may take, in milliseconds; longer calls are stopped.",
        ),
    ] = 1000
    memory_mb: Annotated[
        int,
        Meta(
            ge=16,
            le=2048,
            description="Memory the function may use in its worker process, in megabytes (on top of the "
            "worker's own footprint); a call that needs more fails with an out-of-memory error.",
        ),
    ] = 256
    workers: Annotated[
        int,
        Meta(ge=1, le=8, description="Number of sandboxed worker processes that run the function in parallel."),
    ] = 1
    state_init: Annotated[
        dict[str, Any],
        Meta(
            description="Initial contents of the state dict (a JSON object) passed to process.",
            examples=[{"count": 0}],
        ),
    ] = msgspec.field(default_factory=dict)

    def problems(self) -> Iterator[ConfigProblem]:
        yield from code_problems(self.code)


# Per-node counters (heartbeats): timeouts, restarts, crashes, user_errors, violations,
# output_errors, memory_errors, dropped_batches, dropped_points.
_COUNTERS: dict[str, str] = {
    "timeout": "timeouts",
    "crash": "crashes",
    "exception": "user_errors",
    "violation": "violations",
    "output": "output_errors",
    "memory": "memory_errors",
    "unavailable": "unavailable",
    "broken": "broken",
}


class PythonUdf(AsyncOperator):
    """Runtime behaviour: each batch goes to a sandboxed worker process (see :mod:`nodes.udf.sandbox`).

    The constructor checks the code against the policy and raises ``ValueError`` with every problem
    (line and column) when it is refused; the workers start on :meth:`start` or the first batch,
    and a worker that refuses or fails to load the code makes :meth:`start` raise
    :class:`~nodes.udf.sandbox.pool.UdfStartError`. Failures of single batches never raise: the
    batch is dropped and counted (``dropped_batches``, ``dropped_points`` and one of ``timeouts``,
    ``crashes``, ``user_errors``, ``violations``, ``output_errors``, ``memory_errors``; worker
    restarts as ``restarts``), health turns ERROR with the reason (the user's line number for an
    exception), and the next good batch sets it back to OK. ``print`` output goes to the debug view.

    ``snapshot()`` is the state as last saved from the workers (at most ``state_sync_s`` = 1 s old;
    exact after ``close()``): ``{"states": [state of worker 0, ...]}``.
    """

    def __init__(self, config: PythonUdfConfig, context: NodeContext, *, check_policy: bool = True) -> None:
        # check_policy=False (tests only, never reachable from a config) switches the AST policy off,
        # here and in the workers, to show that the runtime layers hold on their own.
        errors = policy.check(config.code)
        if errors and check_policy:
            raise ValueError(f"udf.python {context.node_id}: the code was refused: {policy.describe(errors)}")
        self._context = context
        self._pool = WorkerPool(
            PoolSettings(
                code=config.code,
                timeout_s=config.timeout_ms / 1000,
                memory_mb=config.memory_mb,
                workers=config.workers,
                state_init=dict(config.state_init),
                check_policy=check_policy,
            )
        )
        self._unhealthy = False

    @property
    def pool(self) -> WorkerPool:
        return self._pool

    async def start(self) -> None:
        """Start the workers now rather than on the first batch; raises UdfStartError if the code fails to load."""
        try:
            await self._pool.start()
        except UdfStartError as e:
            self._context.set_health(Health.ERROR, str(e))
            self._unhealthy = True
            raise

    async def process(self, port: str, data: Data, now_ns: int) -> Outputs:
        if not isinstance(data, Batch) or not data.ts:
            return NO_OUTPUT
        restarts = self._pool.restarts
        outcome = await self._pool.run(data)
        if self._pool.restarts != restarts:
            self._context.count("restarts", self._pool.restarts - restarts)
        self._debug(outcome)
        if outcome.batch is None:
            self._dropped(outcome, len(data.ts))
            return NO_OUTPUT
        if outcome.warning:
            self._context.set_health(Health.WARNING, outcome.warning)
            self._unhealthy = True
        elif self._unhealthy:
            self._context.set_health(Health.OK)
            self._unhealthy = False
        return (("out", outcome.batch),) if outcome.batch.ts else NO_OUTPUT

    def _dropped(self, outcome: Outcome, points: int) -> None:
        ctx = self._context
        ctx.count(_COUNTERS.get(outcome.kind, "errors"))
        ctx.count("dropped_batches")
        ctx.count("dropped_points", points)
        message = outcome.message or "the function failed"
        if outcome.line is not None:  # an exception or a refusal in the user's code
            message = f"line {outcome.line}: {message}"
        if not message.endswith("(batch dropped)"):
            message += " (batch dropped)"
        ctx.set_health(Health.ERROR, message)
        self._unhealthy = True

    def _debug(self, outcome: Outcome) -> None:
        for line in outcome.log:
            self._context.debug({"node": self._context.node_id, "print": line})

    def snapshot(self) -> Any:
        return {"states": self._pool.snapshot()}

    def restore(self, state: Any) -> None:
        if isinstance(state, dict) and isinstance(state.get("states"), list):
            self._pool.restore(state["states"])

    async def sync_state(self) -> None:
        """Fetch the workers' current state so that :meth:`snapshot` is exact."""
        await self._pool.sync_state()

    async def close(self) -> None:
        await self._pool.close()


EXAMPLE = PythonUdfConfig(code=DEFAULT_CODE, timeout_ms=1000, memory_mb=256, workers=1, state_init={"points_seen": 0})

SPEC = NodeSpec(
    type_id="udf.python",
    version=1,
    category=Category.UDF,
    title="Python function",
    description="Runs your own Python function on each batch of points in a sandbox.",
    config=PythonUdfConfig,
    example=EXAMPLE,
    inputs=(points_in(),),
    outputs=(points_out(),),
    stateful=True,
    icon="code",
    behaviour=PythonUdf,
)
