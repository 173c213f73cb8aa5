"""``udf.python``: user Python code that processes each batch of points in a sandbox."""

import ast
from collections.abc import Iterator
from typing import Annotated, Any

import msgspec
from msgspec import Meta

from nodes.spec import Category, ConfigProblem, NodeConfig, NodeSpec, points_in, points_out

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

_HINT_SIGNATURE = "define a top-level function: def process(batch, state): ... return batch"


def code_problems(code: str, path: str = "$.code") -> Iterator[ConfigProblem]:
    """Parse ``code`` (never compile or run it) and check that it defines ``process(batch, state)``."""
    try:
        # ast.parse only builds a syntax tree: no statement, default value or decorator is evaluated.
        tree = ast.parse(code, filename="<udf>", mode="exec")
    except SyntaxError as e:
        yield ConfigProblem(path, f"syntax error: {e.msg}", "fix the Python syntax", line=e.lineno, column=e.offset)
        return
    except (ValueError, RecursionError, MemoryError) as e:
        yield ConfigProblem(path, f"the code cannot be parsed: {e}", "simplify the code")
        return
    defs = [
        node
        for node in tree.body
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.name == "process"
    ]
    if not defs:
        yield ConfigProblem(path, "no top-level function named process", _HINT_SIGNATURE)
        return
    fn = defs[-1]
    if isinstance(fn, ast.AsyncFunctionDef):
        yield ConfigProblem(
            path,
            "process must be a plain function, not async",
            _HINT_SIGNATURE,
            line=fn.lineno,
            column=fn.col_offset + 1,
        )
        return
    args = fn.args
    positional = [*args.posonlyargs, *args.args]
    required = len(positional) - len(args.defaults)
    required_kwonly = [a.arg for a, default in zip(args.kwonlyargs, args.kw_defaults, strict=True) if default is None]
    if required > 2 or (len(positional) < 2 and args.vararg is None) or required_kwonly:
        yield ConfigProblem(
            path,
            "process must take two parameters: batch and state",
            _HINT_SIGNATURE,
            line=fn.lineno,
            column=fn.col_offset + 1,
        )


class PythonUdfConfig(NodeConfig, frozen=True):
    """
    Runs your own Python function on every batch of points, in a sandboxed worker process with a
    time and memory limit. The function process(batch, state) returns the points to pass on; state
    keeps values between batches.
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
    memory_mb: Annotated[int, Meta(ge=16, le=2048, description="Memory limit of the worker process, in megabytes.")] = (
        256
    )
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
)
