"""``modbus.read``: poll a Modbus TCP device's coils and registers on a fixed interval.

The behaviour, :class:`ModbusReadSource`, reads the coalesced requests of
:mod:`nodes.device.modbus_codec` one after the other on one connection (pymodbus 3.16 serialises
the requests of a client, so there is no pipelining) and emits one batch per poll:

* series keys are ``<device>/<tag>`` where ``<device>`` is the managed device id (``device``) when
  set, else the node's label (``context.label``, which defaults to the node id);
* all points of a poll carry the time the poll started; points come in request order (table, then
  address), not in register-map order;
* a Modbus exception response makes the points of that request BAD (with their last good value,
  or 0/0.0/False/"" before any) and sets health WARNING (ERROR when nothing in the poll was read),
  naming the exception code, function code, table, address range and unit;
* a request that times out is sent again up to ``retries`` times, then its points are BAD; when the
  device answered nothing in the poll so far, the rest of the poll is not sent (BAD too) and the
  connection is closed, so the next ``read`` raises :class:`NotConnected` and the runtime reconnects;
* a lost connection raises :class:`NotConnected`; the runtime reconnects with backoff (pymodbus'
  own retries and reconnection are switched off);
* counters: ``requests`` (sent, retries included), ``timeouts``, ``exceptions``.
"""

import asyncio
import functools
import logging
import struct
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterator
from functools import partial
from pathlib import Path
from typing import Annotated, Any, Literal

import msgspec
from msgspec import Meta

from nodes.device.modbus_codec import ReadRequest, bits_to_bytes, plan_requests, registers_to_bytes, zero_value
from nodes.host import Credential, Health, NodeContext, NotConnected, Source
from nodes.points import Batch, Quality, Value, series_key
from nodes.spec import Category, ConfigProblem, NodeConfig, NodeSpec, points_out

ByteOrder = Literal["ABCD", "DCBA", "BADC", "CDAB"]
Table = Literal["coil", "discrete_input", "holding", "input"]
DataType = Literal[
    "bool",
    "int16",
    "uint16",
    "int32",
    "uint32",
    "int64",
    "uint64",
    "float32",
    "float64",
    "string",
    "bit",
]

_BOOL_TABLES = ("coil", "discrete_input")
_REGISTER_TABLES = ("holding", "input")
_FIXED_WORDS: dict[str, int] = {
    "bool": 1,
    "bit": 1,
    "int16": 1,
    "uint16": 1,
    "int32": 2,
    "uint32": 2,
    "float32": 2,
    "int64": 4,
    "uint64": 4,
    "float64": 4,
}
_MAX_ADDRESS = 65535


class Register(msgspec.Struct, kw_only=True, forbid_unknown_fields=True, frozen=True):
    """
    One value read from the device: a coil or discrete input, or one or more registers decoded
    to a number, a single bit or a text.
    """

    tag: Annotated[
        str,
        Meta(
            min_length=1,
            description="Tag name of the value; its series key is <device>/<tag>.",
            examples=["voltage_l1"],
        ),
    ]
    address: Annotated[
        int,
        Meta(
            ge=0,
            le=_MAX_ADDRESS,
            description="Zero-based protocol address inside the table (register 40001 is holding address 0).",
        ),
    ]
    table: Annotated[
        Table,
        Meta(
            description="Modbus table to read: coils and discrete inputs hold single bits, holding and "
            "input registers hold 16-bit words."
        ),
    ] = "holding"
    data_type: Annotated[
        DataType,
        Meta(
            description="How the value is decoded: bool for coils and discrete inputs; bit picks one bit "
            "of a register; numeric types span 1, 2 or 4 registers; string spans `length` registers."
        ),
    ] = "uint16"
    length: Annotated[
        int,
        Meta(
            ge=1,
            le=125,
            description="Number of registers a string spans (two characters each); only used for data_type string.",
        ),
    ] = 1
    bit: Annotated[
        int,
        Meta(
            ge=0,
            le=15,
            description="Bit number inside the register (0 = least significant); only used for data_type bit.",
        ),
    ] = 0
    byte_order: Annotated[
        ByteOrder | None,
        Meta(
            description="Byte order of this value, overriding the node's default byte order; ABCD is "
            "big-endian, CDAB swaps words, BADC swaps bytes, DCBA is little-endian."
        ),
    ] = None
    scale: Annotated[
        float, Meta(description="Factor applied to numeric values: engineering value = raw * scale + offset.")
    ] = 1.0
    offset: Annotated[
        float, Meta(description="Offset added to numeric values after scaling: raw * scale + offset.")
    ] = 0.0
    unit: Annotated[
        str,
        Meta(description="Engineering unit shown with the value, such as V, A, kW or °C.", examples=["V"]),
    ] = ""

    @property
    def word_count(self) -> int:
        """How many coils or 16-bit registers the value occupies in its table."""
        if self.data_type == "string":
            return self.length
        return _FIXED_WORDS[self.data_type]


