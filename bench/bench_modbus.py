"""Modbus acquisition throughput: ``modbus.read`` sources against the simulator, vs bare pymodbus.

Reference profile: 16 devices × 1,000 tags every 50 ms (320,000 tags/s). The simulator runs in a
separate process (``python -m runtime.simulate.modbus``, fast backend) so that it does not share
this event loop. Three phases of ``--seconds`` each:

1. ``source``: one :class:`ModbusReadSource` per device, ``read()`` on a drift-free schedule as the
   runtime does (a poll is on time when it completes before the next one is due; slots that can
   no longer be made are skipped, as the runtime does);
2. ``bare``: one bare ``AsyncModbusTcpClient`` per device sending the same coalesced requests on the
   same schedule, decoding nothing and building no batch;
3. ``pipelining``: whether concurrent requests on one pymodbus client overlap (they do not in
   pymodbus 3.16: the client serialises them).

Run: .venv/bin/python bench/bench_modbus.py [--devices 16 --tags 1000 --interval-ms 50 --seconds 10]
Prints figures; asserts nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import msgspec
import psutil

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from nodes.device.modbus_codec import plan_requests  # noqa: E402
from nodes.device.modbus_read import ModbusReadConfig, ModbusReadSource  # noqa: E402
from nodes.points import Quality  # noqa: E402
from runtime.context import StepContext  # noqa: E402
from runtime.simulate.modbus import ModbusSimConfig, build_tags  # noqa: E402

DEFAULT_TYPES = "uint16,int16,float32,uint32,int32,bit,bool,float64"


@dataclass
class Phase:
    name: str
    points: int = 0
    polls: int = 0
    on_time: int = 0
    missed: int = 0
    durations: list[float] = field(default_factory=list)
    wall: float = 0.0
    cpu: float = 0.0

    def report(self, expected_rate: float) -> str:
        rate = self.points / self.wall if self.wall else 0.0
        d = sorted(self.durations) or [0.0]
        p50 = statistics.median(d) * 1000
        p99 = d[min(len(d) - 1, int(len(d) * 0.99))] * 1000
        share = self.on_time / max(1, self.polls + self.missed)
        return (
            f"{self.name:>7}: {rate:>10,.0f} tags/s ({rate / expected_rate:6.1%} of target)  "
            f"polls {self.polls:>5} on time {share:6.1%} (skipped slots {self.missed})  "
            f"poll p50 {p50:6.2f} ms p99 {p99:6.2f} ms  CPU {self.cpu / self.wall:5.1%} of a core"
        )


async def _schedule(
    phase: Phase, poll: Callable[[], Awaitable[int]], interval: float, deadline: float, start: float
) -> None:
    loop = asyncio.get_running_loop()
    due = start
    while due < deadline:
        now = loop.time()
        if now < due:
            await asyncio.sleep(due - now)
        began = loop.time()
        points = await poll()  # (not `+= await`: that would read phase.points before the await)
        phase.points += points
        finished = loop.time()
        phase.polls += 1
        phase.durations.append(finished - began)
        if finished <= due + interval:
            phase.on_time += 1
        due += interval
        behind = loop.time() - due
        if behind > interval:  # skip slots that can no longer be made, like the runtime
            skipped = int(behind // interval)
            phase.missed += skipped
            due += skipped * interval


async def run_phase(phase: Phase, pollers: list[Callable[[], Awaitable[int]]], interval: float, seconds: float) -> None:
    """Run the pollers on their schedule for ``seconds``, adding to ``phase``."""
    loop = asyncio.get_running_loop()
    start = loop.time() + 0.2
    deadline = start + seconds
    cpu0, wall0 = time.process_time(), time.perf_counter()
    # Stagger devices over the interval as independent sources would be.
    await asyncio.gather(
        *(_schedule(phase, p, interval, deadline, start + interval * i / len(pollers)) for i, p in enumerate(pollers))
    )
    phase.cpu += time.process_time() - cpu0
    phase.wall += time.perf_counter() - wall0 - 0.2


def start_simulator(config: ModbusSimConfig) -> tuple[subprocess.Popen[str], list[int]]:
    args = [sys.executable, "-m", "runtime.simulate.modbus", "--config", "/dev/stdin"]
    proc = subprocess.Popen(args, cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert proc.stdin is not None and proc.stdout is not None
    proc.stdin.write(msgspec.json.encode(config).decode())
    proc.stdin.close()
    line = proc.stdout.readline()
    if not line:
        raise SystemExit("the simulator did not start")
    ports: list[int] = json.loads(line)["ports"]
    return proc, ports


async def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    ap.add_argument("--devices", type=int, default=16)
    ap.add_argument("--tags", type=int, default=1000)
    ap.add_argument("--interval-ms", type=int, default=50)
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--types", default=DEFAULT_TYPES, help="data types cycled over the tags")
    ap.add_argument("--byte-orders", default="ABCD,CDAB")
    ap.add_argument("--max-gap", type=int, default=16)
    ap.add_argument("--backend", default="fast", choices=("fast", "pymodbus"), help="simulator server")
    args = ap.parse_args()

    sim_config = ModbusSimConfig(
        devices=args.devices,
        base_port=0,
        tags=args.tags,
        data_types=tuple(t.strip() for t in args.types.split(",")),
        byte_orders=tuple(o.strip() for o in args.byte_orders.split(",")),
        values="live",
        update_ms=1000,
        backend=args.backend,
    )
    registers = [t.register() for t in build_tags(sim_config)]
    proc, ports = start_simulator(sim_config)
    interval = args.interval_ms / 1000
    target = args.devices * args.tags / interval
    configs = [
        ModbusReadConfig(
            host="127.0.0.1",
            port=port,
            unit_id=1,
            poll_interval_ms=args.interval_ms,
            timeout_ms=1000,
            retries=1,
            max_gap=args.max_gap,
            registers=registers,
        )
        for port in ports
    ]
    plan = plan_requests(registers, max_gap=args.max_gap)
    words = sum(r.count for r in plan if r.table in ("holding", "input"))
    print(
        f"profile: {args.devices} devices × {args.tags} tags every {args.interval_ms} ms = {target:,.0f} tags/s; "
        f"types {args.types}; {len(plan)} requests/poll/device ({words} registers + bits) = "
        f"{len(plan) * args.devices / interval:,.0f} requests/s; simulator backend {args.backend} in its own process"
    )
    from pymodbus.client import AsyncModbusTcpClient

    methods = {
        "coil": "read_coils",
        "discrete_input": "read_discrete_inputs",
        "holding": "read_holding_registers",
        "input": "read_input_registers",
    }
    tags_per_poll = sum(len(r.indices) for r in plan)
    sim_process = psutil.Process(proc.pid)
    try:
        data_dir = Path(tempfile.mkdtemp(prefix="bench_modbus_"))
        contexts = [StepContext(node_id=f"dev{i}", data_dir=data_dir) for i in range(len(configs))]
        sources = [ModbusReadSource(c, ctx) for c, ctx in zip(configs, contexts, strict=True)]
        for s in sources:
            await s.connect()
        clients = [AsyncModbusTcpClient("127.0.0.1", port=p, timeout=1, retries=1, reconnect_delay=0) for p in ports]
        for c in clients:
            await c.connect()

        def source_poller(source: ModbusReadSource) -> Callable[[], Awaitable[int]]:
            good = int(Quality.GOOD)

            async def poll() -> int:
                batch = await source.read()
                return batch.quality.count(good)

            return poll

        def bare_poller(client: Any) -> Callable[[], Awaitable[int]]:
            calls = [(getattr(client, methods[r.table]), r.address, r.count) for r in plan]

            async def poll() -> int:
                for method, address, count in calls:
                    response = await method(address, count=count, device_id=1)
                    if response.isError():
                        return 0
                return tags_per_poll

            return poll

        # Interleave the two in slices (source, bare, bare, source, ...) so that load from other
        # processes on the machine affects both alike.
        phases = {"source": Phase("source"), "bare": Phase("bare")}
        pollers = {"source": [source_poller(s) for s in sources], "bare": [bare_poller(c) for c in clients]}
        sim_cpu = {"source": 0.0, "bare": 0.0}
        slices = max(2, round(args.seconds / 2.5))
        for i in range(slices):
            for name in ("source", "bare") if i % 2 == 0 else ("bare", "source"):
                before = sum(sim_process.cpu_times()[:2])
                await run_phase(phases[name], pollers[name], interval, args.seconds / slices)
                sim_cpu[name] += sum(sim_process.cpu_times()[:2]) - before
        for s in sources:
            await s.close()
        problems = {ctx.metrics.message for ctx in contexts if ctx.metrics.message}
        counters: dict[str, int] = {}
        for ctx in contexts:
            for k, v in ctx.metrics.counters.items():
                counters[k] = counters.get(k, 0) + v

        # Pipelining on one pymodbus client: do concurrent requests overlap?
        client = clients[0]
        holding = [r for r in plan if r.table == "holding"][:8] or list(plan[:8])
        method = getattr(client, methods[holding[0].table])
        rounds = 200
        t0 = time.perf_counter()
        for _ in range(rounds):
            for r in holding:
                await method(r.address, count=r.count, device_id=1)
        sequential = (time.perf_counter() - t0) / rounds
        t0 = time.perf_counter()
        for _ in range(rounds):
            await asyncio.gather(*(method(r.address, count=r.count, device_id=1) for r in holding))
        concurrent = (time.perf_counter() - t0) / rounds
        for c in clients:
            c.close()
    finally:
        proc.terminate()
        proc.wait(timeout=10)

    for name, phase in phases.items():
        print(phase.report(target) + f"  simulator CPU {sim_cpu[name] / phase.wall:5.1%}")
    source_phase, bare_phase = phases["source"], phases["bare"]
    src_rate = source_phase.points / source_phase.wall
    bare_rate = bare_phase.points / bare_phase.wall
    print(
        f"ratio source/bare: {src_rate / bare_rate:.3f} (tags/s); CPU per poll: "
        f"source {source_phase.cpu / max(1, source_phase.polls) * 1000:.2f} ms, "
        f"bare {bare_phase.cpu / max(1, bare_phase.polls) * 1000:.2f} ms"
    )
    print(f"source counters: {counters}")
    if problems:
        print(f"source health messages: {sorted(problems)[:3]}")
    print(
        f"pipelining: {len(holding)} requests on one client, sequential {sequential * 1000:.2f} ms, "
        f"concurrent (gather) {concurrent * 1000:.2f} ms per round -> "
        f"{'no overlap (pymodbus serialises requests per client)' if concurrent > 0.8 * sequential else 'overlap'}"
    )
    print(f"load average during the run: {os.getloadavg()[0]:.2f} (2 cores; other processes compete)")


if __name__ == "__main__":
    asyncio.run(main())
