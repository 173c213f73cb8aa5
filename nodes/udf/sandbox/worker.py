"""The UDF worker: a fresh interpreter that runs one user's code, one batch at a time.

Started by ``pool.py`` as ``python -I -S -B -c BOOTSTRAP <project root> <msgspec's site dir>``
(isolated mode, no site, an empty environment and an empty temporary working directory), never as a
fork of the runtime. It talks over its standard input and output with the frames of
``protocol.py``. Setup, in this order, while the process is still trusted:

1. read :class:`~nodes.udf.sandbox.protocol.Init` (code, state, limits);
2. import the allowed modules and warm up their lazy imports (``_strptime``...), then build
   sanitized copies of them (public attributes only; no attribute that is another module, so
   ``datetime.sys`` or ``json.codecs`` do not exist; no ``operator.attrgetter``/``methodcaller``)
   and the restricted builtins (the policy's safe subset, a captured ``print``, a guarded
   ``__import__`` that honours the allow-list and returns the sanitized copies);
3. check the code against the policy again and compile it;
4. rlimits: RLIMIT_AS (baseline + memory_mb), RLIMIT_CPU (a cumulative backstop: the runtime
   restarts the worker before it runs out, and kills it on every per-batch timeout), RLIMIT_FSIZE
   0, RLIMIT_NOFILE 8, RLIMIT_CORE 0, RLIMIT_MEMLOCK 0; when started as root it drops to the
   unprivileged user given in Init (``nobody``), then RLIMIT_NPROC 0 (not enforced for root,
   hence the drop): no fork, no thread;
5. the audit hook (:func:`_audit_hook`), which from then on refuses every event not on a short
   allow-list: ``open`` (any file), ``import`` (any module not already loaded), ``exec`` and
   ``compile`` (except the one exec of the user's module code), ``socket.*``, ``subprocess.Popen``,
   ``os.*`` (system, exec, fork, spawn, kill, listdir, remove...), ``ctypes.*``, ``sys._getframe``,
   frame/code attribute reads (``object.__getattr__``), ``gc.get_objects``... A refusal raises
   :class:`SandboxViolation` in the user's code and is recorded, so a call whose code swallowed
   the exception still fails as a violation;
6. the user's module code runs in a namespace whose ``__builtins__`` is the restricted dict.

The hook takes every decision from its own default arguments (immutable tuples and frozensets,
and ``__defaults__`` cannot be reassigned: that is itself an audited event), so even code that
escaped the AST policy and reached this module's globals cannot switch it off.
"""

from __future__ import annotations

import builtins
import importlib
import os
import sys
import time
import types
import warnings
from collections.abc import Callable
from typing import Any, NoReturn, cast

import msgspec

from nodes.udf.sandbox import policy
from nodes.udf.sandbox.protocol import (
    HEADER,
    MAX_LOG_LINE,
    MAX_LOG_LINES,
    MAX_MESSAGE,
    MAX_STATE_BYTES,
    Error,
    ErrorKind,
    Failed,
    GetState,
    Init,
    Problem,
    Process,
    Ready,
    Request,
    Result,
    StateReply,
)

MIB = 1024 * 1024
NOFILE = 8  # stdin, stdout (null), stderr and the protocol's dup of stdout fit well below

# Audit events user code may raise: harmless ones only. Everything else is refused.
_HARMLESS = frozenset({"builtins.id", "time.sleep"})
# Raised by the worker's own traceback walk (tb_frame, f_code), allowed only while it runs.
_TRUSTED_ONLY = frozenset({"object.__getattr__", "sys._getframe"})
_ATTRIBUTE_WRITES = frozenset({"object.__setattr__", "object.__delattr__"})

# Public names removed from the sanitized modules (they reach attributes by name).
_REMOVED = frozenset({("operator", "attrgetter"), ("operator", "methodcaller"), ("collections", "namedtuple")})


class SandboxViolation(RuntimeError):
    """An operation the sandbox refuses (raised by the audit hook inside user code)."""


# The one mutable flag the hook reads: set while the worker walks a traceback. Code that reaches
# it could only allow itself frame introspection, which gives nothing the hook does not refuse.
_TRUSTED = [0]
_VIOLATIONS: list[str] = []