class ModbusReadConfig(NodeConfig, frozen=True):
    """
    Polls a Modbus TCP device and emits one batch of points per poll, one point per register entry.
    Neighbouring registers are read with as few requests as possible.
    """

    device: Annotated[
        str | None,
        Meta(
            description="Id of a managed device; when set, its connection settings come from device "
            "management and the connection fields set on this node override them."
        ),
    ] = None
    host: Annotated[
        str | None,
        Meta(description="Host name or IP address of the device (or gateway).", examples=["192.168.1.20"]),
    ] = None
    port: Annotated[int, Meta(ge=1, le=65535, description="TCP port of the Modbus server.")] = 502
    unit_id: Annotated[
        int, Meta(ge=0, le=255, description="Modbus unit (slave) id; matters behind serial gateways.")
    ] = 1
    poll_interval_ms: Annotated[int, Meta(ge=10, description="Time between two polls, in milliseconds.")] = 1000
    timeout_ms: Annotated[int, Meta(ge=10, description="How long to wait for each response, in milliseconds.")] = 1000
    retries: Annotated[
        int,
        Meta(
            ge=0,
            le=10,
            description="How often a failed request is retried before the points are reported with bad quality.",
        ),
    ] = 2
    max_gap: Annotated[
        int,
        Meta(
            ge=0,
            le=124,
            description="Largest number of unused registers bridged when neighbouring registers are "
            "coalesced into one request; 0 reads only contiguous registers together.",
        ),
    ] = 16
    default_byte_order: Annotated[
        ByteOrder,
        Meta(
            description="Byte order of multi-register values unless a register overrides it; ABCD is "
            "big-endian (the Modbus standard)."
        ),
    ] = "ABCD"
    registers: Annotated[
        list[Register],
        Meta(description="The register map: one entry per value to read."),
    ] = msgspec.field(default_factory=list)

    def problems(self) -> Iterator[ConfigProblem]:
        if self.device is None and not (self.host or "").strip():
            yield ConfigProblem("$.host", "no host to connect to", "set a host or choose a managed device")
        if not self.registers:
            yield ConfigProblem("$.registers", "the register map is empty", "add at least one register")
        seen: dict[str, int] = {}
        for i, reg in enumerate(self.registers):
            path = f"$.registers[{i}]"
            if not reg.tag.strip():
                yield ConfigProblem(f"{path}.tag", "tag is empty", "name the value, e.g. voltage_l1")
            elif reg.tag in seen:
                yield ConfigProblem(
                    f"{path}.tag",
                    f"tag {reg.tag!r} is already used by registers[{seen[reg.tag]}]",
                    "give every register a unique tag",
                )
            else:
                seen[reg.tag] = i
            yield from _type_problems(reg, path)
            if reg.data_type == "string" and reg.length < 1:
                yield ConfigProblem(
                    f"{path}.length",
                    "a string needs a length of at least 1 register",
                    "set length to the number of registers the text spans",
                )
            last = reg.address + reg.word_count - 1
            if last > _MAX_ADDRESS:
                yield ConfigProblem(
                    f"{path}.address",
                    f"{reg.data_type} at address {reg.address} spans {reg.word_count} registers and ends at "
                    f"{last}, past the last address {_MAX_ADDRESS}",
                    "lower the address or the length",
                )


def _type_problems(reg: Register, path: str) -> Iterator[ConfigProblem]:
    if reg.table in _BOOL_TABLES and reg.data_type != "bool":
        yield ConfigProblem(
            f"{path}.data_type",
            f"a {reg.table} holds a single bit and cannot be read as {reg.data_type}",
            "use data_type bool, or read a holding or input register",
        )
    elif reg.table in _REGISTER_TABLES and reg.data_type == "bool":
        yield ConfigProblem(
            f"{path}.data_type",
            f"a {reg.table} register is a 16-bit word, not a bool",
            "use data_type bit to read one bit of the register, or read a coil or discrete input",
        )


