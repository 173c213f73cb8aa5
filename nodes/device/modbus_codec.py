"""Modbus register maps: coalescing into read requests, and decoding of the responses.

Pure functions and precomputed decoders, no I/O. ``plan_requests`` is called once when a
``modbus.read`` node starts; each poll then calls every request's ``decode`` once.

Coalescing
    Entries are grouped per table (coil, discrete_input, holding, input, in that order), sorted by
    address, and swept from the lowest address: an entry joins the current request when the unused
    registers (bits for coil tables) between the request's end and the entry are at most
    ``max_gap`` and the request still fits the protocol limit (125 registers per holding/input read,
    2000 bits per coil/discrete-input read); otherwise it starts a new request. This greedy sweep
    gives the fewest requests for those two constraints and the same plan for the same map.

Decoding conventions
    A value's bytes, most significant first, are ``A B C D`` (32-bit) or ``A B C D E F G H``
    (64-bit). The byte order names how they arrive in the registers (each register travels
    high byte first, as Modbus defines):

    ======  =========================  ==============================  ================
    order   32-bit (r0, r1)            64-bit (r0, r1, r2, r3)         16-bit (r0)
    ======  =========================  ==============================  ================
    ABCD    AB CD (big-endian)         AB CD EF GH                     AB
    DCBA    DC BA (little-endian)      HG FE DC BA                     BA (bytes swapped)
    BADC    BA DC (bytes swapped)      BA DC FE HG                     BA (bytes swapped)
    CDAB    CD AB (words swapped)      GH EF CD AB (all words reversed) AB
    ======  =========================  ==============================  ================

    That is: the first letter pair says the word order (AB.. most significant word first, CD../DC..
    least significant word first) and ABCD/CDAB keep the bytes of each word, BADC/DCBA swap them.
    For 64-bit values "word swap" reverses all four words (as pymodbus' ``word_order="little"``).

    * ``string``: ``length`` registers, two characters per register taken high byte first (ABCD,
      CDAB) or low byte first (BADC, DCBA); word order does not apply to text. NULs and spaces are
      stripped from both ends; bytes are decoded as UTF-8 (invalid bytes replaced).
    * ``bit``: bit ``bit`` (0 = least significant) of the register read as uint16 in its byte order.
    * ``bool``: one coil or discrete input.
    * ``scale``/``offset``: numeric types give ``raw * scale + offset``; integers stay ``int`` when
      scale is 1 and offset 0, otherwise every numeric value is a ``float``. bool, bit and string
      values are never scaled.

Decoders take a response's data bytes as they arrive (after the byte count). Each request
decodes with one ``struct.unpack_from`` per *layer*: the request's values grouped by
the buffer they need (registers packed big-endian, or with the bytes of every word swapped) and the
struct endianness, split further only where two values overlap (e.g. several bits of one register).
Values come out in layer order; ``ReadRequest.indices`` says which register-map entry each is.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from nodes.points import Value

if TYPE_CHECKING:  # modbus_read imports this module for its behaviour
    from nodes.device.modbus_read import ByteOrder, DataType, Register, Table

__all__ = [
    "BYTE_ORDERS",
    "FUNCTION_CODES",
    "MAX_COUNT",
    "TABLES",
    "BitDecoder",
    "ReadRequest",
    "RegisterDecoder",
    "bits_to_bytes",
    "encode_value",
    "plan_requests",
    "registers_to_bytes",
    "swap_bytes",
    "zero_value",
]

TABLES: tuple[Table, ...] = ("coil", "discrete_input", "holding", "input")
BYTE_ORDERS: tuple[ByteOrder, ...] = ("ABCD", "DCBA", "BADC", "CDAB")
FUNCTION_CODES: dict[Table, int] = {"coil": 1, "discrete_input": 2, "holding": 3, "input": 4}
MAX_COUNT: dict[Table, int] = {"coil": 2000, "discrete_input": 2000, "holding": 125, "input": 125}

_STRUCT_CODES: dict[str, str] = {
    "int16": "h",
    "uint16": "H",
    "bit": "H",
    "int32": "i",
    "uint32": "I",
    "float32": "f",
    "int64": "q",
    "uint64": "Q",
    "float64": "d",
}
_FLOAT_TYPES = frozenset({"float32", "float64"})

Buffer = Literal["be", "le"]  # registers packed high byte first, or with every word's bytes swapped
Endian = Literal[">", "<"]

# Which packed buffer and struct endianness give a value's bytes in the given order (see module doc).
_LAYOUT: dict[str, tuple[Buffer, Endian]] = {
    "ABCD": ("be", ">"),
    "DCBA": ("be", "<"),
    "BADC": ("le", ">"),
    "CDAB": ("le", "<"),
}

Decoder = Callable[[bytes], list[Value]]


def zero_value(reg: Register) -> Value:
    """The neutral value of an entry's decoded type (used for points never read successfully)."""
    if reg.data_type in ("bool", "bit"):
        return False
    if reg.data_type == "string":
        return ""
    if reg.data_type in _FLOAT_TYPES or reg.scale != 1.0 or reg.offset != 0.0:
        return 0.0
    return 0


