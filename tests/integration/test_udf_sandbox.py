"""udf.python with real worker processes: normal operation, state, limits and escape attempts.

Every escape attempt is shown to fail twice where possible: against the AST policy (validation and
the PythonUdf constructor refuse the code) and against the worker's runtime layers with the policy
switched off (``check_policy=False``, a test-only switch): restricted builtins, sanitized modules,
the audit hook, rlimits and the unprivileged user. After each attempt a normal batch must still go
through the same running step.
"""

from __future__ import annotations

import asyncio
import os
import pwd
import textwrap
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from nodes.host import Health
from nodes.points import Batch
from nodes.udf.python import DEFAULT_CODE, PythonUdf, PythonUdfConfig
from nodes.udf.sandbox.pool import PoolSettings, UdfStartError, WorkerPool
from runtime.context import StepContext

pytestmark = pytest.mark.timeout(120)

NORMAL_VALUES: list[Any] = [1.0, 2, 3.5, "text"]


def normal_batch(series: str = "normal") -> Batch:
    return Batch([1, 2, 3, 4], [series] * 4, list(NORMAL_VALUES), [0, 0, 0, 1])


class Step:
    """A PythonUdf with its context, driven like the runtime drives it."""

    def __init__(self, udf: PythonUdf, context: StepContext, debug: list[dict[str, Any]]) -> None:
        self.udf = udf
        self.context = context
        self.debug = debug

    async def send(self, batch: Batch) -> Batch | None:
        outputs = await self.udf.process("in", batch, time.time_ns())
        if not outputs:
            return None
        [(port, out)] = outputs
        assert port == "out" and isinstance(out, Batch)
        return out

    @property
    def health(self) -> tuple[Health, str]:
        return self.context.metrics.health, self.context.metrics.message

    def counter(self, name: str) -> int:
        return self.context.metrics.counters.get(name, 0)

    async def assert_normal_batch_works(self) -> None:
        out = await self.send(normal_batch())
        assert out is not None, self.health
        assert out.values == [2.0, 4, 7.0, "text"]
        assert self.health == (Health.OK, "")


@asynccontextmanager
async def running(tmp_path: Path, code: str, *, check_policy: bool = True, **config: Any) -> AsyncIterator[Step]:
    debug: list[dict[str, Any]] = []
    context = StepContext(node_id="udf1", data_dir=tmp_path, debug=debug.append)
    udf = PythonUdf(PythonUdfConfig(code=code, **config), context, check_policy=check_policy)
    try:
        await udf.start()
        yield Step(udf, context, debug)
    finally:
        await udf.close()


NORMAL_BRANCH = """\
def process(batch, state):
    kind = batch.series[0]
    if kind == "normal":
        state["normal"] = state.get("normal", 0) + 1
        batch.values = [v * 2 if isinstance(v, (int, float)) else v for v in batch.values]
        return batch
    return ATTACKS[kind](batch, state)
"""


def dispatcher(attacks: dict[str, str]) -> str:
    """Code with one function per attack (its body), chosen by the first series of the batch."""
    parts = [f"def attack_{name}(batch, state):\n{textwrap.indent(textwrap.dedent(b).strip(), '    ')}\n\n"
             for name, b in attacks.items()]  # fmt: skip
    table = ", ".join(f"{name!r}: attack_{name}" for name in attacks)
    return "".join(parts) + f"ATTACKS = {{{table}}}\n\n" + NORMAL_BRANCH


# --- normal operation ---------------------------------------------------------------------------


