"""``modbus.read``: poll a Modbus TCP device's coils and registers on a fixed interval."""

from collections.abc import Iterator
from typing import Annotated, Literal

import msgspec
from msgspec import Meta

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
)