EXAMPLE = ModbusReadConfig(
    host="127.0.0.1",
    port=5020,
    unit_id=1,
    poll_interval_ms=1000,
    registers=[
        Register(tag="voltage_l1", table="input", address=0, data_type="float32", unit="V"),
        Register(tag="voltage_l2", table="input", address=2, data_type="float32", unit="V"),
        Register(tag="voltage_l3", table="input", address=4, data_type="float32", unit="V"),
        Register(tag="current_l1", table="input", address=6, data_type="float32", unit="A"),
        Register(tag="power_active", table="input", address=12, data_type="float32", unit="kW"),
        Register(tag="frequency", table="input", address=70, data_type="float32", unit="Hz"),
        Register(tag="energy_import", table="input", address=72, data_type="uint32", scale=0.1, unit="kWh"),
        Register(tag="alarm_overcurrent", table="holding", address=100, data_type="bit", bit=3),
        Register(tag="serial_number", table="holding", address=200, data_type="string", length=8),
        Register(tag="relay_closed", table="coil", address=0, data_type="bool"),
    ],
)

EXCEPTION_NAMES: dict[int, str] = {
    0x01: "illegal function",
    0x02: "illegal data address",
    0x03: "illegal data value",
    0x04: "server device failure",
    0x05: "acknowledge",
    0x06: "server device busy",
    0x07: "negative acknowledge",
    0x08: "memory parity error",
    0x0A: "gateway path unavailable",
    0x0B: "gateway target device failed to respond",
}
_CLIENT_METHODS = {
    "coil": "read_coils",
    "discrete_input": "read_discrete_inputs",
    "holding": "read_holding_registers",
    "input": "read_input_registers",
}
_MAX_FAILURES_SHOWN = 3
_GOOD = int(Quality.GOOD)
_BAD = int(Quality.BAD)


@functools.cache
def _raw_response_classes() -> tuple[type[Any], ...]:
    """pymodbus read responses that keep their data bytes rather than decoding each register.

    Registered on each client (``client.register``): the codec decodes the bytes with one
    ``struct.unpack_from`` per layer, so pymodbus' per-register loop would be wasted work.
    """
    from pymodbus.exceptions import ModbusIOException
    from pymodbus.pdu.bit_message import ReadCoilsResponse, ReadDiscreteInputsResponse
    from pymodbus.pdu.register_message import ReadHoldingRegistersResponse, ReadInputRegistersResponse

    def decode(self: Any, data: bytes) -> None:
        size = data[0]
        if size >= len(data):
            raise ModbusIOException(
                f"byte_count {size} > length of packet {len(data)}", function_code=self.function_code
            )
        self.raw = bytes(data[1 : 1 + size])

    def describe(self: Any) -> str:
        name = type(self).__name__
        return f"{name}(dev_id={self.dev_id}, transaction_id={self.transaction_id}, {len(self.raw)} bytes)"

    bases = (ReadCoilsResponse, ReadDiscreteInputsResponse, ReadHoldingRegistersResponse, ReadInputRegistersResponse)
    return tuple(type(f"Raw{base.__name__}", (base,), {"decode": decode, "__str__": describe}) for base in bases)


