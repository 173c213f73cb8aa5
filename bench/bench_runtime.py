"""Runtime throughput: simulator → scale → filter → 1 s tumbling average → outbox.

Goal: at least 1,000,000 points per CPU second. For scale, the same arithmetic in plain batched
Python (no runtime) runs at about 3.3 M/s here, and Node-RED 5 runs this flow at about 26,000
messages per CPU second.

Run: .venv/bin/python bench/bench_runtime.py [--seconds 10] [--tags 2000] [--rate 500]
The pipeline runs in this process against a private NATS server (the outbox is real JetStream);
CPU time is this process's (the NATS server's own CPU is printed separately).
"""

from __future__ import annotations

import argparse
import asyncio
import math
import tempfile
import time
from pathlib import Path

import psutil

from proxus.catalog import Catalog
from proxus.compiler import validate_flow
from runtime.interpreter import Host, PlanRunner
from runtime.local_nats import private_nats
from runtime.outbox import Outbox


def flow(tags: int, rate_hz: float) -> dict[str, object]:
    return {
        "format": "proxus.flow",
        "schema_version": 1,
        "id": "bench",
        "name": "runtime bench",
        "nodes": [
            {
                "id": "sim",
                "type": "simulator",
                "config": {
                    "device_name": "line",
                    "rate_hz": rate_hz,
                    "tags": [
                        {"tag": f"t{i:05d}", "signal": "sine", "amplitude": 10, "period_s": 7 + i % 53}
                        for i in range(tags)
                    ],
                },
            },
            {"id": "scale", "type": "transform.scale", "config": {"factor": 1.8, "offset": 32}},
            {"id": "filter", "type": "transform.filter", "config": {"expression": "value > 30"}},
            {"id": "avg", "type": "window.tumbling", "config": {"window_s": 1, "aggregates": ["avg"]}},
            {"id": "out", "type": "sink.historian", "config": {}},
        ],
        "edges": [
            {"id": "e1", "source": "sim", "target": "scale"},
            {"id": "e2", "source": "scale", "target": "filter"},
            {"id": "e3", "source": "filter", "target": "avg"},
            {"id": "e4", "source": "avg", "target": "out"},
        ],
    }


def plain_python_baseline(points: int, batch: int) -> float:
    """The same arithmetic with no runtime: scale, filter, 1 s average by series; points per CPU second."""
    series = [f"line/t{i:05d}" for i in range(batch)]
    values = [10 * math.sin(i) for i in range(batch)]
    t0 = time.process_time()
    done = 0
    sums: dict[str, float] = {}
    counts: dict[str, int] = {}
    while done < points:
        scaled = [v * 1.8 + 32 for v in values]
        keep = [i for i, v in enumerate(scaled) if v > 30]
        for i in keep:
            s = series[i]
            sums[s] = sums.get(s, 0.0) + scaled[i]
            counts[s] = counts.get(s, 0) + 1
        done += batch
    return done / (time.process_time() - t0)


async def run(seconds: float, tags: int, rate_hz: float) -> None:
    catalog = Catalog.load()
    _doc, result = validate_flow(flow(tags, rate_hz), catalog)
    assert result.ok, [d.render() for d in result.diagnostics]
    plan = result.plans["local"]
    with tempfile.TemporaryDirectory() as tmp:
        async with private_nats(Path(tmp) / "nats") as nc:
            outbox = Outbox(nc.jetstream(), edge="bench")
            await outbox.ensure()
            # mode "edge": the historian sink only appends to the outbox (the Hub drains it).
            host = Host(edge_id="bench", data_dir=Path(tmp) / "data", outbox=outbox, mode="edge")
            runner = PlanRunner(plan, catalog, host)
            nats_proc = next(
                (
                    p
                    for p in psutil.process_iter(["name"])
                    if p.info["name"] == "nats-server" and p.ppid() == psutil.Process().pid
                ),
                None,
            )
            await runner.start()
            await asyncio.sleep(1.0)  # warm up
            sim = runner.steps["sim"].metrics
            start_points, cpu0, wall0 = sim.points_out, time.process_time(), time.perf_counter()
            nats_cpu0 = sum(nats_proc.cpu_times()[:2]) if nats_proc else 0.0
            await asyncio.sleep(seconds)
            points = sim.points_out - start_points
            cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
            nats_cpu = (sum(nats_proc.cpu_times()[:2]) - nats_cpu0) if nats_proc else float("nan")
            await runner.stop()
    appended = runner.steps["out"].metrics.points_in
    print(f"offered: {tags} tags x {rate_hz:g} Hz = {tags * rate_hz:,.0f} points/s; measured {wall:.1f} s")
    print(f"points through the pipeline: {points:,} ({points / wall:,.0f} points/s wall clock)")
    print(
        f"runtime CPU: {cpu:.2f} s -> {points / cpu:,.0f} points per CPU second "
        f"({cpu / points * 1e6:.3f} CPU s per million points); NATS server CPU {nats_cpu:.2f} s"
    )
    print(
        f"window outputs appended to the outbox: {appended:,}; skipped simulator ticks: "
        f"{runner.steps['sim'].metrics.counters.get('skipped_ticks', 0)}"
    )
    baseline = plain_python_baseline(2_000_000, tags)
    print(
        f"plain batched Python, same arithmetic: {baseline:,.0f} points per CPU second; "
        f"runtime/plain = {points / cpu / baseline:.2f}; Node-RED 5 reference: 26,000 msg per CPU second "
        f"(runtime is {points / cpu / 26_000:,.0f}x)"
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--tags", type=int, default=2000)
    parser.add_argument("--rate", type=float, default=1000.0)
    args = parser.parse_args()
    asyncio.run(run(args.seconds, args.tags, args.rate))


if __name__ == "__main__":
    main()
