"""Register-map coalescing and response decoding of ``modbus.read`` (pure functions, no I/O)."""

from __future__ import annotations

import random
import struct
from typing import Any, Literal

import pytest
from pymodbus.client import AsyncModbusTcpClient

from nodes.device.modbus_codec import (
    BYTE_ORDERS,
    ReadRequest,
    bits_to_bytes,
    encode_value,
    plan_requests,
    registers_to_bytes,
)
from nodes.device.modbus_read import ByteOrder, Register
from nodes.points import Value


def reg(tag: str, address: int, data_type: str = "uint16", table: str = "holding", **kw: Any) -> Register:
    return Register(tag=tag, address=address, table=table, data_type=data_type, **kw)  # type: ignore[arg-type]


def spans(plan: tuple[ReadRequest, ...]) -> list[tuple[str, int, int]]:
    return [(r.table, r.address, r.count) for r in plan]


def decode_all(registers: list[Register], raw_by_request: list[bytes], **kw: Any) -> dict[str, Value]:
    plan = plan_requests(registers, max_gap=kw.pop("max_gap", 16), **kw)
    out: dict[str, Value] = {}
    for request, raw in zip(plan, raw_by_request, strict=True):
        for index, value in zip(request.indices, request.decode(raw), strict=True):
            out[registers[index].tag] = value
    return out


# --- coalescing -----------------------------------------------------------------------------------


def test_contiguous_registers_make_one_request() -> None:
    regs = [reg("a", 0), reg("b", 1, "float32"), reg("c", 3, "int64"), reg("d", 7, "string", length=3)]
    assert spans(plan_requests(regs, max_gap=0)) == [("holding", 0, 10)]


def test_gaps_up_to_max_gap_are_bridged() -> None:
    regs = [reg("a", 0), reg("b", 5), reg("c", 11)]  # gaps of 4 and 5 unused registers
    assert spans(plan_requests(regs, max_gap=5)) == [("holding", 0, 12)]
    assert spans(plan_requests(regs, max_gap=4)) == [("holding", 0, 6), ("holding", 11, 1)]
    assert spans(plan_requests(regs, max_gap=0)) == [("holding", 0, 1), ("holding", 5, 1), ("holding", 11, 1)]
    bridged = plan_requests(regs, max_gap=5)[0]
    assert bridged.bridges_gaps
    assert not plan_requests([reg("a", 0), reg("b", 1)], max_gap=5)[0].bridges_gaps


def test_register_requests_hold_at_most_125_registers() -> None:
    regs = [reg(f"r{i}", i) for i in range(300)]
    assert spans(plan_requests(regs, max_gap=16)) == [("holding", 0, 125), ("holding", 125, 125), ("holding", 250, 50)]
    # A value never straddles two requests: a float32 at 124..125 starts the next request.
    regs = [reg(f"r{i}", i) for i in range(124)] + [reg("f", 124, "float32")]
    assert spans(plan_requests(regs, max_gap=0)) == [("holding", 0, 124), ("holding", 124, 2)]
    # A 125-register string is one full request.
    assert spans(plan_requests([reg("s", 10, "string", length=125)], max_gap=0)) == [("holding", 10, 125)]
    # Gaps count toward the limit.
    assert spans(plan_requests([reg("a", 0), reg("b", 124), reg("c", 125)], max_gap=124)) == [
        ("holding", 0, 125),
        ("holding", 125, 1),
    ]


def test_bit_requests_hold_at_most_2000_bits_and_gaps_count_in_bits() -> None:
    coils = [reg(f"c{i}", i, "bool", "coil") for i in range(4100)]
    assert spans(plan_requests(coils, max_gap=0)) == [("coil", 0, 2000), ("coil", 2000, 2000), ("coil", 4000, 100)]
    sparse = [reg("a", 0, "bool", "discrete_input"), reg("b", 20, "bool", "discrete_input")]  # 19 unused bits
    assert spans(plan_requests(sparse, max_gap=19)) == [("discrete_input", 0, 21)]
    assert spans(plan_requests(sparse, max_gap=18)) == [("discrete_input", 0, 1), ("discrete_input", 20, 1)]


