"""Throughput of the sandboxed Python UDF against the same computation in an expression node.

Run: .venv/bin/python bench/bench_udf.py [seconds per measurement, default 1.0]

The computation is ``value * 2`` on float values: a udf.python node (one sandboxed worker; each
batch is encoded, piped to the worker, run, validated and decoded) against the in-process
alternatives -- the transform.scale behaviour with factor 2, and the expression language's
compiled column evaluation (``compile_expression("x * 2")``). Batch sizes 100, 1,000 and 10,000.
"""

from __future__ import annotations

import asyncio
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

from nodes.expr import compile_expression
from nodes.points import Batch
from nodes.transform.scale import SPEC as SCALE_SPEC
from nodes.transform.scale import ScaleConfig
from nodes.udf.python import PythonUdf, PythonUdfConfig
from runtime.context import StepContext

UDF_CODE = """\
def process(batch, state):
    batch.values = [v * 2 for v in batch.values]
    return batch
"""
SIZES = (100, 1_000, 10_000)


def make_batch(n: int) -> Batch:
    return Batch(
        list(range(1_700_000_000_000_000_000, 1_700_000_000_000_000_000 + n)),
        [f"plc{i % 10}/tag{i % 100}" for i in range(n)],
        [float(i) * 0.5 for i in range(n)],
        [0] * n,
    )


async def measure(step: Callable[[], Awaitable[object]], points: int, seconds: float) -> float:
    """Points per second of ``step`` (which handles ``points`` points), over about ``seconds``."""
    for _ in range(3):
        await step()  # warm up
    calls = 0
    started = time.perf_counter()
    while (elapsed := time.perf_counter() - started) < seconds:
        await step()
        calls += 1
    return calls * points / elapsed


async def main(seconds: float) -> None:
    data_dir = Path(tempfile.mkdtemp(prefix="bench-udf-"))
    udf = PythonUdf(PythonUdfConfig(code=UDF_CODE, timeout_ms=10_000), StepContext(node_id="udf", data_dir=data_dir))
    await udf.start()
    scale_factory = SCALE_SPEC.behaviour
    scale_context = StepContext(node_id="scale", data_dir=data_dir)
    scale = scale_factory(ScaleConfig(factor=2.0), scale_context) if scale_factory is not None else None
    expression = compile_expression("x * 2")
    print(
        f"{'points/batch':>12} {'udf.python':>12} {'transform.scale':>16} {'expression':>12} "
        f"{'scale/udf':>10} {'expr/udf':>9}"
    )
    try:
        for n in SIZES:
            batch = make_batch(n)

            async def run_udf(batch: Batch = batch) -> object:
                fresh = Batch(batch.ts, batch.series, list(batch.values), batch.quality)
                outputs = await udf.process("in", fresh, 0)
                assert outputs and outputs[0][1].values[1] == batch.values[1] * 2  # type: ignore[union-attr]
                return outputs

            async def run_scale(batch: Batch = batch) -> object:
                assert scale is not None
                return scale.process("in", batch, 0)

            async def run_expression(batch: Batch = batch) -> object:
                return expression.evaluate_columns({"x": batch.values})

            udf_rate = await measure(run_udf, n, seconds)
            scale_rate = await measure(run_scale, n, seconds) if scale is not None else float("nan")
            expr_rate = await measure(run_expression, n, seconds)
            print(
                f"{n:>12,} {udf_rate:>12,.0f} {scale_rate:>16,.0f} {expr_rate:>12,.0f} "
                f"{scale_rate / udf_rate:>9.1f}x {expr_rate / udf_rate:>8.1f}x"
            )
    finally:
        await udf.close()
    print("\npoints per second; x/udf: how many times faster the in-process computation is than the sandboxed UDF")


if __name__ == "__main__":
    asyncio.run(main(float(sys.argv[1]) if len(sys.argv) > 1 else 1.0))
