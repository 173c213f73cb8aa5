"""The messages between the runtime and a UDF worker.

Every message is one frame: a 4-byte big-endian length, then a msgspec msgpack body (never
pickle: decoding a frame builds only plain data, so a hostile worker cannot run code in the
runtime through it). The worker encodes loosely-typed data; the runtime decodes every frame into
the strict types below, so a value of the wrong type, a quality outside 0..2 or an oversized text
fails validation instead of reaching the pipeline. Columns of equal length and the point and byte
limits are checked by the runtime after decoding.

Runtime -> worker: :class:`Init` once, then :class:`Process` or :class:`GetState`, one at a time.
Worker -> runtime: :class:`Ready` or :class:`Failed` after Init; :class:`Result` or :class:`Error`
after Process; :class:`StateReply` after GetState.
"""

from __future__ import annotations

import struct
from typing import Annotated, Any, Final, Literal

import msgspec
from msgspec import Meta

HEADER: Final = struct.Struct(">I")
MAX_RESPONSE_BYTES: Final = 64 * 1024 * 1024  # one response frame; larger is "output too large"
MAX_STATE_BYTES: Final = 16 * 1024 * 1024  # the encoded state dict
MAX_LOG_LINES: Final = 50  # print() lines kept per call
MAX_LOG_LINE: Final = 1000  # characters per print() line
MAX_MESSAGE: Final = 2000  # characters of an error message

Value = float | int | bool | str
Text = Annotated[str, Meta(max_length=MAX_MESSAGE)]
LogLine = Annotated[str, Meta(max_length=MAX_LOG_LINE)]
Quality = Annotated[int, Meta(ge=0, le=2)]
JsonObject = dict[str, Any]


class _Message(msgspec.Struct, tag_field="op", kw_only=True):
    """Base of every frame: the ``op`` field names the message."""


# -- runtime -> worker ------------------------------------------------------------------------------


class Init(_Message, tag="init"):
    code: str
    state: JsonObject
    memory_mb: int  # address space the code may use beyond the worker's own baseline
    cpu_budget_s: int  # RLIMIT_CPU: cumulative CPU seconds before the kernel kills the worker
    max_output_bytes: int
    uid: int = -1  # when the runtime is root: the unprivileged user the worker becomes
    gid: int = -1
    check_policy: bool = True  # False only in tests of the runtime layers


class Process(_Message, tag="process"):
    ts: list[int]
    series: list[str]
    values: list[Value]
    quality: list[int]
    max_points: int
    want_state: bool = False  # also return the state (for snapshots)
    replace_state: JsonObject | None = None  # restore this state before the call


class GetState(_Message, tag="get_state"):
    pass


Request = Init | Process | GetState


# -- worker -> runtime ------------------------------------------------------------------------------


class Problem(msgspec.Struct, kw_only=True):
    message: Text
    line: int | None = None
    column: int | None = None
    hint: Text = ""


class Ready(_Message, tag="ready"):
    baseline_mb: float  # the worker's address space before user code (the memory limit adds to it)
    address_limit_mb: float


class Failed(_Message, tag="failed"):
    """The worker could not start: the code was refused, failed to load, or the sandbox failed."""

    stage: Literal["policy", "load", "setup"]
    problems: Annotated[list[Problem], Meta(max_length=100)]


class Result(_Message, tag="result"):
    ts: list[int]
    series: list[str]
    values: list[Value]
    quality: list[Quality]
    cpu_s: float
    state: JsonObject | None = None
    state_error: Text = ""
    log: Annotated[list[LogLine], Meta(max_length=MAX_LOG_LINES + 1)] = []


ErrorKind = Literal["exception", "violation", "output", "memory"]


class Error(_Message, tag="error"):
    """process raised, was refused by the sandbox, ran out of memory, or returned unusable output."""

    kind: ErrorKind
    type: Text
    message: Text
    cpu_s: float
    line: int | None = None
    log: Annotated[list[LogLine], Meta(max_length=MAX_LOG_LINES + 1)] = []


class StateReply(_Message, tag="state"):
    state: JsonObject | None
    error: Text = ""


Response = Ready | Failed | Result | Error | StateReply


def frame(message: msgspec.Struct, encoder: msgspec.msgpack.Encoder) -> bytes:
    body = encoder.encode(message)
    return HEADER.pack(len(body)) + body