def test_tables_are_never_mixed_and_come_in_a_fixed_order() -> None:
    regs = [
        reg("i", 0, table="input"),
        reg("h", 0),
        reg("h2", 1),
        reg("d", 0, "bool", "discrete_input"),
        reg("c", 0, "bool", "coil"),
        reg("c2", 1, "bool", "coil"),
    ]
    assert spans(plan_requests(regs, max_gap=16)) == [
        ("coil", 0, 2),
        ("discrete_input", 0, 1),
        ("holding", 0, 2),
        ("input", 0, 1),
    ]
    assert [r.function_code for r in plan_requests(regs, max_gap=16)] == [1, 2, 3, 4]


def test_plan_is_deterministic_whatever_the_order_of_the_map() -> None:
    rng = random.Random(7)
    regs = [
        reg(
            f"t{i}",
            rng.randrange(0, 3000),
            rng.choice(["uint16", "float32", "int64"]),
            rng.choice(["holding", "input"]),
        )
        for i in range(400)
    ]
    reference = plan_requests(regs, max_gap=8)
    reference_tags = [[regs[i].tag for i in r.indices] for r in reference]
    for _ in range(5):
        shuffled = regs[:]
        rng.shuffle(shuffled)
        plan = plan_requests(shuffled, max_gap=8)
        assert spans(plan) == spans(reference)
        assert [{shuffled[i].tag for i in r.indices} for r in plan] == [set(t) for t in reference_tags]
    assert spans(plan_requests(regs, max_gap=8)) == spans(reference)
    # Every entry is read exactly once.
    assert sorted(i for r in reference for i in r.indices) == list(range(len(regs)))


def test_greedy_plan_is_minimal_on_small_maps() -> None:
    """Cross-check the greedy sweep against an exhaustive search of split points."""
    rng = random.Random(3)
    for _ in range(200):
        addresses = sorted(rng.sample(range(0, 400), rng.randrange(1, 9)))
        regs = [reg(f"t{i}", a, "float32") for i, a in enumerate(addresses)]
        max_gap = rng.randrange(0, 40)
        got = len(plan_requests(regs, max_gap=max_gap))
        best = _fewest_requests([(a, a + 2) for a in addresses], max_gap, 125)
        assert got == best, (addresses, max_gap)


def _fewest_requests(spans_: list[tuple[int, int]], max_gap: int, limit: int) -> int:
    n = len(spans_)
    best = [0] + [n + 1] * n  # best[i]: requests for the first i entries
    for i in range(1, n + 1):
        for j in range(i):  # entries j..i-1 in one request
            start, end = spans_[j][0], max(e for _, e in spans_[j:i])
            gaps_ok = all(spans_[k + 1][0] - max(e for _, e in spans_[j : k + 1]) <= max_gap for k in range(j, i - 1))
            if end - start <= limit and gaps_ok:
                best[i] = min(best[i], best[j] + 1)
    return best[n]


def test_overlapping_entries_share_a_request() -> None:
    regs = [reg("word", 10), reg("bit0", 10, "bit", bit=0), reg("bit15", 10, "bit", bit=15), reg("again", 10)]
    plan = plan_requests(regs, max_gap=0)
    assert spans(plan) == [("holding", 10, 1)]
    assert decode_all(regs, [b"\x80\x01"], max_gap=0) == {"word": 0x8001, "bit0": True, "bit15": True, "again": 0x8001}


def test_invalid_inputs() -> None:
    with pytest.raises(ValueError):
        plan_requests([reg("a", 0)], max_gap=-1)
    request = plan_requests([reg("a", 0, "float32")], max_gap=0)[0]
    with pytest.raises(ValueError):
        request.decode(b"\x00\x01")  # one register short
    bits = plan_requests([reg("c", 0, "bool", "coil"), reg("d", 9, "bool", "coil")], max_gap=16)[0]
    with pytest.raises(ValueError):
        bits.decode(b"\x01")  # 10 bits need 2 bytes
    assert plan_requests([], max_gap=16) == ()


# --- decoding --------------------------------------------------------------------------------------