class ModbusReadSource(Source):
    """Polls one Modbus TCP device (see the module docstring for the behaviour)."""

    def __init__(self, config: ModbusReadConfig, context: NodeContext) -> None:
        # Imported here so that declaring the catalog does not load pymodbus.
        from pymodbus.exceptions import ConnectionException, ModbusIOException

        self.config = config
        self.context = context
        self.interval_s = config.poll_interval_ms / 1000
        self.device_name = config.device or context.label
        self._connection_error = ConnectionException
        self._io_error = ModbusIOException
        self.requests: tuple[ReadRequest, ...] = plan_requests(
            config.registers, max_gap=config.max_gap, default_byte_order=config.default_byte_order
        )
        registers = config.registers
        self._series = [series_key(self.device_name, registers[i].tag) for r in self.requests for i in r.indices]
        self._slices: list[tuple[int, int]] = []
        position = 0
        for request in self.requests:
            self._slices.append((position, position + len(request.indices)))
            position += len(request.indices)
        self._last: list[list[Value]] = [[zero_value(registers[i]) for i in r.indices] for r in self.requests]
        self._where = f"{config.host}:{config.port} unit {config.unit_id}"
        self._client: Any = None
        self._calls: list[Callable[[], Awaitable[Any]]] = []
        self._in_flight = False

    @property
    def tags(self) -> list[str]:
        """The register-map tags in the order of a batch's points."""
        registers = self.config.registers
        return [registers[i].tag for r in self.requests for i in r.indices]

    async def connect(self) -> None:
        from pymodbus.client import AsyncModbusTcpClient

        await self.close()
        config = self.config
        host = (config.host or "").strip()
        if not host:
            raise NotConnected("no host to connect to")
        client = AsyncModbusTcpClient(
            host,
            port=config.port,
            name=f"proxus:{self.device_name}",
            timeout=config.timeout_ms / 1000,
            retries=0,  # retries are counted here, per request
            reconnect_delay=0,  # the runtime reconnects, with backoff
            trace_connect=partial(self._connection_changed, client_ref := []),
        )
        client_ref.append(client)
        client.set_max_no_responses(1 << 30)  # never let pymodbus close the connection on its own
        for response_class in _raw_response_classes():
            client.register(response_class)
        if not await client.connect():
            client.close()
            raise NotConnected(f"cannot connect to {host}:{config.port}")
        self._client = client
        unit = config.unit_id
        self._calls = [
            partial(getattr(client, _CLIENT_METHODS[r.table]), r.address, count=r.count, device_id=unit)
            for r in self.requests
        ]

    def _connection_changed(self, client_ref: list[Any], connected: bool) -> None:
        """pymodbus' trace_connect: fail the request in flight at once when the connection drops."""
        if connected or not client_ref or not self._in_flight or client_ref[0] is not self._client:
            return
        future = getattr(client_ref[0].ctx, "response_future", None)  # pymodbus 3.16 TransactionManager
        if isinstance(future, asyncio.Future) and not future.done():
            future.set_exception(self._connection_error("connection lost"))

    async def read(self) -> Batch:
        client = self._client
        if client is None or not client.connected:
            raise NotConnected(f"not connected to {self._where}")
        config = self.config
        context = self.context
        attempts_allowed = config.retries + 1
        ts = context.now_ns()
        values: list[Value] = []
        quality: list[int] | None = None
        failures: list[str] = []
        sent = timeouts = exceptions = answered = 0
        silent = False
        for k, request in enumerate(self.requests):
            response: Any = None
            problem = ""
            if silent:
                problem = f"{request.describe()} not read: the device did not answer"
            else:
                call = self._calls[k]
                for _attempt in range(attempts_allowed):
                    if not client.connected:
                        raise NotConnected(f"connection to {self._where} lost")
                    sent += 1
                    self._in_flight = True
                    try:
                        response = await call()
                    except self._io_error:  # no response within the timeout (or a garbled one)
                        timeouts += 1
                        continue
                    except self._connection_error as exc:
                        raise NotConnected(f"connection to {self._where} lost: {exc}") from exc
                    finally:
                        self._in_flight = False
                    break
                if response is None:
                    if not client.connected:
                        raise NotConnected(f"connection to {self._where} lost")
                    problem = (
                        f"{request.describe()} on unit {config.unit_id}: no response within "
                        f"{config.timeout_ms} ms ({attempts_allowed} attempt(s))"
                    )
                    silent = answered == 0
                elif response.isError():
                    exceptions += 1
                    answered += 1
                    problem = self._exception_message(request, response)
                else:
                    answered += 1
                    raw = getattr(response, "raw", None)
                    if raw is None:  # not one of the raw response classes
                        registers = request.table in ("holding", "input")
                        raw = registers_to_bytes(response.registers) if registers else bits_to_bytes(response.bits)
                    try:
                        decoded = request.decode(raw)
                    except (struct.error, ValueError) as exc:
                        problem = f"{request.describe()} on unit {config.unit_id}: malformed response ({exc})"
                    else:
                        values.extend(decoded)
                        self._last[k] = decoded
                        continue
            # The request failed: its points keep their last value, with bad quality.
            failures.append(problem)
            start, end = self._slices[k]
            values.extend(self._last[k])
            if quality is None:
                quality = [_GOOD] * len(self._series)
            quality[start:end] = [_BAD] * (end - start)
        context.count("requests", sent)
        if timeouts:
            context.count("timeouts", timeouts)
        if exceptions:
            context.count("exceptions", exceptions)
        if failures:
            shown = "; ".join(failures[:_MAX_FAILURES_SHOWN])
            if len(failures) > _MAX_FAILURES_SHOWN:
                shown += f" (+{len(failures) - _MAX_FAILURES_SHOWN} more)"
            context.set_health(Health.ERROR if len(failures) == len(self.requests) else Health.WARNING, shown)
        else:
            context.set_health(Health.OK)
        if silent:  # half-open or dead connection: let the runtime reconnect
            client.close()
        n = len(self._series)
        return Batch([ts] * n, list(self._series), values, quality if quality is not None else [_GOOD] * n)

    def _exception_message(self, request: ReadRequest, response: Any) -> str:
        code = int(response.exception_code)
        text = (
            f"{request.describe()} on unit {self.config.unit_id}: exception 0x{code:02X} "
            f"({EXCEPTION_NAMES.get(code, 'unknown exception')})"
        )
        if code == 0x02 and request.bridges_gaps:
            text += "; the request spans unused addresses, set max_gap to 0 if the device has holes in its map"
        return text

    async def close(self) -> None:
        client, self._client = self._client, None
        self._calls = []
        if client is not None:
            client.close()