def _describe_event(event: str, args: tuple[Any, ...]) -> str:
    detail = ""
    if args and type(args[0]) in (str, bytes, int):
        detail = repr(args[0])
        if len(detail) > 120:
            detail = detail[:117] + "..."
    elif event.startswith("object.") and len(args) > 1 and type(args[1]) is str:
        detail = repr(args[1][:60])
    return f"{event}({detail})"


def _make_hook(user_code: types.CodeType) -> Callable[[str, tuple[Any, ...]], None]:
    def _audit_hook(
        event: str,
        args: tuple[Any, ...],
        _harmless: frozenset[str] = _HARMLESS,
        _trusted_only: frozenset[str] = _TRUSTED_ONLY,
        _attribute_writes: frozenset[str] = _ATTRIBUTE_WRITES,
        _user_code: tuple[types.CodeType] = (user_code,),
        _trusted: list[int] = _TRUSTED,
        _violations: list[str] = _VIOLATIONS,
        _str: type[str] = str,
        _type: type[type] = type,
        _len: Callable[[Any], int] = len,
        _describe: Callable[[str, tuple[Any, ...]], str] = _describe_event,
        _violation: type[SandboxViolation] = SandboxViolation,
    ) -> None:
        if event in _harmless:
            return
        if event == "exec" and _len(args) == 1 and args[0] is _user_code[0]:
            return
        if event in _trusted_only and _trusted[0]:
            return
        if event in _attribute_writes and _len(args) > 1:
            name = args[1]
            if _type(name) is _str and not _str.startswith(name, "_"):
                return  # setting a public attribute of a class: `Counter.total = 0`
        description = _describe(event, args)
        if _len(_violations) < 20:
            _violations.append(description)
        raise _violation(f"sandbox: {description} is not allowed")

    return _audit_hook


class Batch:
    """The batch user code receives: four columns of equal length, to change or replace."""

    __slots__ = ("quality", "series", "ts", "values")

    def __init__(self, ts: list[int], series: list[str], values: list[Any], quality: list[int]) -> None:
        self.ts = ts
        self.series = series
        self.values = values
        self.quality = quality

    def __len__(self) -> int:
        return len(self.ts)

    def __repr__(self) -> str:
        return f"Batch(<{len(self.ts)} points>)"


class _OutputError(Exception):
    pass


# -- frames ----------------------------------------------------------------------------------------


class Channel:
    def __init__(self, read_fd: int, write_fd: int) -> None:
        self._read_fd = read_fd
        self._write_fd = write_fd
        self._decoder: msgspec.msgpack.Decoder[Request] = msgspec.msgpack.Decoder(Request)
        self.encoder = msgspec.msgpack.Encoder()

    def _read_exact(self, n: int) -> bytes | None:
        chunks: list[bytes] = []
        while n:
            chunk = os.read(self._read_fd, min(n, 1 << 20))
            if not chunk:
                return None
            chunks.append(chunk)
            n -= len(chunk)
        return b"".join(chunks)

    def read(self) -> Request | None:
        header = self._read_exact(HEADER.size)
        if header is None:
            return None
        (length,) = HEADER.unpack(header)
        body = self._read_exact(length)
        if body is None:
            return None
        return self._decoder.decode(body)

    def write_bytes(self, body: bytes) -> None:
        data = memoryview(HEADER.pack(len(body)) + body)
        while data:
            written = os.write(self._write_fd, data)
            data = data[written:]

    def write(self, message: msgspec.Struct) -> None:
        self.write_bytes(self.encoder.encode(message))


# -- setup ------------------------------------------------------------------------------------------


def _preload() -> dict[str, types.ModuleType]:
    """Import every allowed module and the modules they import lazily, while imports still work."""
    modules = {name: importlib.import_module(name) for name in sorted(policy.ALLOWED_MODULES)}
    import datetime
    import decimal
    import fractions
    import json
    import random
    import re
    import statistics

    datetime.datetime.strptime("2024-01-02 03:04:05", "%Y-%m-%d %H:%M:%S")  # imports _strptime, calendar
    time.strptime("2024", "%Y")
    time.strftime("%Y")
    json.loads(json.dumps({"a": [1, 2.5, "x", None, True]}))
    re.compile(r"(?P<x>\d+)\s*[a-z]+").sub("", "12 ab")
    str(decimal.Decimal("1.5") + 1)
    str(fractions.Fraction(1, 3))
    statistics.fmean([1.0, 2.0])
    statistics.median([1, 2, 3])
    statistics.stdev([1.0, 2.0, 4.0])
    random.Random(1).random()
    for encoding in ("utf-8", "latin-1", "ascii", "utf-16", "utf-32", "cp1252"):
        "x".encode(encoding).decode(encoding)
    return modules