def _string_fixup(raw: bytes) -> str:
    return raw.strip(b"\x00 ").decode("utf-8", "replace")


def _bit_fixup(bit: int) -> Callable[[int], bool]:
    mask = 1 << bit

    def fix(word: int) -> bool:
        return bool(word & mask)

    return fix


def _scale_fixup(scale: float, offset: float) -> Callable[[float], float]:
    def fix(raw: float) -> float:
        return raw * scale + offset

    return fix


@dataclass(slots=True)
class _Layer:
    buffer: Buffer
    struct: struct.Struct
    fixups: tuple[tuple[int, Callable[[Any], Value]], ...]


def swap_bytes(raw: bytes) -> bytearray:
    """The register bytes with the two bytes of every word swapped."""
    out = bytearray(len(raw))
    out[0::2] = raw[1::2]
    out[1::2] = raw[0::2]
    return out


def registers_to_bytes(registers: Sequence[int]) -> bytes:
    """Register values (as pymodbus lists them) to their bytes on the wire."""
    return struct.pack(f">{len(registers)}H", *registers)


def bits_to_bytes(bits: Sequence[bool]) -> bytes:
    """Bits (first bit first) to their bytes on the wire (first bit in the lowest bit of byte 0)."""
    value = sum(1 << i for i, bit in enumerate(bits) if bit)
    return value.to_bytes((len(bits) + 7) // 8, "little")


class RegisterDecoder:
    """Decodes the data bytes of one holding/input register response (``count`` registers).

    ``entries`` are ``(register-map index, offset in the response, entry, byte order)``.
    ``order`` lists the register-map indices in the order ``__call__`` returns their values.
    """

    __slots__ = ("_layers", "_need_le", "count", "order", "size")

    def __init__(self, count: int, entries: Sequence[tuple[int, int, Register, ByteOrder]]) -> None:
        self.count = count
        self.size = 2 * count
        groups: dict[tuple[Buffer, Endian], list[tuple[int, int, Register]]] = {}
        for index, offset, reg, order in sorted(entries, key=lambda e: (e[1], e[0])):
            buffer, endian = _LAYOUT[order]
            if reg.data_type == "string":  # text: only the byte order inside a word matters
                buffer, endian = ("le" if order in ("BADC", "DCBA") else "be"), ">"
            groups.setdefault((buffer, endian), []).append((index, offset, reg))
        layers: list[_Layer] = []
        order_out: list[int] = []
        for (buffer, endian), members in sorted(groups.items()):
            # Split into non-overlapping runs: each run becomes one struct format with pad bytes.
            runs: list[list[tuple[int, int, Register]]] = []
            ends: list[int] = []
            for member in members:
                _, offset, reg = member
                for i, end in enumerate(ends):
                    if end <= offset:
                        runs[i].append(member)
                        ends[i] = offset + reg.word_count
                        break
                else:
                    runs.append([member])
                    ends.append(offset + reg.word_count)
            for run in runs:
                fmt: list[str] = [endian]
                position = 0  # in bytes
                fixups: list[tuple[int, Callable[[Any], Value]]] = []
                for slot, (index, offset, reg) in enumerate(run):
                    if offset * 2 > position:
                        fmt.append(f"{offset * 2 - position}x")
                    if reg.data_type == "string":
                        fmt.append(f"{reg.length * 2}s")
                        fixups.append((slot, _string_fixup))
                    else:
                        fmt.append(_STRUCT_CODES[reg.data_type])
                        if reg.data_type == "bit":
                            fixups.append((slot, _bit_fixup(reg.bit)))
                        elif reg.scale != 1.0 or reg.offset != 0.0:
                            fixups.append((slot, _scale_fixup(reg.scale, reg.offset)))
                    position = (offset + reg.word_count) * 2
                    order_out.append(index)
                layers.append(_Layer(buffer, struct.Struct("".join(fmt)), tuple(fixups)))
        self._layers = tuple(layers)
        self._need_le = any(layer.buffer == "le" for layer in layers)
        self.order: tuple[int, ...] = tuple(order_out)

    def __call__(self, raw: bytes) -> list[Value]:
        """Values of a response's register bytes (as on the wire, high byte first)."""
        if len(raw) != self.size:
            raise ValueError(f"response holds {len(raw)} bytes, expected {self.size}")
        be = raw
        le = swap_bytes(raw) if self._need_le else raw
        out: list[Value] = []
        for layer in self._layers:
            values = layer.struct.unpack_from(be if layer.buffer == "be" else le)
            if layer.fixups:
                fixed = list(values)
                for slot, fix in layer.fixups:
                    fixed[slot] = fix(fixed[slot])
                out.extend(fixed)
            else:
                out.extend(values)
        return out


class BitDecoder:
    """Picks the requested coils/discrete inputs out of the data bytes of a bit response.

    Modbus packs bits first-bit-first from the least significant bit of the first byte.
    """

    __slots__ = ("_masks", "count", "order", "size")

    def __init__(self, count: int, entries: Sequence[tuple[int, int]]) -> None:
        """``entries`` are ``(register-map index, offset in the response)``."""
        ordered = sorted(entries, key=lambda e: (e[1], e[0]))
        self.count = count
        self.size = (count + 7) // 8
        self.order: tuple[int, ...] = tuple(index for index, _ in ordered)
        self._masks = tuple((offset >> 3, 1 << (offset & 7)) for _, offset in ordered)

    def __call__(self, raw: bytes) -> list[Value]:
        if len(raw) < self.size:
            raise ValueError(f"response holds {len(raw)} bytes, expected {self.size}")
        return [bool(raw[byte] & mask) for byte, mask in self._masks]


@dataclass(frozen=True, slots=True)
class ReadRequest:
    """One read of ``count`` registers/bits from ``address`` in ``table``."""

    table: Table
    address: int
    count: int
    # Register-map indices of the values ``decode`` returns, in that order.
    indices: tuple[int, ...]
    decode: Decoder = field(repr=False, compare=False)
    # True when the request spans unused addresses (bridged gaps) between its entries.
    bridges_gaps: bool = False

    @property
    def function_code(self) -> int:
        return FUNCTION_CODES[self.table]

    @property
    def last(self) -> int:
        return self.address + self.count - 1

    def describe(self) -> str:
        """e.g. ``holding 100-109 (FC3)``."""
        return f"{self.table} {self.address}-{self.last} (FC{self.function_code})"


def plan_requests(
    registers: Sequence[Register], *, max_gap: int, default_byte_order: ByteOrder = "ABCD"
) -> tuple[ReadRequest, ...]:
    """Coalesce a register map into the fewest read requests (see the module docstring)."""
    if max_gap < 0:
        raise ValueError("max_gap must be >= 0")
    requests: list[ReadRequest] = []
    for table in TABLES:
        limit = MAX_COUNT[table]
        members = sorted(
            ((i, reg) for i, reg in enumerate(registers) if reg.table == table),
            key=lambda item: (item[1].address, item[0]),
        )
        current: list[tuple[int, Register]] = []
        start = end = 0  # [start, end) of the current request
        covered = 0  # addresses of the current request used by some entry
        for index, reg in members:
            width = reg.word_count
            if width > limit:
                raise ValueError(f"{reg.tag!r} spans {width} addresses, more than one request can read ({limit})")
            reg_end = reg.address + width
            if current and reg.address - end <= max_gap and max(end, reg_end) - start <= limit:
                covered += max(0, reg_end - max(end, reg.address))
                end = max(end, reg_end)
                current.append((index, reg))
                continue
            if current:
                requests.append(_request(table, start, end, covered, current, default_byte_order))
            current, start, end, covered = [(index, reg)], reg.address, reg_end, width
        if current:
            requests.append(_request(table, start, end, covered, current, default_byte_order))
    return tuple(requests)


def _request(
    table: Table,
    start: int,
    end: int,
    covered: int,
    members: list[tuple[int, Register]],
    default_byte_order: ByteOrder,
) -> ReadRequest:
    count = end - start
    decoder: RegisterDecoder | BitDecoder
    if table in ("coil", "discrete_input"):
        decoder = BitDecoder(count, [(index, reg.address - start) for index, reg in members])
    else:
        decoder = RegisterDecoder(
            count,
            [(index, reg.address - start, reg, reg.byte_order or default_byte_order) for index, reg in members],
        )
    return ReadRequest(table, start, count, decoder.order, decoder, bridges_gaps=covered < count)


# --- encoding (the inverse; used by the simulator and by tests) ------------------------------------


def encode_value(data_type: DataType, byte_order: ByteOrder, value: Value, *, length: int = 1, bit: int = 0) -> bytes:
    """The register bytes (as sent on the wire) of one value; the inverse of decoding, raw (unscaled).

    Written independently of the decoder: the value is packed big-endian and its bytes are then
    permuted as the byte-order table in the module docstring says.
    """
    if data_type == "bool":
        raise ValueError("bool values live in coils/discrete inputs, not registers")
    if data_type == "string":
        text = str(value).encode("utf-8")[: length * 2].ljust(length * 2, b"\x00")
        if byte_order in ("BADC", "DCBA"):
            return b"".join(text[i + 1 : i + 2] + text[i : i + 1] for i in range(0, len(text), 2))
        return text
    if data_type == "bit":
        raise ValueError("bit values share a register; encode the register as uint16")
    raw = struct.pack(">" + _STRUCT_CODES[data_type], value)
    words = [raw[i : i + 2] for i in range(0, len(raw), 2)]
    if byte_order in ("CDAB", "DCBA"):  # least significant word first
        words.reverse()
    if byte_order in ("BADC", "DCBA"):  # low byte first inside each word
        words = [w[::-1] for w in words]
    return b"".join(words)
