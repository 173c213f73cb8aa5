"""A Modbus TCP simulator: N devices × M tags of chosen data types and byte orders.

Layouts: every device on its own port (``ports``: ``base_port``, ``base_port + 1``, ...) or every
device as a unit id on one port (``units``: unit ids ``first_unit``.. on ``base_port``, like a
gateway). ``base_port = 0`` picks free ports.

Tag ``i`` of every device gets data type ``data_types[i % T]`` and byte order
``byte_orders[(i // T) % O]`` (so the first T×O tags cover every combination), its own address
range in its table (``bool`` tags alternate between coils and discrete inputs, other tags cycle
through ``register_tables``) and ``gap`` unused addresses after it. Tags are named
``t<index>_<type>_<order>`` (``t0003_float32_CDAB``); ``bit`` tags use bit ``index % 16`` of
their own register.

Values: ``known`` — each tag's value is a fixed function of (device index, tag index), see
:func:`tag_value`, so tests can check decoding; ``live`` — values change every ``update_ms``
(integers count up, floats follow a sine, bits toggle, strings carry the tick number). Registers
are recomputed lazily, on the first read after a tick.

Backends: ``pymodbus`` (default) serves with pymodbus' ``ModbusTcpServer`` over a custom datastore
— an independent protocol implementation, right for tests; ``fast`` serves with a small asyncio
implementation of function codes 1-4 that answers pipelined requests and is cheap enough to drive
benchmarks (pymodbus' server tops out at a few thousand requests per second).

Faults for tests: :meth:`ModbusSimulator.fail` makes an address range answer a Modbus exception
(0x02 illegal data address by default); :meth:`ModbusSimulator.stop_device` makes a device vanish
(``ports``: its listener and connections close; ``units``: it answers 0x0B "gateway target device
failed to respond", as a gateway does when a serial device is gone) and
:meth:`ModbusSimulator.start_device` brings it back.

Command line (``proxus simulate modbus`` once wired, or ``python -m runtime.simulate.modbus``)::

    python -m runtime.simulate.modbus --devices 4 --base-port 5020 --tags 100 --update-ms 500

prints one JSON line ``{"ports": [...], "units": [...], "tags": M}`` when it is listening.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import signal
import struct
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import msgspec

from nodes.device.modbus_codec import MAX_COUNT, encode_value
from nodes.device.modbus_read import ByteOrder, DataType, ModbusReadConfig, Register, Table
from nodes.points import Value
from proxus.services.ports import free_port

__all__ = [
    "ModbusSimConfig",
    "ModbusSimulator",
    "SimTag",
    "add_cli",
    "build_tags",
    "run_cli",
    "serve",
    "tag_value",
]

ALL_TYPES: tuple[DataType, ...] = (
    "uint16",
    "int16",
    "uint32",
    "int32",
    "float32",
    "uint64",
    "int64",
    "float64",
    "string",
    "bit",
    "bool",
)
_WORDS = {"int16": 1, "uint16": 1, "bit": 1, "bool": 1, "int32": 2, "uint32": 2, "float32": 2}
_WORDS.update({"int64": 4, "uint64": 4, "float64": 4})
_RANGES = {
    "int16": (-(1 << 15), 1 << 16),
    "uint16": (0, 1 << 16),
    "int32": (-(1 << 31), 1 << 32),
    "uint32": (0, 1 << 32),
    "int64": (-(1 << 63), 1 << 64),
    "uint64": (0, 1 << 64),
}
_GATEWAY_NO_RESPONSE = 0x0B
_ILLEGAL_FUNCTION = 0x01
_ILLEGAL_ADDRESS = 0x02
_ILLEGAL_VALUE = 0x03


class ModbusSimConfig(msgspec.Struct, kw_only=True, forbid_unknown_fields=True, frozen=True):
    """What to simulate; build from a dict with ``msgspec.convert(d, ModbusSimConfig)``."""

    host: str = "127.0.0.1"
    devices: int = 1
    base_port: int = 5020  # 0: free ports
    layout: Literal["ports", "units"] = "ports"
    first_unit: int = 1
    tags: int = 100
    data_types: tuple[DataType, ...] = ALL_TYPES
    byte_orders: tuple[ByteOrder, ...] = ("ABCD",)
    register_tables: tuple[Literal["holding", "input"], ...] = ("holding",)
    string_length: int = 4  # registers per string tag
    gap: int = 0  # unused addresses after every tag
    values: Literal["known", "live"] = "live"
    update_ms: int = 1000
    backend: Literal["pymodbus", "fast"] = "pymodbus"
    # "energy_meter" serves the register map of examples/modbus-energy-meter.json with plausible
    # live values (voltages near 230 V, currents, power, a growing energy counter) instead of tNNNN tags.
    profile: Literal["generic", "energy_meter"] = "generic"


@dataclass(frozen=True, slots=True)
class SimTag:
    index: int
    tag: str
    table: Table
    address: int
    data_type: DataType
    byte_order: ByteOrder
    length: int = 1
    bit: int = 0
    formula: str | None = None  # a named value model (profiles); None: by data type

    @property
    def words(self) -> int:
        return self.length if self.data_type == "string" else _WORDS[self.data_type]

    def register(self) -> Register:
        """The ``modbus.read`` register-map entry that reads this tag."""
        return Register(
            tag=self.tag,
            address=self.address,
            table=self.table,
            data_type=self.data_type,
            length=self.length,
            bit=self.bit,
            byte_order=None if self.data_type == "bool" else self.byte_order,
        )


# examples/modbus-energy-meter.json: (tag, table, address, data type, value model)
ENERGY_METER: tuple[tuple[str, Table, int, DataType, str], ...] = (
    ("voltage_l1", "input", 0, "float32", "voltage"),
    ("voltage_l2", "input", 2, "float32", "voltage"),
    ("voltage_l3", "input", 4, "float32", "voltage"),
    ("current_l1", "input", 6, "float32", "current"),
    ("power_active_w", "input", 12, "int32", "power"),
    ("energy_import_wh", "input", 72, "uint32", "energy"),
)


def _profile_value(tag: SimTag, device: int, tick: int) -> Value:
    phase = tick / 10.0 + tag.index
    if tag.formula == "voltage":
        return _f32(230.0 + 2.0 * math.sin(phase))
    if tag.formula == "current":
        return _f32(10.0 + 3.0 * math.sin(phase / 3))
    if tag.formula == "power":
        return int(3 * 230.0 * (10.0 + 3.0 * math.sin(phase / 3)))
    if tag.formula == "energy":
        return (1_000_000 + 250 * device + 2 * tick) % (1 << 32)
    raise ValueError(f"unknown value model {tag.formula!r}")


def build_tags(config: ModbusSimConfig) -> list[SimTag]:
    """The tag layout every device of ``config`` serves (a pure function of the config)."""
    if config.profile == "energy_meter":
        return [
            SimTag(index=i, tag=tag, table=table, address=address, data_type=dt, byte_order="ABCD", formula=model)
            for i, (tag, table, address, dt, model) in enumerate(ENERGY_METER)
        ]
    if not config.data_types or not config.byte_orders or not config.register_tables:
        raise ValueError("data_types, byte_orders and register_tables must not be empty")
    cursor: dict[str, int] = {"coil": 0, "discrete_input": 0, "holding": 0, "input": 0}
    bools = registers = 0
    tags: list[SimTag] = []
    n_types = len(config.data_types)
    for i in range(config.tags):
        data_type = config.data_types[i % n_types]
        order = config.byte_orders[(i // n_types) % len(config.byte_orders)]
        table: Table
        if data_type == "bool":
            table = "coil" if bools % 2 == 0 else "discrete_input"
            bools += 1
        else:
            table = config.register_tables[registers % len(config.register_tables)]
            registers += 1
        length = config.string_length if data_type == "string" else 1
        tag = SimTag(
            index=i,
            tag=f"t{i:04d}_{data_type}" + ("" if data_type == "bool" else f"_{order}"),
            table=table,
            address=cursor[table],
            data_type=data_type,
            byte_order=order,
            length=length,
            bit=i % 16 if data_type == "bit" else 0,
        )
        cursor[table] += tag.words + config.gap
        if tag.address + tag.words > 65536:
            raise ValueError(f"{config.tags} tags do not fit the 65536 addresses of the {table} table")
        tags.append(tag)
    return tags


def _f32(x: float) -> float:
    value: float = struct.unpack(">f", struct.pack(">f", x))[0]
    return value


def tag_value(tag: SimTag, device: int, tick: int = 0, *, live: bool = False) -> Value:
    """The value tag ``tag`` of device number ``device`` (0-based) has at ``tick``.

    Known values (``live=False``, tick 0) mix device and tag index so that every byte of a value
    differs from its neighbours and a wrong byte order or offset shows. Live values count up
    (integers), follow a sine (floats), toggle (bits) or carry the tick (strings).
    """
    if tag.formula is not None:
        return _profile_value(tag, device, tick)
    n = device * 7919 + tag.index * 104729 + 1
    mixed = n * 0x9E3779B97F4A7C15
    dt = tag.data_type
    if dt in _RANGES:
        low, span = _RANGES[dt]
        return (mixed + (tick if live else 0)) % span + low
    if dt == "float32":
        if live:
            return _f32(100.0 * math.sin(tick / 10.0 + tag.index) + tag.index % 50)
        return _f32(((mixed % (1 << 20)) - (1 << 19)) / 64.0)
    if dt == "float64":
        if live:
            return 1000.0 * math.sin(tick / 25.0 + tag.index) + device
        return ((mixed % (1 << 40)) - (1 << 39)) / 1024.0
    if dt == "string":
        text = f"D{device}T{tag.index}" + (f"N{tick}" if live else "")
        return text[: tag.length * 2]
    if dt in ("bit", "bool"):
        return bool((n % 3 if dt == "bit" else n % 2) ^ (tick % 2 if live else 0))
    raise ValueError(f"unknown data type {dt!r}")


class SimulatedDevice:
    """The register image of one simulated device and its faults."""

    def __init__(self, config: ModbusSimConfig, tags: Sequence[SimTag], index: int, unit: int, port: int) -> None:
        self.config = config
        self.tags = tags
        self.index = index
        self.unit = unit
        self.port = port
        self.running = True
        self.failures: list[tuple[Table, int, int, int]] = []
        self.requests = 0
        ends: dict[str, int] = {"coil": 0, "discrete_input": 0, "holding": 0, "input": 0}
        for t in tags:
            ends[t.table] = max(ends[t.table], t.address + t.words)
        self._sizes = ends
        self.registers: dict[str, bytearray] = {t: bytearray(2 * ends[t]) for t in ("holding", "input")}
        self.bits: dict[str, int] = {"coil": 0, "discrete_input": 0}
        self._live = config.values == "live"
        self._update_ns = max(1, config.update_ms) * 1_000_000
        self._origin = time.monotonic_ns()
        self.tick = -1
        self._refresh(0)

    def current_tick(self) -> int:
        return (time.monotonic_ns() - self._origin) // self._update_ns if self._live else 0

    def values(self) -> dict[str, Value]:
        """Every tag's current value, by tag name."""
        self._maybe_refresh()
        return {t.tag: tag_value(t, self.index, self.tick, live=self._live) for t in self.tags}

    def _maybe_refresh(self) -> None:
        if self._live:
            tick = self.current_tick()
            if tick != self.tick:
                self._refresh(tick)

    def _refresh(self, tick: int) -> None:
        self.tick = tick
        live = self._live
        bits = {"coil": 0, "discrete_input": 0}
        for t in self.tags:
            value = tag_value(t, self.index, tick, live=live)
            if t.data_type == "bool":
                if value:
                    bits[t.table] |= 1 << t.address
                continue
            if t.data_type == "bit":
                word = (0xA55A & ~(1 << t.bit)) | (int(bool(value)) << t.bit)
                raw = encode_value("uint16", t.byte_order, word)
            else:
                raw = encode_value(t.data_type, t.byte_order, value, length=t.length)
            self.registers[t.table][2 * t.address : 2 * t.address + len(raw)] = raw
        self.bits = bits

    def _check(self, table: Table, address: int, count: int) -> int:
        """0, or the exception code a read of ``count`` from ``address`` gets."""
        self.requests += 1
        if not self.running:
            return _GATEWAY_NO_RESPONSE
        if not 1 <= count <= MAX_COUNT[table]:
            return _ILLEGAL_VALUE
        if address + count > self._sizes[table]:
            return _ILLEGAL_ADDRESS
        last = address + count - 1
        for f_table, first, f_last, code in self.failures:
            if f_table == table and first <= last and address <= f_last:
                return code
        self._maybe_refresh()
        return 0

    def read_registers(self, table: Table, address: int, count: int) -> bytes | int:
        """The registers' bytes as sent on the wire, or an exception code."""
        if code := self._check(table, address, count):
            return code
        return bytes(self.registers[table][2 * address : 2 * (address + count)])

    def read_bits(self, table: Table, address: int, count: int) -> int:
        """The bits as an int (bit k = address + k); raises ``_ExceptionCode`` for an exception response."""
        if code := self._check(table, address, count):
            raise _ExceptionCode(code)
        return (self.bits[table] >> address) & ((1 << count) - 1)