def _sanitized(modules: dict[str, types.ModuleType]) -> dict[str, types.ModuleType]:
    """Copies of the allowed modules with public, non-module attributes only (submodules that are
    themselves allowed, such as ``collections.abc``, become their sanitized copies)."""
    copies: dict[str, types.ModuleType] = {}
    for name in sorted(modules, key=lambda n: -n.count(".")):  # submodules first
        real = modules[name]
        copy = types.ModuleType(name, real.__doc__)
        for attr in dir(real):
            if attr.startswith("_") or (name, attr) in _REMOVED:
                continue
            value = getattr(real, attr)
            if isinstance(value, types.ModuleType):
                full = f"{name}.{attr}"
                if full not in copies:
                    continue
                value = copies[full]
            setattr(copy, attr, value)

        def missing(attr: str, _module: str = name) -> NoReturn:
            raise AttributeError(f"{_module}.{attr} is not available in UDF code")

        copy.__dict__["__getattr__"] = missing  # PEP 562: a clear message for what was left out
        copies[name] = copy
    return copies


def _vm_size_mb() -> float:
    with open("/proc/self/status", encoding="ascii") as f:
        for line in f:
            if line.startswith("VmSize:"):
                return int(line.split()[1]) / 1024
    return 0.0


def _apply_limits(init: Init) -> tuple[float, float]:
    import resource

    baseline = _vm_size_mb()
    address = int((baseline + init.memory_mb) * MIB)
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    resource.setrlimit(resource.RLIMIT_FSIZE, (0, 0))
    resource.setrlimit(resource.RLIMIT_MEMLOCK, (0, 0))
    resource.setrlimit(resource.RLIMIT_NOFILE, (NOFILE, NOFILE))
    resource.setrlimit(resource.RLIMIT_AS, (address, address))
    cpu_soft = int(time.process_time()) + init.cpu_budget_s
    resource.setrlimit(resource.RLIMIT_CPU, (cpu_soft, cpu_soft + 2))
    if os.geteuid() == 0 and init.uid >= 0:
        os.setgroups([])
        os.setgid(init.gid)
        os.setuid(init.uid)  # irreversible: the saved set-user-ID goes too
        if os.geteuid() == 0 or os.getuid() == 0:
            raise RuntimeError("could not drop root privileges")
    resource.setrlimit(resource.RLIMIT_NPROC, (0, 0))
    return baseline, address / MIB


# -- the worker -------------------------------------------------------------------------------------