async def test_normal_operation_and_state_across_batches(tmp_path: Path) -> None:
    code = DEFAULT_CODE.replace("    return batch\n", "    print('seen', state['points_seen'])\n    return batch\n")
    async with running(tmp_path, code, state_init={"points_seen": 100}) as step:
        for _ in range(3):
            out = await step.send(normal_batch())
            assert out is not None and out.values == [2.0, 4, 7.0, "text"]
            assert out.ts == [1, 2, 3, 4] and out.quality == [0, 0, 0, 1]
        assert [d["print"] for d in step.debug] == ["seen 104", "seen 108", "seen 112"]
        await step.udf.sync_state()
        snapshot = step.udf.snapshot()
    assert snapshot == {"states": [{"points_seen": 112}]}

    # A replacement node resumes from the snapshot.
    async with running(tmp_path, code, state_init={"points_seen": 0}) as step:
        step.udf.restore(snapshot)
        await step.send(normal_batch())
        assert step.debug[-1]["print"] == "seen 116"
        await step.udf.close()
        assert step.udf.snapshot() == {"states": [{"points_seen": 116}]}  # close() saves the state


async def test_return_forms_and_state_as_plain_data(tmp_path: Path) -> None:
    code = """
import datetime
from collections import deque

def process(batch, state):
    state["seen"] = state.get("seen", 0) + 1
    state["when"] = datetime.datetime(2024, 1, 2)
    state["recent"] = (1, 2)
    if batch.series[0] == "none":
        return None
    if batch.series[0] == "dict":
        return {"ts": [9], "series": ["x/y"], "values": [True], "quality": [2]}
    if batch.series[0] == "unsaveable":
        state["bad"] = deque([1])
    return batch
"""
    async with running(tmp_path, code) as step:
        assert await step.send(normal_batch("none")) is None
        out = await step.send(normal_batch("dict"))
        assert out is not None and (out.ts, out.series, out.values, out.quality) == ([9], ["x/y"], [True], [2])
        await step.udf.sync_state()
        assert step.udf.snapshot() == {"states": [{"seen": 2, "when": "2024-01-02T00:00:00", "recent": [1, 2]}]}
        await step.send(normal_batch("unsaveable"))
        await step.udf.sync_state()  # the deque cannot be saved: the last good snapshot stays
        assert step.udf.snapshot()["states"][0]["seen"] == 2


async def test_concurrent_calls_use_several_workers_and_keep_order(tmp_path: Path) -> None:
    code = """
import time

def process(batch, state):
    state["calls"] = state.get("calls", 0) + 1
    time.sleep(batch.values[0])
    batch.values = [state["calls"]]
    return batch
"""
    async with running(tmp_path, code, workers=2, timeout_ms=5000) as step:
        await step.udf.start()
        batches = [Batch([i], [f"s{i}"], [delay], [0]) for i, delay in enumerate([0.6, 0.0, 0.2, 0.0])]
        started = time.monotonic()
        outs = await asyncio.gather(*(step.send(b) for b in batches))
        elapsed = time.monotonic() - started
        assert [o.ts if o else None for o in outs] == [[0], [1], [2], [3]]  # in call order
        # Worker 0 took the slow batch; worker 1 did the other three meanwhile (each has its own state).
        assert [o.values if o else None for o in outs] == [[1], [1], [2], [3]]
        assert elapsed < 0.79  # in sequence it would take at least 0.8 s
        await step.udf.sync_state()
        assert step.udf.snapshot() == {"states": [{"calls": 1}, {"calls": 3}]}


async def test_user_exception_reports_line_and_keeps_worker(tmp_path: Path) -> None:
    code = "def helper(x):\n    return 1 / x\n\n" + NORMAL_BRANCH.replace(
        "    return ATTACKS[kind](batch, state)\n", "    return helper(0)\n"
    )
    async with running(tmp_path, code) as step:
        await step.assert_normal_batch_works()
        assert await step.send(normal_batch("boom")) is None
        assert step.health == (Health.ERROR, "line 2: ZeroDivisionError: division by zero (batch dropped)")
        assert step.counter("user_errors") == 1 and step.counter("dropped_points") == 4
        await step.assert_normal_batch_works()
        await step.udf.sync_state()
        assert step.udf.snapshot() == {"states": [{"normal": 2}]}  # the same worker throughout
        assert step.udf.pool.restarts == 0