class _ExceptionCode(Exception):
    def __init__(self, code: int) -> None:
        super().__init__(code)
        self.code = code


_FC_TABLES: dict[int, Table] = {1: "coil", 2: "discrete_input", 3: "holding", 4: "input"}


def _respond(units: Mapping[int, SimulatedDevice], unit: int, pdu: bytes) -> bytes:
    """The response PDU to a request PDU (the ``fast`` backend)."""
    fc = pdu[0]
    table = _FC_TABLES.get(fc)
    if table is None:
        return bytes((fc | 0x80, _ILLEGAL_FUNCTION))
    if len(pdu) < 5:
        return bytes((fc | 0x80, _ILLEGAL_VALUE))
    address, count = struct.unpack_from(">HH", pdu, 1)
    device = units.get(unit)
    if device is None:
        return bytes((fc | 0x80, _GATEWAY_NO_RESPONSE))
    if fc >= 3:
        data = device.read_registers(table, address, count)
        if isinstance(data, int):
            return bytes((fc | 0x80, data))
        return bytes((fc, len(data))) + data
    try:
        bits = device.read_bits(table, address, count)
    except _ExceptionCode as exc:
        return bytes((fc | 0x80, exc.code))
    size = (count + 7) // 8
    return bytes((fc, size)) + bits.to_bytes(size, "little")