class _ProbeContext:
    """A stand-alone NodeContext for :func:`test_modbus_connection` (no runtime involved)."""

    def __init__(self, label: str) -> None:
        self.node_id = label
        self.label = label
        self.edge_id = "hub"
        self.flow_id = ""
        self.log = logging.getLogger("proxus.modbus.probe")
        self.data_dir = Path(tempfile.gettempdir())
        self.health = Health.OK
        self.message = ""
        self.counters: dict[str, int] = {}

    def now_ns(self) -> int:
        return time.time_ns()

    def set_health(self, health: Health, message: str = "") -> None:
        self.health, self.message = health, message

    def count(self, name: str, amount: int = 1) -> None:
        self.counters[name] = self.counters.get(name, 0) + amount

    def set_gauge(self, name: str, value: float) -> None:
        pass

    def credential(self, credential_id: str) -> Credential:
        raise KeyError(credential_id)

    def setting(self, name: str) -> str | None:
        return None

    def debug(self, message: dict[str, Any]) -> None:
        pass

    async def publish(self, subject: str, payload: bytes, headers: dict[str, str] | None = None) -> None:
        raise NotConnected("a connection test has no NATS connection")


async def test_modbus_connection(config: ModbusReadConfig, timeout_s: float = 5.0) -> dict[str, Any]:
    """Connect and read the register map once (the Hub's "test connection" button).

    Returns ``{"ok": bool, "message": str, "latency_ms": float, "sample": {tag: value}}``: ``ok`` when
    the connection opened and every value was read with good quality; ``latency_ms`` is the time of
    the read (all requests) or, on failure, the time until the failure; ``sample`` holds the values
    read with good quality. The whole test is bounded by ``timeout_s``.
    """
    probe = _ProbeContext(config.device or f"{config.host}:{config.port}")
    source = ModbusReadSource(config, probe)
    where = f"{config.host}:{config.port} unit {config.unit_id}"
    started = time.perf_counter()
    read_started = started
    try:
        async with asyncio.timeout(timeout_s):
            await source.connect()
            read_started = time.perf_counter()
            batch = await source.read()
    except TimeoutError:
        return _probe_result(False, f"{where}: no answer within {timeout_s:g} s", started)
    except NotConnected as exc:
        return _probe_result(False, str(exc), started)
    except Exception as exc:
        return _probe_result(False, f"{where}: {type(exc).__name__}: {exc}", started)
    finally:
        await source.close()
    latency_ms = (time.perf_counter() - read_started) * 1000
    tags = source.tags
    sample = {tag: v for tag, v, q in zip(tags, batch.values, batch.quality, strict=True) if q == _GOOD}
    ok = probe.health is Health.OK
    if ok:
        message = f"connected to {where}; read {len(tags)} value(s) in {len(source.requests)} request(s)"
    else:
        message = probe.message
    return {"ok": ok, "message": message, "latency_ms": round(latency_ms, 3), "sample": sample}


test_modbus_connection.__test__ = False  # type: ignore[attr-defined]  # not a pytest test


def _probe_result(ok: bool, message: str, started: float) -> dict[str, Any]:
    latency_ms = round((time.perf_counter() - started) * 1000, 3)
    return {"ok": ok, "message": message, "latency_ms": latency_ms, "sample": {}}


SPEC = NodeSpec(
    type_id="modbus.read",
    version=1,
    category=Category.DEVICE,
    title="Modbus read",
    description="Polls coils and registers of a Modbus TCP device.",
    config=ModbusReadConfig,
    example=EXAMPLE,
    outputs=(points_out(description="One batch of points per poll"),),
    stateful=False,
    device_protocol="modbus",
    icon="cpu",
    behaviour=ModbusReadSource,
)
