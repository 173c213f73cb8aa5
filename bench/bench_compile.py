"""Compile time of large flows: the goal is 10,000 nodes under 1 s and 100 nodes under 10 ms.

Run: .venv/bin/python bench/bench_compile.py
The flow is realistic rather than a line: many devices, each with a branch of transforms, a
window and an alarm, fanning into shared sinks, so wiring, port and placement checks all work.
"""

from __future__ import annotations

import statistics
import sys
import time
from typing import Any

import msgspec

from proxus.catalog import Catalog
from proxus.compiler import compile_flow, validate_flow
from proxus.flow import FlowDocument

CATALOG = Catalog.load()


def _example(type_id: str) -> dict[str, Any]:
    spec = CATALOG.get(type_id)
    assert spec is not None
    config: dict[str, Any] = msgspec.to_builtins(spec.example)
    return config


def make_flow(total_nodes: int) -> dict[str, Any]:
    """Devices with branches of ~10 nodes each, sharing a historian and a debug sink."""
    branch = [
        ("transform.scale", "out"),
        ("transform.filter", "out"),
        ("transform.deadband", "out"),
        ("transform.rename", "out"),
        ("window.tumbling", "out"),
        ("analytics.threshold", "events"),
    ]
    nodes: list[dict[str, Any]] = [
        {"id": "historian", "type": "sink.historian", "config": _example("sink.historian")},
        {"id": "debug", "type": "sink.debug", "config": _example("sink.debug")},
    ]
    edges: list[dict[str, Any]] = []
    configs = {t: _example(t) for t, _ in branch}
    sim = _example("simulator")
    device = 0
    while len(nodes) < total_nodes:
        src = f"dev{device:05d}"
        nodes.append({"id": src, "type": "simulator", "config": sim, "position": {"x": 0, "y": device * 80}})
        prev, prev_port = src, "out"
        for step, (type_id, out_port) in enumerate(branch):
            if len(nodes) >= total_nodes:
                break
            nid = f"{src}_n{step}"
            nodes.append({"id": nid, "type": type_id, "config": configs[type_id]})
            edges.append({"id": f"{prev}-{nid}", "source": prev, "source_port": prev_port, "target": nid})
            if type_id == "window.tumbling":  # averages go to the historian, alarms to debug
                edges.append({"id": f"{nid}-historian", "source": nid, "target": "historian"})
            prev, prev_port = nid, out_port
        if prev_port == "events" or not any(e["target"] == "historian" for e in edges[-7:]):
            sink = "debug" if prev_port == "events" else "historian"
            edges.append({"id": f"{prev}-{sink}", "source": prev, "source_port": prev_port, "target": sink})
        device += 1
    return {
        "format": "proxus.flow",
        "schema_version": 1,
        "id": "bench",
        "name": "bench",
        "nodes": nodes,
        "edges": edges,
    }


def measure(total: int, repeat: int) -> tuple[float, float, int]:
    data = make_flow(total)
    raw = msgspec.json.encode(data)
    doc = msgspec.convert(data, FlowDocument)
    result = compile_flow(doc, CATALOG)
    assert result.ok, [d.render() for d in result.diagnostics[:5]]
    compile_times, import_times = [], []
    for _ in range(repeat):
        t0 = time.perf_counter()
        compile_flow(doc, CATALOG)
        compile_times.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        validate_flow(raw, CATALOG)
        import_times.append(time.perf_counter() - t0)
    steps = sum(len(p.steps) for p in result.plans.values())
    return statistics.median(compile_times), statistics.median(import_times), steps


def main() -> None:
    print(f"python {sys.version.split()[0]}, {len(CATALOG)} node types")
    for total, repeat, goal in ((100, 200, 0.010), (1_000, 20, None), (10_000, 5, 1.0)):
        compile_s, import_s, steps = measure(total, repeat)
        verdict = "" if goal is None else f" (goal < {goal * 1000:.0f} ms: {'met' if compile_s < goal else 'MISSED'})"
        print(
            f"{total:>6} nodes: compile {compile_s * 1000:8.2f} ms median{verdict}; "
            f"parse+validate+compile from JSON {import_s * 1000:8.2f} ms; {steps} plan steps"
        )


if __name__ == "__main__":
    main()