class _FastProtocol(asyncio.Protocol):
    """Modbus TCP framing for the ``fast`` backend; answers every complete frame in a chunk."""

    def __init__(self, owner: _FastServer) -> None:
        self.owner = owner
        self.buffer = bytearray()
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        self.owner.connections.add(transport)

    def connection_lost(self, exc: Exception | None) -> None:
        if self.transport is not None:
            self.owner.connections.discard(self.transport)

    def data_received(self, data: bytes) -> None:
        buffer = self.buffer
        buffer += data
        out: list[bytes] = []
        units = self.owner.units
        while len(buffer) >= 8:
            tid, pid, length, unit = struct.unpack_from(">HHHB", buffer)
            if pid != 0 or length < 2 or length > 254:
                assert self.transport is not None
                self.transport.close()
                return
            end = 6 + length
            if len(buffer) < end:
                break
            pdu = bytes(buffer[7:end])
            del buffer[:end]
            response = _respond(units, unit, pdu)
            out.append(struct.pack(">HHHB", tid, 0, len(response) + 1, unit) + response)
        if out and self.transport is not None:
            self.transport.write(b"".join(out))


class _FastServer:
    def __init__(self, host: str, port: int, units: dict[int, SimulatedDevice]) -> None:
        self.host, self.port, self.units = host, port, units
        self.connections: set[asyncio.Transport] = set()
        self.server: asyncio.Server | None = None

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        self.server = await loop.create_server(lambda: _FastProtocol(self), self.host, self.port, reuse_address=True)

    async def stop(self) -> None:
        if self.server is not None:
            self.server.close()
            for transport in list(self.connections):
                transport.abort()
            self.connections.clear()
            await self.server.wait_closed()
            self.server = None