# --- escape attempts ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Attack:
    name: str
    body: str  # the body of a function (batch, state); reaching "return batch" means it worked
    policy: str  # what the AST policy says about it
    runtime: str | None  # what the runtime layers say with the policy off (None: policy-only)
    kind: str = "violation"  # the outcome (violation: the audit hook or the import guard)
    line: bool = True  # the error names the line (not when the refusal is silent, see add_audit_hook)


W = "W = batch.__class__.__init__.__globals__  # the worker module's globals\n"
PWNED = "/tmp/proxus-udf-test-pwned"

ATTACKS = [
    # imports in every form
    Attack("import_os", "import os\nos.system('id')", "import of 'os' is not allowed", "import of 'os' is not allowed"),
    Attack("import_os_path", "import os.path", "import of 'os.path'", "import of 'os.path' is not allowed"),
    Attack("from_os_import", "from os import system\nsystem('id')", "import of 'os'", "import of 'os' is not allowed"),
    Attack("dunder_import", "__import__('os').system('id')", "name '__import__' is not allowed", "import of 'os'"),
    Attack(
        "importlib", "import importlib\nimportlib.import_module('os')", "import of 'importlib'", "import of 'importlib'"
    ),
    Attack("relative_import", "from . import secrets", "relative imports are not allowed", "relative import"),
    Attack(
        "swallowed_import", "try:\n    import os\nexcept ImportError:\n    pass", "import of 'os'", "import of 'os'"
    ),
    # introspection chains
    Attack(
        "subclasses_chain",
        "for cls in ().__class__.__bases__[0].__subclasses__():\n"
        "    if cls.__name__ == '_wrap_close':\n"
        "        cls.__init__.__globals__['system']('id')",
        "attribute '__class__' is not allowed",
        "os.system(b'id') is not allowed",
    ),
    Attack(
        "lambda_globals",
        "(lambda: 0).__globals__['__builtins__']['open']('/etc/passwd')",
        "attribute '__globals__' is not allowed",
        "KeyError: 'open'",
        "exception",
    ),
    Attack(
        "generator_frame",
        "def g():\n    yield 1\nit = g()\nit.gi_frame.f_back.f_globals['os'].system('id')",
        "attribute 'gi_frame' is not allowed",
        "object.__getattr__('gi_frame') is not allowed",
    ),
    Attack(
        "traceback_frame",
        "try:\n    1 / 0\nexcept ZeroDivisionError as e:\n"
        "    e.__traceback__.tb_frame.f_back.f_globals['os'].system('id')",
        "attribute '__traceback__' is not allowed",
        "object.__getattr__('tb_frame') is not allowed",
    ),
    Attack(
        "code_object", "(lambda: 0).__code__", "attribute '__code__'", "object.__getattr__('__code__') is not allowed"
    ),
    Attack("frame_via_sys", W + "W['sys']._getframe(0).f_back", "attribute '__class__'", "sys._getframe"),
    # format strings read attributes: stopped by the policy; at run time they could only produce text
    Attack("format_string", "'{0.__class__.__init__.__globals__}'.format(batch)", "attribute 'format'", None),
    # builtins
    Attack(
        "getattr_concat",
        "getattr(batch, '__cl' + 'ass__')",
        "'getattr' is not available",
        "name 'getattr' is not defined",
        "exception",
    ),
    Attack(
        "eval",
        "eval(\"__import__('os').system('id')\")",
        "'eval' is not available",
        "name 'eval' is not defined",
        "exception",
    ),
    Attack("exec", "exec('import os')", "'exec' is not available", "name 'exec' is not defined", "exception"),
    Attack(
        "compile",
        "compile('1', 'x', 'eval')",
        "'compile' is not available",
        "name 'compile' is not defined",
        "exception",
    ),
    Attack("open", "open('/etc/passwd').read()", "'open' is not available", "name 'open' is not defined", "exception"),
    Attack(
        "builtins_dict",
        "__builtins__['open']('/etc/passwd')",
        "name '__builtins__' is not allowed",
        "KeyError: 'open'",
        "exception",
    ),
    Attack(
        "real_eval",
        W + "W['__builtins__']['eval']('1 + 1')",
        "attribute '__class__'",
        "compile(b'1 + 1') is not allowed",
    ),
    Attack("real_exec", W + "W['__builtins__']['exec']('import os')", "attribute '__class__'", "compile(b'import os')"),
    Attack(
        "hook_tampering",
        W + "W['_HARMLESS'] = frozenset({'open', 'os.system'})\nW['_TRUSTED'][0] = 1\nW['_make_hook'] = None\n"
        "W['os'].system('id')",
        "attribute '__class__'",
        "os.system(b'id') is not allowed",
    ),
    # CPython swallows this refusal (the hook is just not added); the recorded violation still fails the call
    Attack(
        "add_audit_hook",
        W + "W['sys'].addaudithook(lambda *a: None)",
        "attribute '__class__'",
        "sys.addaudithook",
        line=False,
    ),
    # files
    Attack(
        "real_open",
        W + "W['__builtins__']['open']('/etc/passwd').read()",
        "attribute '__class__'",
        "open('/etc/passwd')",
    ),
    Attack(
        "os_open", W + "W['os'].open('/etc/passwd', 0)", "attribute '__class__'", "open('/etc/passwd') is not allowed"
    ),
    Attack(
        "fileio", W + "W['sys'].modules['io'].FileIO('/etc/passwd')", "attribute '__class__'", "open('/etc/passwd')"
    ),
    Attack(
        "proc_environ",
        W + "W['os'].open('/proc/self/environ', 0)",
        "attribute '__class__'",
        "open('/proc/self/environ')",
    ),
    Attack(
        "write_file", W + f"W['os'].open({PWNED!r}, 0o101)", "attribute '__class__'", f"open({PWNED!r}) is not allowed"
    ),
    Attack("listdir", W + "W['os'].listdir('/')", "attribute '__class__'", "os.listdir('/') is not allowed"),
    # processes
    Attack("os_system", W + "W['os'].system('id')", "attribute '__class__'", "os.system(b'id') is not allowed"),
    Attack("fork", W + "W['os'].fork()", "attribute '__class__'", "os.fork() is not allowed"),
    Attack("fork_posix", W + "W['sys'].modules['posix'].fork()", "attribute '__class__'", "os.fork() is not allowed"),
    Attack(
        "posix_spawn",
        W + "W['os'].posix_spawn('/bin/sh', ['sh', '-c', 'id'], {})",
        "attribute '__class__'",
        "os.posix_spawn",
    ),
    Attack("execv", W + "W['os'].execv('/bin/sh', ['sh'])", "attribute '__class__'", "os.exec"),
    Attack(
        "subprocess",
        W + "W['__builtins__']['__import__']('subprocess')",
        "attribute '__class__'",
        "import('subprocess')",
    ),
    # no audit event for threads: RLIMIT_NPROC = 0 (enforced because the worker is not root) stops them
    Attack(
        "thread",
        W + "W['sys'].modules['_thread'].start_new_thread(print, ())",
        "attribute '__class__'",
        "RuntimeError: can't start new thread",
        "exception",
    ),
    # network
    Attack("socket", W + "W['sys'].modules['_socket'].socket()", "attribute '__class__'", "socket.__new__"),
    Attack(
        "socket_import", W + "W['__builtins__']['__import__']('socket')", "attribute '__class__'", "import('socket')"
    ),
    Attack("ctypes", W + "W['__builtins__']['__import__']('ctypes')", "attribute '__class__'", "import('ctypes')"),
    # signals, privileges, limits
    Attack("kill_parent", W + "W['os'].kill(W['os'].getppid(), 9)", "attribute '__class__'", "os.kill"),
    Attack("killpg", W + "W['os'].killpg(0, 9)", "attribute '__class__'", "os.killpg"),
    Attack("setuid_root", W + "W['os'].setuid(0)", "attribute '__class__'", "PermissionError", "exception"),
    Attack(
        "raise_limits",
        W + "r = W['sys'].modules['resource']\nr.setrlimit(r.RLIMIT_AS, (r.RLIM_INFINITY, r.RLIM_INFINITY))",
        "attribute '__class__'",
        "resource.setrlimit",
    ),
    Attack("gc_objects", W + "W['__builtins__']['__import__']('gc').get_objects()", "attribute '__class__'", "('gc')"),
    # the environment is scrubbed (Python itself adds LC_CTYPE when it coerces the C locale)
    Attack(
        "environment",
        W + "env = dict(W['os'].environ)\nenv.pop('LC_CTYPE', None)\nif not env:\n"
        "    raise LookupError('the environment is empty')",
        "attribute '__class__'",
        "LookupError: the environment is empty",
        "exception",
    ),
]


