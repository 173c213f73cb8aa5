"""Edge memory: RSS of a runtime running a 100-node plan over 10,000 tags.

Run: .venv/bin/python bench/bench_memory.py [--seconds 20]
Ten simulated devices of 1,000 tags each (1 Hz) feed branches of scale → deadband → rename →
tumbling window → threshold alarm, ending in the outbox; RSS is sampled while it runs.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import tempfile
from pathlib import Path
from typing import Any

import psutil

from proxus.catalog import Catalog
from proxus.compiler import validate_flow
from runtime.interpreter import Host, PlanRunner
from runtime.local_nats import private_nats
from runtime.outbox import Outbox


def flow(devices: int = 10, tags: int = 1000) -> dict[str, Any]:
    nodes: list[dict[str, Any]] = [
        {"id": "historian", "type": "sink.historian", "config": {}},
        {"id": "alarms", "type": "sink.historian", "config": {}},
    ]
    edges: list[dict[str, Any]] = []
    chain = [
        ("transform.scale", {"factor": 0.1}, "out"),
        ("transform.deadband", {"absolute": 0.01}, "out"),
        ("transform.rename", {"enterprise": "acme", "site": "plant"}, "out"),
        ("transform.quality_filter", {}, "out"),
        ("transform.quality_filter", {"keep": ["good", "uncertain"]}, "out"),
        ("window.tumbling", {"window_s": 5, "aggregates": ["avg", "min", "max"]}, "out"),
        ("transform.filter", {"expression": "value > -1000"}, "out"),
        ("window.sliding", {"window_s": 10, "slide_s": 5}, "out"),
        ("analytics.threshold", {"high": 9.5, "hysteresis": 0.5}, "events"),
    ]
    for d in range(devices):
        src = f"dev{d}"
        nodes.append(
            {
                "id": src,
                "type": "simulator",
                "config": {
                    "device_name": f"machine{d}",
                    "rate_hz": 1,
                    "tags": [
                        {"tag": f"t{i:04d}", "signal": "random_walk", "step": 0.1, "min": 0, "max": 10}
                        for i in range(tags)
                    ],
                },
            }
        )
        prev, port = src, "out"
        for k, (type_id, config, out_port) in enumerate(chain):
            nid = f"{src}_{k}"
            nodes.append({"id": nid, "type": type_id, "config": config})
            edges.append({"id": f"{prev}-{nid}", "source": prev, "source_port": port, "target": nid})
            prev, port = nid, out_port
        edges.append({"id": f"{prev}-alarms", "source": prev, "source_port": port, "target": "alarms"})
        edges.append({"id": f"{src}_7-historian", "source": f"{src}_7", "target": "historian"})
    return {"format": "proxus.flow", "schema_version": 1, "id": "mem", "name": "memory", "nodes": nodes, "edges": edges}


async def run(seconds: float) -> None:
    process = psutil.Process()
    gc.collect()
    base = process.memory_info().rss
    catalog = Catalog.load()
    _doc, result = validate_flow(flow(), catalog)
    assert result.ok, [d.render() for d in result.diagnostics[:5]]
    plan = result.plans["local"]
    after_import = process.memory_info().rss
    peak = 0
    with tempfile.TemporaryDirectory() as tmp:
        async with private_nats(Path(tmp) / "nats") as nc:
            outbox = Outbox(nc.jetstream(), edge="mem")
            await outbox.ensure()
            host = Host(edge_id="mem", data_dir=Path(tmp) / "data", outbox=outbox, mode="edge")
            runner = PlanRunner(plan, catalog, host)
            await runner.start()
            samples = []
            for _ in range(int(seconds)):
                await asyncio.sleep(1)
                rss = process.memory_info().rss
                samples.append(rss)
                peak = max(peak, rss)
            points = sum(s.metrics.points_out for n, s in runner.steps.items() if n.startswith("dev") and "_" not in n)
            await runner.stop()
    mib = 1024 * 1024
    print(f"plan: {len(plan.steps)} steps, 10 devices x 1,000 tags at 1 Hz; ran {seconds:.0f} s, {points:,} points")
    print(
        f"RSS: interpreter+imports {base / mib:.0f} MiB -> catalog+compile {after_import / mib:.0f} MiB -> "
        f"running: last {samples[-1] / mib:.0f} MiB, peak {peak / mib:.0f} MiB "
        f"(the plan itself: {(samples[-1] - after_import) / mib:.0f} MiB)"
    )
    print(f"RSS growth over the last half of the run: {(samples[-1] - samples[len(samples) // 2]) / mib:+.1f} MiB")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=30)
    asyncio.run(run(parser.parse_args().seconds))


if __name__ == "__main__":
    main()