class _PymodbusStore:
    """The datastore pymodbus' server calls (duck-typed like its SimCore)."""

    def __init__(self, units: dict[int, SimulatedDevice]) -> None:
        self.units = units

    def device_ids(self) -> list[int]:
        return list(self.units)

    async def async_getValues(self, device_id: int, func_code: int, address: int, count: int = 1) -> Any:
        from pymodbus.constants import ExcCodes
        from pymodbus.exceptions import NoSuchIdException

        device = self.units.get(device_id)
        if device is None:
            raise NoSuchIdException(f"no unit {device_id}")
        table = _FC_TABLES.get(func_code)
        if table is None:
            return ExcCodes.ILLEGAL_FUNCTION
        if func_code >= 3:
            data = device.read_registers(table, address, count)
            if isinstance(data, int):
                return ExcCodes(data)
            return list(struct.unpack(f">{count}H", data))
        try:
            bits = device.read_bits(table, address, count)
        except _ExceptionCode as exc:
            return ExcCodes(exc.code)
        return [bool(bits >> k & 1) for k in range(count)]

    async def async_setValues(self, device_id: int, func_code: int, address: int, values: Any) -> Any:
        from pymodbus.constants import ExcCodes

        return ExcCodes.ILLEGAL_FUNCTION  # the simulator is read-only