def pwned() -> bool:
    return os.path.exists(PWNED)


def attack_code(attack: Attack) -> str:
    return f"def process(batch, state):\n{textwrap.indent(attack.body, '    ')}\n    return batch\n"


def test_enough_attempts() -> None:
    assert len(ATTACKS) >= 25 and len({a.name for a in ATTACKS}) == len(ATTACKS)


@pytest.mark.parametrize("attack", ATTACKS, ids=lambda a: a.name)
def test_policy_refuses_attempt(attack: Attack, tmp_path: Path) -> None:
    problems = list(PythonUdfConfig(code=attack_code(attack)).problems())
    assert any(attack.policy in p.message for p in problems), problems
    assert all(p.path == "$.code" and p.line is not None and p.column is not None for p in problems)
    context = StepContext(node_id="udf1", data_dir=tmp_path)
    with pytest.raises(ValueError, match="the code was refused") as refused:
        PythonUdf(PythonUdfConfig(code=attack_code(attack)), context)
    assert attack.policy in str(refused.value)


async def test_runtime_layers_stop_every_attempt_without_the_policy(tmp_path: Path) -> None:
    runtime = [a for a in ATTACKS if a.runtime is not None]
    code = dispatcher({a.name: a.body + "\nreturn batch" for a in runtime})
    async with running(tmp_path, code, check_policy=False, timeout_ms=5000) as step:
        await step.assert_normal_batch_works()
        for i, attack in enumerate(runtime, start=1):
            assert await step.send(normal_batch(attack.name)) is None, f"{attack.name} went through"
            health, message = step.health
            assert health is Health.ERROR and message.endswith("(batch dropped)"), (attack.name, message)
            assert attack.runtime is not None and attack.runtime in message, (attack.name, message)
            assert message.startswith("line ") is attack.line, (attack.name, message)  # where in the code
            await step.assert_normal_batch_works()
            assert step.counter("dropped_batches") == i
        violations = sum(a.kind == "violation" for a in runtime)
        assert step.counter("violations") == violations
        assert step.counter("user_errors") == len(runtime) - violations
        assert step.udf.pool.restarts == 0  # one worker survived every attempt, with its state
        await step.udf.sync_state()
        assert step.udf.snapshot() == {"states": [{"normal": len(runtime) + 1}]}
    assert not pwned()


