"""``modbus.read`` against real Modbus TCP peers: the simulator (pymodbus' server and the fast one)
and a raw TCP server that never answers. No mocks; the context is the runtime's StepContext."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import msgspec
import pytest

from nodes.device import modbus_read
from nodes.device.modbus_read import ModbusReadConfig, ModbusReadSource, Register
from nodes.host import Health, NotConnected
from nodes.points import Batch, Quality
from proxus.services.ports import free_port
from runtime.context import StepContext
from runtime.simulate.modbus import ALL_TYPES, ModbusSimulator, serve

ORDERS = ("ABCD", "DCBA", "BADC", "CDAB")
# Every data type in every byte order, in both register tables.
KNOWN = {
    "devices": 3,
    "base_port": 0,
    "tags": 2 * len(ALL_TYPES) * len(ORDERS),
    "data_types": list(ALL_TYPES),
    "byte_orders": list(ORDERS),
    "register_tables": ["holding", "input"],
    "values": "known",
}

pytestmark = pytest.mark.timeout(60)


def context(tmp_path: Path, label: str) -> StepContext:
    return StepContext(node_id=f"node-{label}", label=label, data_dir=tmp_path)


def health(ctx: StepContext) -> Health:
    return ctx.metrics.health


def by_tag(source: ModbusReadSource, batch: Batch) -> dict[str, Any]:
    return dict(zip(source.tags, batch.values, strict=True))


def qualities(source: ModbusReadSource, batch: Batch) -> dict[str, int]:
    return dict(zip(source.tags, batch.quality, strict=True))


@pytest.fixture(params=["pymodbus", "fast"])
async def sim(request: pytest.FixtureRequest) -> AsyncIterator[ModbusSimulator]:
    simulator = await serve({**KNOWN, "backend": request.param})
    try:
        yield simulator
    finally:
        await simulator.stop()


async def test_every_type_and_byte_order_reads_back_the_known_values(sim: ModbusSimulator, tmp_path: Path) -> None:
    assert len(set(sim.ports)) == 3
    combos = {(t.data_type, t.byte_order) for t in sim.tags if t.data_type != "bool"}
    assert len(combos) == (len(ALL_TYPES) - 1) * len(ORDERS)
    for device in range(3):
        ctx = context(tmp_path, f"press{device}")
        source = ModbusReadSource(sim.read_config(device, max_gap=0), ctx)
        await source.connect()
        try:
            batch = await source.read()
        finally:
            await source.close()
        expected = sim.expected(device)
        assert by_tag(source, batch) == expected
        assert set(batch.quality) == {Quality.GOOD}
        assert batch.series == [f"press{device}/{tag}" for tag in source.tags]
        assert len(set(batch.ts)) == 1
        assert health(ctx) is Health.OK
        assert ctx.metrics.counters["requests"] == len(source.requests) == 4  # coil, discrete, holding, input
        # Devices differ, so a mixed-up port or unit would show.
        assert expected != sim.expected((device + 1) % 3)


async def test_devices_as_unit_ids_behind_one_port(tmp_path: Path) -> None:
    simulator = await serve({**KNOWN, "layout": "units", "first_unit": 5, "backend": "pymodbus"})
    try:
        assert len(set(simulator.ports)) == 1 and simulator.units == [5, 6, 7]
        sources = [ModbusReadSource(simulator.read_config(d), context(tmp_path, f"u{d}")) for d in range(3)]
        for source in sources:
            await source.connect()
        batches = await asyncio.gather(*(s.read() for s in sources))
        for device, (source, batch) in enumerate(zip(sources, batches, strict=True)):
            assert by_tag(source, batch) == simulator.expected(device)
            await source.close()
    finally:
        await simulator.stop()


async def test_scaled_values_and_the_device_id_as_series_prefix(tmp_path: Path) -> None:
    simulator = await serve({**KNOWN, "devices": 1, "data_types": ["int16", "float32"], "tags": 2})
    try:
        regs = simulator.register_map()
        scaled = [msgspec.structs.replace(r, tag=r.tag + "_x", scale=0.5, offset=10.0) for r in regs]
        config = simulator.read_config(0, registers=regs + scaled, device="line1-press")
        source = ModbusReadSource(config, context(tmp_path, "ignored-label"))
        await source.connect()
        batch = await source.read()
        await source.close()
        values = by_tag(source, batch)
        expected = simulator.expected(0)
        for r in regs:
            raw = expected[r.tag]
            assert isinstance(raw, int | float)
            assert values[r.tag + "_x"] == pytest.approx(raw * 0.5 + 10.0)
            assert isinstance(values[r.tag + "_x"], float)
        assert all(s.startswith("line1-press/") for s in batch.series)
    finally:
        await simulator.stop()


async def test_exception_response_gives_bad_points_and_a_health_message(sim: ModbusSimulator, tmp_path: Path) -> None:
    ctx = context(tmp_path, "dev")
    extra = Register(tag="beyond_the_map", address=5000, table="holding", data_type="uint16")
    source = ModbusReadSource(sim.read_config(0, registers=[*sim.register_map(), extra]), ctx)
    await source.connect()
    try:
        batch = await source.read()
        quality = qualities(source, batch)
        assert quality["beyond_the_map"] == Quality.BAD
        assert batch.values[source.tags.index("beyond_the_map")] == 0  # never read: neutral value
        good = {tag for tag, q in quality.items() if q == Quality.GOOD}
        assert good == set(sim.expected(0))  # everything else was read
        assert health(ctx) is Health.WARNING
        message = ctx.metrics.message
        assert "exception 0x02 (illegal data address)" in message
        assert "holding 5000-5000 (FC3)" in message and "unit 1" in message
        assert ctx.metrics.counters["exceptions"] == 1

        # A range that answers an exception: the tags of that request are BAD, with their last value.
        holding = [t for t in sim.tags if t.table == "holding"]
        sim.fail(0, "holding", holding[3].address, code=0x04)
        before = by_tag(source, batch)
        batch = await source.read()
        quality = qualities(source, batch)
        bad = {tag for tag, q in quality.items() if q == Quality.BAD}
        assert {t.tag for t in holding} <= bad
        assert {t.tag for t in sim.tags if t.table != "holding"}.isdisjoint(bad)
        assert all(by_tag(source, batch)[t.tag] == before[t.tag] for t in holding)
        assert "exception 0x04 (server device failure)" in ctx.metrics.message
        assert ctx.metrics.counters["exceptions"] == 3

        sim.clear_failures(0)
        source_ok = ModbusReadSource(sim.read_config(0), ctx)
        await source_ok.connect()
        batch = await source_ok.read()
        await source_ok.close()
        assert set(batch.quality) == {Quality.GOOD}
        assert health(ctx) is Health.OK and ctx.metrics.message == ""
    finally:
        await source.close()


async def test_bridged_gap_that_hits_a_hole_says_so(tmp_path: Path) -> None:
    simulator = await serve(
        {**KNOWN, "devices": 1, "data_types": ["uint16"], "tags": 4, "gap": 3, "register_tables": ["holding"]}
    )
    try:
        simulator.fail(0, "holding", 1, 3)  # the unused registers between the first two tags
        ctx = context(tmp_path, "dev")
        source = ModbusReadSource(simulator.read_config(0, max_gap=16), ctx)
        await source.connect()
        batch = await source.read()
        assert set(batch.quality) == {Quality.BAD}
        assert health(ctx) is Health.ERROR
        assert "set max_gap to 0" in ctx.metrics.message
        await source.close()
        source = ModbusReadSource(simulator.read_config(0, max_gap=0), ctx)
        await source.connect()
        batch = await source.read()
        assert set(batch.quality) == {Quality.GOOD} and len(source.requests) == 4
        await source.close()
    finally:
        await simulator.stop()


@pytest.mark.parametrize("backend", ["pymodbus", "fast"])
async def test_vanishing_device_raises_not_connected_until_it_returns(backend: str, tmp_path: Path) -> None:
    simulator = await serve({**KNOWN, "devices": 2, "backend": backend})
    try:
        ctx = context(tmp_path, "dev")
        source = ModbusReadSource(simulator.read_config(0, timeout_ms=2000), ctx)
        other = ModbusReadSource(simulator.read_config(1), context(tmp_path, "other"))
        await source.connect()
        await other.connect()
        assert set((await source.read()).quality) == {Quality.GOOD}

        await simulator.stop_device(0)
        started = time.monotonic()
        with pytest.raises(NotConnected):
            await source.read()
        assert time.monotonic() - started < 1.0  # noticed at once, not after the 2 s timeout
        await source.close()
        with pytest.raises(NotConnected, match="cannot connect"):
            await source.connect()
        assert set((await other.read()).quality) == {Quality.GOOD}  # the other device is unaffected

        await simulator.start_device(0)
        await source.connect()
        batch = await source.read()
        assert set(batch.quality) == {Quality.GOOD}
        assert by_tag(source, batch) == simulator.expected(0)
        await source.close()
        await other.close()
    finally:
        await simulator.stop()


async def test_lost_connection_during_a_poll(tmp_path: Path) -> None:
    """The device drops the connection while requests are in flight: NotConnected, no waiting."""
    simulator = await serve({**KNOWN, "devices": 1, "backend": "fast", "tags": 400, "data_types": ["uint16"]})
    try:
        source = ModbusReadSource(simulator.read_config(0, timeout_ms=3000, max_gap=0), context(tmp_path, "d"))
        await source.connect()
        assert len(source.requests) == 4
        poll = asyncio.ensure_future(source.read())
        await asyncio.sleep(0)
        await simulator.stop_device(0)
        started = time.monotonic()
        try:
            batch = await poll  # the poll may have finished before the stop took effect
        except NotConnected:
            pass
        else:
            assert set(batch.quality) == {Quality.GOOD}
            with pytest.raises(NotConnected):
                await source.read()
        assert time.monotonic() - started < 1.0
        await source.close()
    finally:
        await simulator.stop()


async def test_connection_closed_by_the_device_with_a_request_in_flight(tmp_path: Path) -> None:
    """A device that reads a request and hangs up: NotConnected at once, not after the timeout."""

    async def hang_up(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readexactly(12)
        writer.close()

    port = free_port()
    server = await asyncio.start_server(hang_up, "127.0.0.1", port)
    try:
        config = ModbusReadConfig(
            host="127.0.0.1", port=port, timeout_ms=5000, registers=[Register(tag="a", address=0)]
        )
        source = ModbusReadSource(config, context(tmp_path, "d"))
        await source.connect()
        started = time.monotonic()
        with pytest.raises(NotConnected, match="lost"):
            await source.read()
        assert time.monotonic() - started < 1.0
        await source.close()
    finally:
        server.close()
        await server.wait_closed()


async def test_stopped_unit_behind_a_gateway_answers_exception_0x0b(tmp_path: Path) -> None:
    simulator = await serve({**KNOWN, "devices": 2, "layout": "units"})
    try:
        ctx = context(tmp_path, "dev")
        source = ModbusReadSource(simulator.read_config(1), ctx)
        await source.connect()
        await simulator.stop_device(1)
        batch = await source.read()
        assert set(batch.quality) == {Quality.BAD}
        assert health(ctx) is Health.ERROR
        assert "0x0B (gateway target device failed to respond)" in ctx.metrics.message
        await simulator.start_device(1)
        assert set((await source.read()).quality) == {Quality.GOOD}
        await source.close()
    finally:
        await simulator.stop()


class SilentServer:
    """Accepts TCP connections, reads everything and never answers."""

    def __init__(self) -> None:
        self.received = bytearray()
        self.server: asyncio.Server | None = None
        self.port = free_port()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(4096):
                self.received += data
        finally:
            writer.close()

    async def __aenter__(self) -> SilentServer:
        self.server = await asyncio.start_server(self._handle, "127.0.0.1", self.port)
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self.server is not None
        self.server.close()
        await self.server.wait_closed()


async def test_timeout_gives_bad_points_after_the_retries(tmp_path: Path) -> None:
    registers = [
        Register(tag="a", address=0, data_type="float32"),
        Register(tag="b", address=500, data_type="uint16"),
        Register(tag="c", address=0, table="coil", data_type="bool"),
    ]
    config = ModbusReadConfig(host="127.0.0.1", timeout_ms=100, retries=2, max_gap=0, registers=registers)
    async with SilentServer() as silent:
        config = msgspec.structs.replace(config, port=silent.port)
        ctx = context(tmp_path, "mute")
        source = ModbusReadSource(config, ctx)
        await source.connect()
        started = time.monotonic()
        batch = await source.read()
        elapsed = time.monotonic() - started
        assert set(batch.quality) == {Quality.BAD} and len(batch) == 3
        assert 0.25 < elapsed < 1.5  # 3 attempts of 100 ms on the first request; the rest not sent
        assert ctx.metrics.counters["timeouts"] == 3
        assert ctx.metrics.counters["requests"] == 3
        assert health(ctx) is Health.ERROR
        assert "coil 0-0 (FC1) on unit 1: no response within 100 ms (3 attempt(s))" in ctx.metrics.message
        assert len(silent.received) == 3 * 12  # three identical read requests of 12 bytes
        # The silent connection was closed: the runtime reconnects through NotConnected.
        with pytest.raises(NotConnected):
            await source.read()
        await source.connect()
        assert set((await source.read()).quality) == {Quality.BAD}
        await source.close()


async def test_connection_test_helper(tmp_path: Path) -> None:
    simulator = await serve({**KNOWN, "devices": 1})
    try:
        result = await modbus_read.test_modbus_connection(simulator.read_config(0), timeout_s=5)
        assert result["ok"] is True, result
        assert result["sample"] == simulator.expected(0)
        assert result["latency_ms"] > 0
        assert "read 88 value(s) in 4 request(s)" in result["message"]

        extra = Register(tag="missing", address=9000, data_type="uint16")
        result = await modbus_read.test_modbus_connection(
            simulator.read_config(0, registers=[*simulator.register_map(), extra]), timeout_s=5
        )
        assert result["ok"] is False and "illegal data address" in result["message"]
        assert "missing" not in result["sample"] and len(result["sample"]) == 88
    finally:
        await simulator.stop()
    config = ModbusReadConfig(host="127.0.0.1", port=free_port(), registers=[Register(tag="a", address=0)])
    result = await modbus_read.test_modbus_connection(config, timeout_s=5)
    assert result == {"ok": False, "message": result["message"], "latency_ms": result["latency_ms"], "sample": {}}
    assert "cannot connect" in result["message"]
    async with SilentServer() as silent:
        config = msgspec.structs.replace(config, port=silent.port, timeout_ms=2000, retries=3)
        started = time.monotonic()
        result = await modbus_read.test_modbus_connection(config, timeout_s=0.3)
        assert time.monotonic() - started < 1.5
        assert result["ok"] is False and "no answer within 0.3 s" in result["message"]


async def test_live_values_change_over_time(tmp_path: Path) -> None:
    simulator = await serve({"devices": 1, "base_port": 0, "tags": 30, "values": "live", "update_ms": 50})
    try:
        source = ModbusReadSource(simulator.read_config(0), context(tmp_path, "live"))
        await source.connect()
        first = by_tag(source, await source.read())
        await asyncio.sleep(0.15)
        second = by_tag(source, await source.read())
        changed = {tag for tag in first if first[tag] != second[tag]}
        assert len(changed) >= 20
        assert second == simulator.expected(0) or simulator.devices[0].current_tick() > simulator.devices[0].tick
        await source.close()
    finally:
        await simulator.stop()