class _PymodbusServer:
    def __init__(self, host: str, port: int, units: dict[int, SimulatedDevice]) -> None:
        self.host, self.port, self.units = host, port, units
        self.server: Any = None

    async def start(self) -> None:
        from pymodbus.server import ModbusTcpServer
        from pymodbus.simulator import DataType as PmDataType
        from pymodbus.simulator import SimData, SimDevice

        placeholder = SimDevice(id=0, simdata=SimData(0, values=0, datatype=PmDataType.REGISTERS))
        server = ModbusTcpServer(placeholder, address=(self.host, self.port))
        server.context = _PymodbusStore(self.units)  # type: ignore[assignment]  # a custom datastore
        await server.serve_forever(background=True)
        if not server.transport:
            raise OSError(f"cannot listen on {self.host}:{self.port}")
        self.server = server

    async def stop(self) -> None:
        if self.server is not None:
            await self.server.shutdown()
            self.server = None
            await asyncio.sleep(0)  # let the transports close


_Server = _FastServer | _PymodbusServer


class ModbusSimulator:
    """Running simulated devices; create with :func:`serve`."""

    def __init__(self, config: ModbusSimConfig) -> None:
        self.config = config
        self.tags = build_tags(config)
        n = config.devices
        if config.layout == "ports":
            ports = [config.base_port + i if config.base_port else free_port(config.host) for i in range(n)]
            units = [config.first_unit] * n
        else:
            port = config.base_port or free_port(config.host)
            ports = [port] * n
            units = [config.first_unit + i for i in range(n)]
        if any(not 0 <= u <= 255 for u in units):
            raise ValueError("unit ids must be within 0..255")
        self.ports: list[int] = ports
        self.units: list[int] = units
        self.devices = [SimulatedDevice(config, self.tags, i, units[i], ports[i]) for i in range(n)]
        self._servers: dict[int, _Server] = {}  # by port

    def _server_for(self, port: int) -> _Server:
        units = {d.unit: d for d in self.devices if d.port == port}
        if self.config.backend == "fast":
            return _FastServer(self.config.host, port, units)
        return _PymodbusServer(self.config.host, port, units)

    async def start(self) -> None:
        try:
            for port in dict.fromkeys(self.ports):
                server = self._server_for(port)
                await server.start()
                self._servers[port] = server
        except BaseException:
            await self.stop()
            raise

    def register_map(self, device: int = 0) -> list[Register]:
        """The register map that reads every tag (the same for every device)."""
        return [t.register() for t in self.tags]

    def read_config(self, index: int = 0, /, **overrides: Any) -> ModbusReadConfig:
        """A complete ``modbus.read`` config for device number ``index``; ``overrides`` replace fields."""
        fields: dict[str, Any] = {
            "host": self.config.host,
            "port": self.ports[index],
            "unit_id": self.units[index],
            "registers": self.register_map(index),
        }
        fields.update(overrides)
        return ModbusReadConfig(**fields)

    def expected(self, device: int = 0) -> dict[str, Value]:
        """The values the device serves now, by tag (constant in ``known`` mode)."""
        return self.devices[device].values()

    def fail(
        self, device: int, table: Table, first: int, last: int | None = None, code: int = _ILLEGAL_ADDRESS
    ) -> None:
        """Reads touching ``first..last`` of ``table`` answer exception ``code`` (0x02 by default)."""
        self.devices[device].failures.append((table, first, first if last is None else last, code))

    def clear_failures(self, device: int) -> None:
        self.devices[device].failures.clear()

    async def stop_device(self, device: int) -> None:
        """Make a device vanish (see the module docstring)."""
        d = self.devices[device]
        d.running = False
        if self.config.layout == "ports":
            server = self._servers.pop(d.port, None)
            if server is not None:
                await server.stop()

    async def start_device(self, device: int) -> None:
        """Bring a stopped device back (on the same port and unit id)."""
        d = self.devices[device]
        d.running = True
        if self.config.layout == "ports" and d.port not in self._servers:
            server = self._server_for(d.port)
            for _ in range(50):  # the port may linger a moment after the stop
                try:
                    await server.start()
                    break
                except OSError:
                    await asyncio.sleep(0.05)
            else:
                await server.start()
            self._servers[d.port] = server

    async def stop(self) -> None:
        servers, self._servers = list(self._servers.values()), {}
        for server in servers:
            with contextlib.suppress(Exception):
                await server.stop()