class Worker:
    def __init__(self, channel: Channel, init: Init) -> None:
        self.channel = channel
        self.init = init
        self.state: dict[str, Any] = init.state
        self.log: list[str] = []
        self.process: Callable[..., Any] | None = None
        self.modules: dict[str, types.ModuleType] = {}

    # -- restricted builtins -------------------------------------------------------------------

    def _print(self, *args: Any, sep: Any = " ", end: Any = "\n", file: Any = None, flush: Any = False) -> None:
        if len(self.log) >= MAX_LOG_LINES:
            if len(self.log) == MAX_LOG_LINES:
                self.log.append("(more print output dropped)")
            return
        text = (" " if sep is None else str(sep)).join(str(a) for a in args)
        self.log.append(text[:MAX_LOG_LINE])

    def _import(
        self, name: str, globals: Any = None, locals: Any = None, fromlist: Any = (), level: int = 0
    ) -> types.ModuleType:
        if level != 0:
            _VIOLATIONS.append("relative import")
            raise ImportError("relative imports are not allowed in UDF code")
        if type(name) is not str or name not in self.modules:
            _VIOLATIONS.append(f"import of {name!r}")
            raise ImportError(f"import of {name!r} is not allowed in UDF code")
        if fromlist:
            return self.modules[name]
        return self.modules[name.partition(".")[0]]

    def _builtins(self) -> dict[str, Any]:
        safe = {name: getattr(builtins, name) for name in policy.SAFE_BUILTINS if hasattr(builtins, name)}
        safe["print"] = self._print
        safe["__import__"] = self._import
        safe["__build_class__"] = builtins.__build_class__
        return safe

    # -- setup ---------------------------------------------------------------------------------

    def fail(self, stage: str, problems: list[Problem]) -> NoReturn:
        self.channel.write(Failed(stage=cast(Any, stage), problems=problems[:100]))
        os._exit(0)

    def setup(self) -> None:
        init = self.init
        try:
            self.modules = _sanitized(_preload())
            namespace: dict[str, Any] = {"__builtins__": self._builtins(), "__name__": "udf"}
        except Exception as e:  # reported to the runtime, which shows it
            self.fail("setup", [Problem(message=f"the sandbox could not start: {e!r}"[:MAX_MESSAGE])])
        if init.check_policy:
            errors = policy.check(init.code)
            if errors:
                self.fail(
                    "policy", [Problem(message=e.message, line=e.line, column=e.column, hint=e.hint) for e in errors]
                )
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                code = compile(init.code, policy.FILENAME, "exec", dont_inherit=True)
        except SyntaxError as e:
            self.fail("policy", [Problem(message=f"syntax error: {e.msg}", line=e.lineno, column=e.offset)])
        except (ValueError, RecursionError, MemoryError) as e:
            self.fail("policy", [Problem(message=f"the code cannot be compiled: {e}")])
        warnings.simplefilter("ignore")
        sys.stdin = None
        try:
            baseline, limit = _apply_limits(init)
        except Exception as e:
            self.fail("setup", [Problem(message=f"the sandbox limits could not be applied: {e!r}"[:MAX_MESSAGE])])
        sys.addaudithook(_make_hook(code))
        # From here on the process is locked down: no file, import, socket or process, ever.
        try:
            exec(code, namespace)
        except BaseException as e:  # any failure of the user's module code
            line = _user_line(e)
            message = f"{_type_name(e)}: {_exception_text(e)}"
            if _VIOLATIONS:
                message = f"sandbox: {_VIOLATIONS[0]} is not allowed"
            self.fail("load", [Problem(message=message[:MAX_MESSAGE], line=line)])
        if _VIOLATIONS:  # refused, and the code swallowed the exception
            self.fail("load", [Problem(message=f"sandbox: {_VIOLATIONS[0]} is not allowed"[:MAX_MESSAGE])])
        process = namespace.get("process")
        if not isinstance(process, types.FunctionType):
            self.fail("load", [Problem(message="process is not a function after loading the code")])
        self.process = process
        self.channel.write(Ready(baseline_mb=round(baseline, 1), address_limit_mb=round(limit, 1)))

    # -- calls ---------------------------------------------------------------------------------

    def encode_state(self) -> tuple[msgspec.Raw | None, str]:
        try:
            data = msgspec.msgpack.encode(msgspec.to_builtins(self.state, str_keys=True))
        except MemoryError:
            return None, "the state could not be saved: out of memory"
        except Exception as e:  # user data of any kind
            return None, (
                f"the state could not be saved ({_exception_text(e)}); keep numbers, text, "
                "booleans, None, lists and dicts in it"
            )[:MAX_MESSAGE]
        if len(data) > MAX_STATE_BYTES:
            return (
                None,
                f"the state is too large to save ({len(data) / MIB:.1f} MiB, limit {MAX_STATE_BYTES // MIB} MiB)",
            )
        return msgspec.Raw(data), ""

    def error(self, kind: ErrorKind, type_name: str, message: str, line: int | None = None) -> bytes:
        return self.channel.encoder.encode(
            Error(
                kind=kind,
                type=type_name[:200],
                message=message[:MAX_MESSAGE],
                line=line,
                cpu_s=time.process_time(),
                log=self.log,
            )
        )

    def call(self, request: Process) -> bytes:
        self.log = []
        del _VIOLATIONS[:]
        if request.replace_state is not None:
            self.state = request.replace_state
        n_in = len(request.ts)
        batch = Batch(request.ts, request.series, request.values, request.quality)
        process = self.process
        assert process is not None
        try:
            out = process(batch, self.state)
            if _VIOLATIONS:
                raise SandboxViolation(f"sandbox: {_VIOLATIONS[0]} is not allowed")
            columns = _columns(out, n_in, request.max_points)
            state, state_error = self.encode_state() if request.want_state else (None, "")
            result = Result(
                ts=columns[0],
                series=columns[1],
                values=columns[2],
                quality=columns[3],
                cpu_s=time.process_time(),
                state=cast(Any, state),
                state_error=state_error,
                log=self.log,
            )
            try:
                body = self.channel.encoder.encode(result)
            except (TypeError, OverflowError, ValueError) as e:
                raise _OutputError(f"process returned data that cannot be passed on: {e}") from None
            if len(body) > self.init.max_output_bytes:
                raise _OutputError(
                    f"output too large: {len(body) / MIB:.1f} MiB (limit {self.init.max_output_bytes // MIB} MiB)"
                )
            return body
        except MemoryError:
            return self.error("memory", "MemoryError", f"out of memory (limit {self.init.memory_mb} MB)")
        except _OutputError as e:
            return self.error("output", "OutputError", str(e))
        except BaseException as e:  # any failure of user code is reported, never fatal
            line = _user_line(e)
            if _VIOLATIONS:
                return self.error("violation", "SandboxViolation", f"sandbox: {_VIOLATIONS[0]} is not allowed", line)
            return self.error("exception", _type_name(e), _exception_text(e), line)

    def run(self) -> None:
        while True:
            try:
                request = self.channel.read()
            except MemoryError:  # the frame was read whole: answer and stay in step
                self.log = []
                self.channel.write_bytes(
                    self.error(
                        "memory", "MemoryError", f"the batch does not fit in memory (limit {self.init.memory_mb} MB)"
                    )
                )
                continue
            if request is None:
                return  # the runtime closed the pipe
            if isinstance(request, Process):
                self.channel.write_bytes(self.call(request))
            elif isinstance(request, GetState):
                state, error = self.encode_state()
                self.channel.write(StateReply(state=cast(Any, state), error=error))
            else:
                raise RuntimeError(f"unexpected request {type(request).__name__}")