# The byte-order table of the module docstring, written out per width (A = most significant byte).
_PERMUTATIONS: dict[int, dict[str, list[int]]] = {
    2: {"ABCD": [0, 1], "CDAB": [0, 1], "BADC": [1, 0], "DCBA": [1, 0]},
    4: {"ABCD": [0, 1, 2, 3], "DCBA": [3, 2, 1, 0], "BADC": [1, 0, 3, 2], "CDAB": [2, 3, 0, 1]},
    8: {
        "ABCD": [0, 1, 2, 3, 4, 5, 6, 7],
        "DCBA": [7, 6, 5, 4, 3, 2, 1, 0],
        "BADC": [1, 0, 3, 2, 5, 4, 7, 6],
        "CDAB": [6, 7, 4, 5, 2, 3, 0, 1],
    },
}
_CODES = {
    "int16": "h",
    "uint16": "H",
    "int32": "i",
    "uint32": "I",
    "float32": "f",
    "int64": "q",
    "uint64": "Q",
    "float64": "d",
}
# Values whose bytes all differ, so that any byte-order mistake changes them.
_VALUES: dict[str, list[Value]] = {
    "int16": [-2, 0x1234, -0x7EDC, 1],
    "uint16": [0xFEDC, 0x0102, 0, 65535],
    "int32": [-0x12345679, 0x01020304, -1, 2**31 - 1],
    "uint32": [0xF1E2D3C4, 0x01020304, 0, 2**32 - 1],
    "float32": [struct.unpack(">f", b"\x41\x42\x43\x44")[0], -1.5, 2.0**-40, float("inf")],
    "int64": [-0x0102030405060708, 0x1122334455667788 >> 1, -(2**63), 2**63 - 1],
    "uint64": [0xF1E2D3C4B5A69788, 0x0102030405060708, 0, 2**64 - 1],
    "float64": [struct.unpack(">d", bytes(range(0x41, 0x49)))[0], -2.5e300, 1e-300, -0.0],
}


def _wire_bytes(data_type: str, order: str, value: Value) -> bytes:
    big = struct.pack(">" + _CODES[data_type], value)
    return bytes(big[i] for i in _PERMUTATIONS[len(big)][order])


@pytest.mark.parametrize("order", BYTE_ORDERS)
@pytest.mark.parametrize("data_type", list(_CODES))
def test_every_numeric_type_in_every_byte_order(data_type: str, order: ByteOrder) -> None:
    values = _VALUES[data_type]
    width = struct.calcsize(_CODES[data_type]) // 2
    regs = [reg(f"v{i}", i * width, data_type, byte_order=order) for i in range(len(values))]
    raw = b"".join(_wire_bytes(data_type, order, v) for v in values)
    got = decode_all(regs, [raw], max_gap=0)
    assert got == {f"v{i}": v for i, v in enumerate(values)}
    assert all(type(got[f"v{i}"]) is type(v) for i, v in enumerate(values))
    # The node's default byte order applies when the entry names none.
    plain = [reg(f"v{i}", i * width, data_type) for i in range(len(values))]
    assert decode_all(plain, [raw], max_gap=0, default_byte_order=order) == got
    # The simulator's encoder is the inverse.
    assert b"".join(encode_value(data_type, order, v) for v in values) == raw  # type: ignore[arg-type]


@pytest.mark.parametrize("data_type", ["int32", "uint32", "float32", "int64", "uint64", "float64"])
def test_word_orders_agree_with_pymodbus(data_type: str) -> None:
    """ABCD/CDAB are pymodbus' word_order big/little; check against its own converter."""
    value = _VALUES[data_type][0]
    dt = getattr(AsyncModbusTcpClient.DATATYPE, data_type.upper())
    orders: tuple[tuple[ByteOrder, Literal["big", "little"]], ...] = (("ABCD", "big"), ("CDAB", "little"))
    for order, word_order in orders:
        raw = _wire_bytes(data_type, order, value)
        registers = list(struct.unpack(f">{len(raw) // 2}H", raw))
        expected = AsyncModbusTcpClient.convert_from_registers(registers, dt, word_order=word_order)
        assert decode_all([reg("v", 0, data_type, byte_order=order)], [raw]) == {"v": expected}


@pytest.mark.parametrize("order", BYTE_ORDERS)
def test_strings(order: ByteOrder) -> None:
    swapped = order in ("BADC", "DCBA")

    def wire(text: bytes) -> bytes:
        if swapped:
            return b"".join(text[i + 1 : i + 2] + text[i : i + 1] for i in range(0, len(text), 2))
        return text

    regs = [
        reg("name", 0, "string", length=4, byte_order=order),
        reg("padded", 4, "string", length=3, byte_order=order),
        reg("empty", 7, "string", length=2, byte_order=order),
        reg("utf8", 9, "string", length=2, byte_order=order),
    ]
    raw = wire(b"PUMP-01\x00") + wire(b" AB C\x00") + wire(b"\x00\x00\x00\x00") + wire("Ä°".encode())
    assert decode_all(regs, [raw], max_gap=0) == {"name": "PUMP-01", "padded": "AB C", "empty": "", "utf8": "Ä°"}