async def serve(config: ModbusSimConfig | Mapping[str, Any] | None = None) -> ModbusSimulator:
    """Start the simulated devices of ``config`` (a :class:`ModbusSimConfig` or a dict of its fields).

    Returns the running simulator; ``await simulator.stop()`` ends it.
    """
    if config is None:
        config = ModbusSimConfig()
    elif not isinstance(config, ModbusSimConfig):
        config = msgspec.convert(dict(config), ModbusSimConfig)
    simulator = ModbusSimulator(config)
    await simulator.start()
    return simulator


# --- command line ----------------------------------------------------------------------------------


def _csv(text: str) -> tuple[str, ...]:
    return tuple(part.strip() for part in text.split(",") if part.strip())


def configure_parser(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Add the simulator's options to ``parser``."""
    d = ModbusSimConfig()
    parser.add_argument("--config", metavar="FILE.json", help="settings as a JSON object (flags override)")
    parser.add_argument("--host", help=f"address to listen on (default {d.host})")
    parser.add_argument("--devices", type=int, help=f"number of devices (default {d.devices})")
    parser.add_argument("--base-port", type=int, help=f"first port, 0 = free ports (default {d.base_port})")
    parser.add_argument("--layout", choices=("ports", "units"), help="a port per device, or unit ids on one port")
    parser.add_argument("--first-unit", type=int, help=f"first unit id (default {d.first_unit})")
    parser.add_argument("--tags", type=int, help=f"tags per device (default {d.tags})")
    parser.add_argument("--types", help="data types, comma-separated, cycled over the tags (default: all)")
    parser.add_argument("--byte-orders", help="byte orders, comma-separated, e.g. ABCD,CDAB (default ABCD)")
    parser.add_argument("--tables", help="register tables for non-bool tags: holding,input (default holding)")
    parser.add_argument("--string-length", type=int, help=f"registers per string (default {d.string_length})")
    parser.add_argument("--gap", type=int, help="unused addresses after every tag (default 0)")
    parser.add_argument("--values", choices=("known", "live"), help="fixed known values, or changing ones")
    parser.add_argument("--update-ms", type=int, help=f"value update period (default {d.update_ms})")
    parser.add_argument("--backend", choices=("pymodbus", "fast"), help="server implementation (default pymodbus)")
    parser.add_argument(
        "--profile", choices=("generic", "energy_meter"), help="energy_meter: the register map of the example flow"
    )
    parser.add_argument("--print-map", action="store_true", help="print the modbus.read register map and exit")
    return parser


def config_from_args(args: argparse.Namespace) -> ModbusSimConfig:
    fields: dict[str, Any] = {}
    if args.config:
        fields.update(json.loads(Path(args.config).read_text()))
    flags = {
        "host": args.host,
        "devices": args.devices,
        "base_port": args.base_port,
        "layout": args.layout,
        "first_unit": args.first_unit,
        "tags": args.tags,
        "data_types": _csv(args.types) if args.types else None,
        "byte_orders": _csv(args.byte_orders) if args.byte_orders else None,
        "register_tables": _csv(args.tables) if args.tables else None,
        "string_length": args.string_length,
        "gap": args.gap,
        "values": args.values,
        "update_ms": args.update_ms,
        "backend": args.backend,
        "profile": args.profile,
    }
    fields.update({k: v for k, v in flags.items() if v is not None})
    return msgspec.convert(fields, ModbusSimConfig)


def add_cli(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> argparse.ArgumentParser:
    """Register ``modbus`` under the ``proxus simulate`` sub-command parsers.

    The parser's default ``handler(args, catalog) -> int`` (:func:`run_cli`) runs the simulator until
    SIGINT/SIGTERM.
    """
    parser = subparsers.add_parser(
        "modbus", help="simulate Modbus TCP devices", description=__doc__.split("\n\n")[0] if __doc__ else None
    )
    configure_parser(parser)
    parser.set_defaults(handler=run_cli)
    return parser


async def _run(config: ModbusSimConfig) -> None:
    simulator = await serve(config)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)
    print(json.dumps({"ports": simulator.ports, "units": simulator.units, "tags": len(simulator.tags)}), flush=True)
    try:
        await stop.wait()
    finally:
        await simulator.stop()


def run_cli(args: argparse.Namespace, catalog: object = None) -> int:
    """Run the simulator until SIGINT/SIGTERM (or print the register map with ``--print-map``)."""
    try:
        config = config_from_args(args)
        if args.print_map:
            tags = build_tags(config)
            sys.stdout.buffer.write(msgspec.json.encode([t.register() for t in tags]) + b"\n")
            return 0
        asyncio.run(_run(config))
    except (msgspec.ValidationError, ValueError, OSError) as exc:
        print(f"proxus simulate modbus: {exc}", file=sys.stderr)
        return 2
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = configure_parser(argparse.ArgumentParser(prog="python -m runtime.simulate.modbus"))
    return run_cli(parser.parse_args(argv))


if __name__ == "__main__":
    raise SystemExit(main())