def _columns(out: Any, n_in: int, max_points: int) -> tuple[Any, Any, Any, Any]:
    if out is None:
        return [], [], [], []
    names = ("ts", "series", "values", "quality")
    try:
        if isinstance(out, dict):
            columns = tuple(out[name] for name in names)
        else:
            columns = tuple(getattr(out, name) for name in names)
    except (KeyError, AttributeError):
        raise _OutputError(
            "process must return the batch (or an object or dict with ts, series, values and quality), or None"
        ) from None
    for name, column in zip(names, columns, strict=True):
        if type(column) not in (list, tuple):
            raise _OutputError(f"batch.{name} must be a list, not {_type_name(column)}")
    lengths = {name: len(column) for name, column in zip(names, columns, strict=True)}
    if len(set(lengths.values())) > 1:
        raise _OutputError(f"the columns of the returned batch differ in length: {lengths}")
    n = lengths["ts"]
    if n > max_points:
        raise _OutputError(f"output too large: {n} points (limit {max_points}: 10 x {n_in} points in + 10000)")
    return cast(tuple[Any, Any, Any, Any], columns)


def _type_name(value: object) -> str:
    name = type(value).__name__
    return name if type(name) is str else "object"


def _exception_text(e: BaseException) -> str:
    try:
        text = str(e)  # may run a user __str__: still inside the sandbox
    except BaseException:  # a user __str__ may fail
        text = "(unprintable)"
    return text[:MAX_MESSAGE] if type(text) is str else "(unprintable)"


def _user_line(e: BaseException) -> int | None:
    """The line of the innermost frame of user code in the traceback."""
    line: int | None = None
    _TRUSTED[0] = 1
    try:
        tb = e.__traceback__
        while tb is not None:
            if tb.tb_frame.f_code.co_filename == policy.FILENAME:
                line = tb.tb_lineno
            tb = tb.tb_next
    except BaseException:  # best effort: the message matters more than the line
        pass
    finally:
        _TRUSTED[0] = 0
    return line


def main() -> None:
    out_fd = os.dup(1)  # the protocol; fd 1 itself points to /dev/null so stray writes go nowhere
    null = os.open(os.devnull, os.O_RDWR)
    os.dup2(null, 1)
    os.close(null)
    channel = Channel(0, out_fd)
    init = channel.read()
    if not isinstance(init, Init):
        sys.stderr.write("udf worker: the first message must be init\n")
        os._exit(2)
    worker = Worker(channel, init)
    worker.setup()
    try:
        worker.run()
    except BaseException as e:  # the runtime sees the exit and restarts
        sys.stderr.write(f"udf worker failed: {e!r}\n"[:4000])
        sys.stderr.flush()
        os._exit(3)
    os._exit(0)