@pytest.mark.parametrize("order", BYTE_ORDERS)
def test_bits_of_a_register(order: ByteOrder) -> None:
    word = 0b1000_0000_0010_0101  # bits 0, 2, 5 and 15
    raw = _wire_bytes("uint16", order, word)
    regs = [reg(f"b{n}", 0, "bit", bit=n, byte_order=order) for n in range(16)]
    got = decode_all(regs, [raw], max_gap=0)
    assert got == {f"b{n}": bool(word >> n & 1) for n in range(16)}
    assert all(type(v) is bool for v in got.values())


def test_coils_and_discrete_inputs() -> None:
    states = [bool((i * 7) % 3) for i in range(37)]
    kept = [i for i in range(37) if i % 5 != 4]  # 1-bit gaps
    regs = [reg(f"c{i}", 100 + i, "bool", "coil") for i in kept]
    raw = bits_to_bytes(states)
    assert raw[0] == sum(1 << i for i in range(8) if states[i])  # first coil in the lowest bit
    got = decode_all(regs, [raw])
    assert got == {f"c{i}": states[i] for i in kept}
    single = [reg("only", 7, "bool", "discrete_input")]
    assert decode_all(single, [b"\x01"]) == {"only": True}
    assert decode_all(single, [b"\x00"]) == {"only": False}


def test_scale_and_offset() -> None:
    regs = [
        reg("raw_int", 0, "int16"),
        reg("scaled_int", 1, "int16", scale=0.1, offset=-5.0),
        reg("doubled", 2, "uint16", scale=2.0),
        reg("shifted", 3, "uint32", offset=1.0),
        reg("float", 5, "float32", scale=10.0, offset=0.5),
        reg("bit", 7, "bit", bit=1, scale=100.0),  # never scaled
        reg("text", 8, "string", length=1, scale=100.0),  # never scaled
    ]
    raw = struct.pack(">hhHIf", -250, -250, 21, 41, 1.25) + struct.pack(">H", 0b10) + b"OK"
    got = decode_all(regs, [raw], max_gap=0)
    assert got == {
        "raw_int": -250,
        "scaled_int": pytest.approx(-30.0),
        "doubled": 42.0,
        "shifted": 42.0,
        "float": 13.0,
        "bit": True,
        "text": "OK",
    }
    assert type(got["raw_int"]) is int
    assert type(got["doubled"]) is float and type(got["shifted"]) is float and type(got["scaled_int"]) is float


def test_mixed_request_maps_values_back_to_their_entries() -> None:
    """One request mixing types, byte orders, gaps and overlaps: every value lands on its entry."""
    rng = random.Random(11)
    entries: list[tuple[Register, Value]] = []
    image = bytearray(250)
    address = 0
    for i in range(40):
        data_type = rng.choice(list(_CODES))
        order = rng.choice(BYTE_ORDERS)
        value = rng.choice(_VALUES[data_type])
        raw = _wire_bytes(data_type, order, value)
        if address + len(raw) // 2 > 125:
            break
        image[2 * address : 2 * address + len(raw)] = raw
        entries.append((reg(f"t{i}", address, data_type, byte_order=order), value))
        if rng.random() < 0.3:  # a bit of the value's first register, read as a second entry
            word = struct.unpack(">H", raw[:2])[0] if order in ("ABCD", "CDAB") else struct.unpack("<H", raw[:2])[0]
            entries.append((reg(f"t{i}_bit3", address, "bit", bit=3, byte_order=order), bool(word & 8)))
        address += len(raw) // 2 + rng.randrange(0, 3)
    regs = [r for r, _ in entries]
    plan = plan_requests(regs, max_gap=2)
    assert len(plan) == 1
    count = plan[0].count
    got = decode_all(regs, [bytes(image[2 * plan[0].address : 2 * (plan[0].address + count)])], max_gap=2)
    assert got == {r.tag: v for r, v in entries}


def test_registers_to_bytes_matches_the_wire() -> None:
    assert registers_to_bytes([0x0102, 0xA0B0]) == b"\x01\x02\xa0\xb0"