async def test_worker_rechecks_the_policy(tmp_path: Path) -> None:
    """The runtime's check is skipped here (WorkerPool directly): the worker refuses on its own."""
    for attack in ATTACKS[:6]:
        pool = WorkerPool(PoolSettings(code=attack_code(attack)))
        with pytest.raises(UdfStartError, match="the code was refused: line") as refused:
            await pool.start()
        assert attack.policy in str(refused.value)
        assert pool.broken
        outcome = await pool.run(normal_batch())
        assert outcome.batch is None and outcome.kind == "broken"
        await pool.close()


async def test_decorators_and_defaults_never_run_outside_the_sandbox(tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    write = f"open({str(marker)!r}, 'w').write('x')"  # the builtin open
    via_os = (  # the real open, from the os module's globals
        "[c for c in ().__class__.__bases__[0].__subclasses__() if c.__name__ == '_wrap_close'][0]"
        f".__init__.__globals__['__builtins__']['open']({str(marker)!r}, 'w')"
    )
    in_decorator = f"def mark(f):\n    {write}\n    return f\n\n@mark\ndef process(batch, state):\n    return batch\n"
    in_default = f"def process(batch, state, other={via_os}):\n    return batch\n"
    in_both = (
        f"def mark(f):\n    {via_os}\n    return f\n\n@mark\n"
        f"def process(batch, state=[{write}], other={via_os}):\n    return batch\n"
    )
    context = StepContext(node_id="udf1", data_dir=tmp_path)
    for code in (in_decorator, in_default, in_both):
        # Validation and deployment: refused, nothing ran.
        assert list(PythonUdfConfig(code=code).problems())
        with pytest.raises(ValueError, match="refused"):
            PythonUdf(PythonUdfConfig(code=code), context)
        assert not marker.exists()
        # The worker's own policy check: refused before compiling, nothing ran.
        pool = WorkerPool(PoolSettings(code=code))
        with pytest.raises(UdfStartError, match="the code was refused: line"):
            await pool.start()
        await pool.close()
        assert not marker.exists()
    # Without the policy, decorators and default values do run, at load -- inside the sandbox.
    expected = {
        in_decorator: "the code failed to load: line 2: NameError: name 'open' is not defined",
        in_default: f"the code failed to load: line 1: sandbox: open({str(marker)!r}) is not allowed",
        in_both: "the code failed to load: line 6: NameError: name 'open' is not defined",  # defaults first
    }
    for code, message in expected.items():
        pool = WorkerPool(PoolSettings(code=code, check_policy=False))
        with pytest.raises(UdfStartError) as failed:
            await pool.start()
        assert str(failed.value) == message
        await pool.close()
    assert not marker.exists()


async def test_code_that_never_finishes_loading(tmp_path: Path) -> None:
    code = "def forever(f):\n    while True:\n        pass\n\n@forever\ndef process(batch, state):\n    return batch\n"
    assert list(PythonUdfConfig(code=code).problems()) == []  # validation does not run the decorator
    pool = WorkerPool(PoolSettings(code=code, start_timeout_s=1.0))
    with pytest.raises(UdfStartError, match="did not start within 1 s"):
        await pool.start()
    await pool.close()


# --- attempts the policy cannot see (production settings) ---------------------------------------


CLEVER = {
    "datetime_sys": ("import datetime\ndatetime.sys.modules['os'].system('id')", "datetime.sys is not available"),
    "fractions_sys": ("import fractions\nfractions.sys.modules['os']", "fractions.sys is not available"),
    "statistics_sys": ("import statistics\nstatistics.sys.modules['os']", "statistics.sys is not available"),
    "json_codecs": ("import json\njson.codecs.open('/etc/passwd')", "json.codecs is not available"),
    "re_module_attr": ("import re\nre.copyreg", "re.copyreg is not available"),
    "from_import_sys": ("from datetime import sys", "cannot import name 'sys'"),
    "namedtuple_exec": (
        "import collections\ncollections.namedtuple('P', 'x')",
        "collections.namedtuple is not available",
    ),
    "annotation_eval": (
        "from functools import singledispatch\n\n@singledispatch\ndef f(x):\n    return 0\n\n"
        "def h(x: '[c for c in ().__class__.__bases__[0].__subclasses__()]'):\n    return 1\n\nf.register(h)",
        "sandbox: compile(b'[c for c in ().__class__",
    ),
    "memory_bomb": ("'x' * 10 ** 10", "out of memory"),
    "deep_recursion": ("def r(n):\n    return r(n + 1)\nr(0)", "RecursionError: maximum recursion depth exceeded"),
    "huge_int_text": ("str(10 ** 100000)", "ValueError: Exceeds the limit"),
    "too_many_points": (
        "x = [0] * 10 ** 7\nreturn {'ts': x, 'series': x, 'values': x, 'quality': x}",
        "output too large: 10000000 points (limit 10040",
    ),
    "too_many_bytes": (
        "s = 'x' * 10 ** 6\nreturn {'ts': [0] * 100, 'series': ['s'] * 100, 'values': [s] * 100, 'quality': [0] * 100}",
        "output too large: 95.4 MiB (limit 64 MiB)",
    ),
    "invalid_values": (
        "batch.values = [None] * len(batch.ts)",
        "invalid data: Expected `bool | int | float | str`, got `None` - at `$.values[0]`",
    ),
    "invalid_quality": ("batch.quality = [7] * len(batch.ts)", "Expected `int` <= 2"),
    "unequal_columns": ("batch.ts = batch.ts[:1]", "differ in length"),
    "not_a_batch": ("return 42", "process must return the batch"),
    "big_int": ("batch.values = [2 ** 100] * len(batch.ts)", "cannot be passed on"),
    "generator_column": ("batch.values = (v for v in batch.values)", "batch.values must be a list, not generator"),
}


async def test_attempts_the_policy_cannot_see(tmp_path: Path) -> None:
    code = dispatcher({name: body + "\nreturn batch" for name, (body, _) in CLEVER.items()})
    assert list(PythonUdfConfig(code=code).problems()) == []
    async with running(tmp_path, code, memory_mb=512, timeout_ms=5000) as step:
        for name, (_, expected) in CLEVER.items():
            assert await step.send(normal_batch(name)) is None, f"{name} went through"
            health, message = step.health
            assert health is Health.ERROR and expected in message, (name, message)
            await step.assert_normal_batch_works()
        assert step.counter("dropped_batches") == len(CLEVER)
        assert step.counter("memory_errors") == 1
        assert step.counter("output_errors") == 8
        assert step.counter("violations") == 1
        assert step.udf.pool.restarts == 0


async def test_infinite_loop_times_out_and_the_step_recovers(tmp_path: Path) -> None:
    code = NORMAL_BRANCH.replace("    return ATTACKS[kind](batch, state)\n", "    while True:\n        pass\n")
    async with running(tmp_path, code, timeout_ms=200) as step:
        await step.assert_normal_batch_works()
        await step.udf.sync_state()  # the snapshot the restarted worker resumes from
        await step.assert_normal_batch_works()  # not synced: lost with the killed worker
        started = time.monotonic()
        assert await step.send(normal_batch("loop")) is None
        assert time.monotonic() - started < 1.5
        assert step.health == (Health.ERROR, "timed out after 200 ms (batch dropped)")
        assert step.counter("timeouts") == 1 and step.counter("restarts") == 1
        assert step.counter("dropped_points") == 4
        await step.assert_normal_batch_works()
        await step.udf.sync_state()
        assert step.udf.snapshot() == {"states": [{"normal": 2}]}


async def test_sleep_beyond_the_timeout(tmp_path: Path) -> None:
    code = "import time\n\ndef process(batch, state):\n    time.sleep(30)\n    return batch\n"
    async with running(tmp_path, code, timeout_ms=100) as step:
        started = time.monotonic()
        assert await step.send(normal_batch()) is None
        assert time.monotonic() - started < 1.5
        assert step.counter("timeouts") == 1


async def test_memory_growth_is_stopped(tmp_path: Path) -> None:
    code = NORMAL_BRANCH.replace(
        "    return ATTACKS[kind](batch, state)\n",
        "    hoard = []\n    while True:\n        hoard.append(bytearray(10 ** 6))\n",
    )
    async with running(tmp_path, code, memory_mb=64, timeout_ms=10_000) as step:
        assert await step.send(normal_batch("hoard")) is None
        health, message = step.health
        assert health is Health.ERROR
        assert "out of memory (limit 64 MB)" in message or "the worker crashed" in message, message
        await step.assert_normal_batch_works()


async def test_cpu_rlimit_is_a_backstop_for_a_missed_timeout(tmp_path: Path) -> None:
    """With the runtime's timeout out of reach, the kernel stops a runaway worker (SIGXCPU)."""
    code = NORMAL_BRANCH.replace("    return ATTACKS[kind](batch, state)\n", "    while True:\n        pass\n")
    pool = WorkerPool(PoolSettings(code=code, timeout_s=30, cpu_budget_s=1))
    try:
        await pool.start()
        started = time.monotonic()
        outcome = await pool.run(normal_batch("loop"))
        assert time.monotonic() - started < 10
        assert outcome.kind == "crash" and "SIGXCPU" in outcome.message, outcome
        outcome = await pool.run(normal_batch())
        assert outcome.kind == "ok", outcome
    finally:
        await pool.close()


async def test_crash_restarts_with_backoff_and_restores_state(tmp_path: Path) -> None:
    code = dispatcher({"exit": W + "W['os']._exit(7)"})  # os._exit is not audited: a real crash
    async with running(tmp_path, code, check_policy=False) as step:
        await step.assert_normal_batch_works()
        await step.udf.sync_state()
        assert await step.send(normal_batch("exit")) is None
        assert step.health[1] == "the worker crashed (exit status 7) (batch dropped)"
        assert step.counter("crashes") == 1 and step.counter("restarts") == 1
        await step.assert_normal_batch_works()  # restarted at once (first failure: no backoff)
        await step.udf.sync_state()
        assert step.udf.snapshot() == {"states": [{"normal": 2}]}
        # Crashing again and again: restarts back off, batches meanwhile are dropped, not queued.
        assert await step.send(normal_batch("exit")) is None
        assert await step.send(normal_batch("exit")) is None
        assert await step.send(normal_batch()) is None
        assert "restarting after repeated failures" in step.health[1]
        assert step.counter("unavailable") >= 1
        await asyncio.sleep(0.6)
        await step.assert_normal_batch_works()


async def test_runtime_checks_what_a_subverted_worker_sends(tmp_path: Path) -> None:
    """Code that took over its worker writes its own frames on the protocol pipe (fd 3, the dup of
    stdout): the runtime's frame limit and strict decoding stop them, and the step carries on."""
    forged = {
        "huge_frame": W + "W['os'].write(3, W['HEADER'].pack(2 ** 31))\nreturn batch",
        "garbage": W + "W['os'].write(3, W['HEADER'].pack(3) + b'\\xc1\\xc1\\xc1')\nreturn batch",
    }
    async with running(tmp_path, dispatcher(forged), check_policy=False) as step:
        await step.assert_normal_batch_works()
        assert await step.send(normal_batch("huge_frame")) is None
        assert step.health == (Health.ERROR, "output too large: 2048.0 MiB (limit 64 MiB) (batch dropped)")
        await step.assert_normal_batch_works()
        assert await step.send(normal_batch("garbage")) is None
        assert step.health[1].startswith("the worker sent an unreadable reply")
        await step.assert_normal_batch_works()
        assert step.counter("output_errors") == 1 and step.counter("crashes") == 1
        assert step.counter("restarts") == 2


async def test_the_runtime_is_never_blocked(tmp_path: Path) -> None:
    """While a worker spins, the event loop keeps serving other work."""
    code = NORMAL_BRANCH.replace("    return ATTACKS[kind](batch, state)\n", "    while True:\n        pass\n")
    async with running(tmp_path, code, timeout_ms=500) as step:
        ticks = 0

        async def ticker() -> None:
            nonlocal ticks
            while True:
                await asyncio.sleep(0.01)
                ticks += 1

        task = asyncio.create_task(ticker())
        await step.send(normal_batch("loop"))
        task.cancel()
        assert ticks >= 20  # about 50 when idle


async def test_worker_runs_unprivileged() -> None:
    if os.geteuid() != 0:
        pytest.skip("the runtime is not root: the worker keeps the user (RLIMIT_NPROC applies anyway)")
    nobody = pwd.getpwnam("nobody")
    code = dispatcher(
        {"ids": W + "batch.values = [W['os'].getuid(), W['os'].geteuid(), W['os'].getgid(), 0]\nreturn batch"}
    )
    pool = WorkerPool(PoolSettings(code=code, check_policy=False))
    try:
        outcome = await pool.run(normal_batch("ids"))
    finally:
        await pool.close()
    assert outcome.batch is not None
    assert outcome.batch.values[:3] == [nobody.pw_uid, nobody.pw_uid, nobody.pw_gid]
