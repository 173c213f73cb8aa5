"""The udf.python AST policy (nodes.udf.sandbox.policy) on many snippets; no process is started."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from nodes.udf.python import DEFAULT_CODE, PythonUdfConfig
from nodes.udf.sandbox import policy
from nodes.udf.sandbox.policy import PolicyError, check

OK_BODY = "def process(batch, state):\n    return batch\n"


def body(*lines: str) -> str:
    """A process function whose body is ``lines`` (then ``return batch``)."""
    return "def process(batch, state):\n" + "".join(f"    {line}\n" for line in lines) + "    return batch\n"


def messages(code: str) -> list[str]:
    return [e.message for e in check(code)]


def only(code: str) -> PolicyError:
    errors = check(code)
    assert len(errors) == 1, errors
    return errors[0]


# --- allowed code ---------------------------------------------------------------------------------


ALLOWED = [
    DEFAULT_CODE,
    OK_BODY,
    "def process(batch, state, extra=1):\n    return batch\n",
    "def process(*args):\n    return args[0]\n",
    "import math\nimport collections.abc\nimport json as j\nfrom statistics import mean, median as med\n" + OK_BODY,
    "from collections import abc, deque\nfrom datetime import datetime, timezone\nfrom functools import lru_cache\n"
    + OK_BODY,
    '"""Module docstring."""\nLIMIT = 10\nNAMES = ("a", "b")\nTABLE = {"a": [1, -2.5, None, True]}\n'
    "SCALE: float = 2 * 3.5\nimport math\nTAU = 2 * math.pi\nFLAGS = 1 | 2\nA, B = 1, 2\n" + OK_BODY,
    "class Acc:\n    'doc'\n    total = 0\n    def __init__(self):\n        self.n = 0\n"
    "    def __repr__(self):\n        return 'Acc'\n    pass\n" + OK_BODY,
    "import functools\n@functools.lru_cache(maxsize=8)\ndef f(x, y=3):\n    return x\n" + OK_BODY,
    body("_ = 1", "_tmp = [v * 2 for v in batch.values]", "state['n'] = len(_tmp)"),
    body("global COUNT", "COUNT = 1"),
    body("def inner():", "    nonlocal batch", "    batch = batch"),
    body("g = (v for v in batch.values)", "next(g, None)", "x = lambda v: v + 1"),
    body("try:", "    1 / 0", "except ZeroDivisionError as e:", "    state['e'] = str(e.args)"),
    body("match batch.values:", "    case [x, *rest]:", "        pass", "    case {'k': v, **others}:", "        pass"),
    body("s = f'{len(batch.ts):>5}'", "t = '%s-%d' % ('a', 1)", "u = format(1.5, '.1f')"),
    body("with_traceback = 1", "formatting = 'x'", "type_ = 'float'"),
    body("import time", "time.sleep(0)"),
    body("import struct", "struct.unpack('>f', b'\\x00\\x00\\x00\\x00')"),
    body("x = super", "y = object()", "z = isinstance(1, int)"),
]


@pytest.mark.parametrize("code", ALLOWED)
def test_allowed_code_passes(code: str) -> None:
    assert check(code) == []


# --- refused code ---------------------------------------------------------------------------------


REFUSED: list[tuple[str, str]] = [
    # imports in every form
    ("import os\n" + OK_BODY, "import of 'os' is not allowed"),
    ("import os.path\n" + OK_BODY, "import of 'os.path' is not allowed"),
    ("import json.decoder\n" + OK_BODY, "import of 'json.decoder' is not allowed"),
    ("from os import system\n" + OK_BODY, "import of 'os' is not allowed"),
    ("from os.path import join\n" + OK_BODY, "import of 'os.path' is not allowed"),
    ("import math, subprocess\n" + OK_BODY, "import of 'subprocess' is not allowed"),
    ("import socket as math\n" + OK_BODY, "import of 'socket' is not allowed"),
    (body("import importlib"), "import of 'importlib' is not allowed"),
    (body("import ctypes"), "import of 'ctypes' is not allowed"),
    (body("import builtins"), "import of 'builtins' is not allowed"),
    (body("import sys"), "import of 'sys' is not allowed"),
    ("from . import x\n" + OK_BODY, "relative imports are not allowed"),
    ("from .. import x\n" + OK_BODY, "relative imports are not allowed"),
    ("from .mod import x\n" + OK_BODY, "relative imports are not allowed"),
    ("from math import *\n" + OK_BODY, "'from math import *' is not allowed"),
    ("from operator import attrgetter\n" + OK_BODY, "attribute 'attrgetter' is not allowed"),
    ("from random import _os\n" + OK_BODY, "attribute '_os' is not allowed"),
    ("from math import pi as __x\n" + OK_BODY, "name '__x' is not allowed"),
    (body("__import__('os')"), "name '__import__' is not allowed"),
    # introspection chains
    (body("().__class__.__bases__[0].__subclasses__()"), "attribute '__class__' is not allowed"),
    (body("x = (lambda: 0).__globals__"), "attribute '__globals__' is not allowed"),
    (body("x = process.__code__"), "attribute '__code__' is not allowed"),
    (body("x = batch.__dict__"), "attribute '__dict__' is not allowed"),
    (body("import random", "random._os.system('id')"), "attribute '_os' is not allowed"),
    (body("g = (i for i in [1])", "g.gi_frame.f_back"), "attribute 'gi_frame' is not allowed"),
    (body("g = (i for i in [1])", "g.gi_code"), "attribute 'gi_code' is not allowed"),
    (body("x = frame.f_back"), "attribute 'f_back' is not allowed"),
    (body("x = frame.f_globals"), "attribute 'f_globals' is not allowed"),
    (body("x = frame.f_locals"), "attribute 'f_locals' is not allowed"),
    (body("x = tb.tb_frame"), "attribute 'tb_frame' is not allowed"),
    (body("x = tb.tb_next"), "attribute 'tb_next' is not allowed"),
    (body("x = co.cr_frame"), "attribute 'cr_frame' is not allowed"),
    (body("x = ag.ag_frame"), "attribute 'ag_frame' is not allowed"),
    (body("x = f.func_globals"), "attribute 'func_globals' is not allowed"),
    (body("x = int.mro()"), "attribute 'mro' is not allowed"),
    (body("try:", "    1/0", "except Exception as e:", "    e.__traceback__"), "attribute '__traceback__'"),
    # format strings read attributes
    (body("'{0.__class__}'.format(batch)"), "attribute 'format' is not allowed"),
    (body("'{x}'.format_map({'x': batch})"), "attribute 'format_map' is not allowed"),
    (body("f = str.format"), "attribute 'format' is not allowed"),
    (body("import operator", "operator.attrgetter('__class__')(batch)"), "attribute 'attrgetter' is not allowed"),
    (body("import operator", "operator.methodcaller('x')"), "attribute 'methodcaller' is not allowed"),
    # builtins
    (body("getattr(batch, '__cl' + 'ass__')"), "'getattr' is not available"),
    (body("setattr(batch, 'x', 1)"), "'setattr' is not available"),
    (body("delattr(batch, 'x')"), "'delattr' is not available"),
    (body("hasattr(batch, 'x')"), "'hasattr' is not available"),
    (body("eval('1')"), "'eval' is not available"),
    (body("exec('x = 1')"), "'exec' is not available"),
    (body("compile('1', 'f', 'eval')"), "'compile' is not available"),
    (body("open('/etc/passwd')"), "'open' is not available"),
    (body("input()"), "'input' is not available"),
    (body("globals()"), "'globals' is not available"),
    (body("locals()"), "'locals' is not available"),
    (body("vars(batch)"), "'vars' is not available"),
    (body("dir(batch)"), "'dir' is not available"),
    (body("breakpoint()"), "'breakpoint' is not available"),
    (body("help(batch)"), "'help' is not available"),
    (body("memoryview(b'x')"), "'memoryview' is not available"),
    (body("type(batch)"), "'type' is not available"),
    (body("exit()"), "'exit' is not available"),
    (body("e = eval"), "'eval' is not available"),
    (body("x = __builtins__['open']"), "name '__builtins__' is not allowed"),
    (body("__builtins__.open"), "name '__builtins__' is not allowed"),
    (body("global len", "len = None"), "'global len' would replace the builtin"),
    ("len = None\n" + OK_BODY, "assigning 'len' at the top level would replace the builtin"),
    ("def isinstance(a, b):\n    return True\n" + OK_BODY, "assigning 'isinstance' at the top level"),
    ("import math as print\n" + OK_BODY, "assigning 'print' at the top level"),
    # dunder names in definitions
    ("def __getattr__(name):\n    return 1\n" + OK_BODY, "name '__getattr__' is not allowed"),
    (body("def f(__x):", "    return __x"), "name '__x' is not allowed"),
    (body("__x = 1"), "name '__x' is not allowed"),
    ("class A:\n    __slots__ = ()\n" + OK_BODY, "name '__slots__' is not allowed"),
    (body("try:", "    pass", "except Exception as __e:", "    pass"), "name '__e' is not allowed"),
    (body("match batch:", "    case object(__class__=c):", "        pass"), "attribute '__class__' is not allowed"),
    # top level runs nothing heavy
    ("for i in range(10):\n    pass\n" + OK_BODY, "'for' statement is not allowed at the top level"),
    ("while True:\n    pass\n" + OK_BODY, "'while' statement is not allowed at the top level"),
    ("if True:\n    X = 1\n" + OK_BODY, "'if' statement is not allowed at the top level"),
    ("try:\n    import math\nexcept ImportError:\n    pass\n" + OK_BODY, "'try' statement is not allowed"),
    ("print('loading')\n" + OK_BODY, "an expression statement is not allowed at the top level"),
    ("import math\nX = math.factorial(100000)\n" + OK_BODY, "only constant values may be assigned at the top level"),
    ("X = [i for i in range(10**9)]\n" + OK_BODY, "(found a comprehension)"),
    ("X = 10 ** 10 ** 10\n" + OK_BODY, "found '**'"),
    ("X = lambda: 0\n" + OK_BODY, "found a lambda"),
    ("X = 1\nX += 1\n" + OK_BODY, "an augmented assignment statement is not allowed"),
    ("import math\nmath.pi = 3\n" + OK_BODY, "only plain names may be assigned at the top level"),
    ("D = {}\nD['k'] = 1\n" + OK_BODY, "only plain names may be assigned at the top level"),
    ("with open('x') as f:\n    pass\n" + OK_BODY, "'with' statement is not allowed at the top level"),
    ("class A:\n    x = print('side effect')\n" + OK_BODY, "only constant values may be assigned in a class body"),
    ("class A:\n    for i in range(3):\n        pass\n" + OK_BODY, "'for' statement is not allowed in a class body"),
    ("X: print('annotation runs') = 1\n" + OK_BODY, "only constant values may be assigned at the top level"),
    # identifiers are NFKC-normalised by the parser, so look-alike letters change nothing
    (body("\uff45val('1')"), "'eval' is not available"),
    (body("x = \U0001d5f4\U0001d5f2\U0001d601attr(batch, 'x')"), "'getattr' is not available"),
    # async, signature, syntax
    ("async def process(batch, state):\n    return batch\n", "async code is not supported"),
    (body("async def f():", "    await g()"), "async code is not supported"),
    ("def handle(batch, state):\n    return batch\n", "no top-level function named process"),
    ("class X:\n    def process(self, batch, state):\n        return batch\n", "no top-level function named process"),
    ("def process(batch):\n    return batch\n", "process must take two parameters"),
    ("def process(a, b, c):\n    return a\n", "process must take two parameters"),
    ("def process(batch, state, *, flag):\n    return batch\n", "process must take two parameters"),
    ("def process(batch, state):\n    return (\n", "syntax error"),
    (OK_BODY + "return 1\n", "syntax error: 'return' outside function"),
    ("def process(batch, batch):\n    return batch\n", "syntax error: duplicate argument"),
    ("nonlocal x\n" + OK_BODY, "syntax error"),
]


@pytest.mark.parametrize(("code", "expected"), REFUSED)
def test_refused_code(code: str, expected: str) -> None:
    found = messages(code)
    assert any(expected in m for m in found), found


def test_import_hint_lists_allowed_modules() -> None:
    error = only("import os\n" + OK_BODY)
    assert "math" in error.hint and "statistics" in error.hint and "os" not in error.hint.split(", ")


def test_errors_are_all_collected_with_positions() -> None:
    code = (
        "import os\n"  # 1
        "from . import x\n"  # 2
        "for i in range(3):\n"  # 3
        "    pass\n"
        "def process(batch, state):\n"  # 5
        "    y = batch.__class__\n"  # 6
        "    return eval('1')\n"  # 7
    )
    errors = check(code)
    where = [(e.line, e.column) for e in errors]
    assert where == sorted(where)
    assert (1, 8) in where  # the module name in "import os"
    assert (2, 1) in where
    assert (3, 1) in where
    assert (6, 15) in where  # the attribute itself, not the start of the chain
    assert (7, 12) in where
    assert all(e.message and e.line for e in errors)


def test_columns_count_characters_not_bytes() -> None:
    error = only(body("é = 'ü'; x = é.__class__"))
    assert (error.line, error.column) == (2, 20)


def test_syntax_error_is_the_only_error() -> None:
    error = only("import os\ndef process(batch, state)\n    return batch\n")
    assert error.message.startswith("syntax error") and error.line == 2


def test_null_bytes_and_huge_code() -> None:
    assert messages("def process(batch, state):\n    return '\\0'\n") == []  # an escaped NUL is fine
    assert any("cannot be parsed" in m or "syntax error" in m for m in messages("x = 1\0\n" + OK_BODY))
    assert "longer than" in messages("#" * (policy.MAX_SOURCE_LENGTH + 1))[0]


def test_deep_nesting_is_refused_not_a_crash() -> None:
    assert "cannot be parsed" in messages(body("x = " + "-" * 5000 + "1"))[0]
    assert "cannot be parsed" in messages(body("x = " + " + ".join(["1"] * 20000)))[0]
    assert "too many nested parentheses" in messages(body("x = " + "[" * 300 + "]" * 300))[0]
    assert check(body("x = " + "f(" * 150 + ")" * 150)) == []  # deep but fine: the walk is iterative


def test_config_problems_map_to_code_path() -> None:
    problems = list(PythonUdfConfig(code="import os\n" + OK_BODY).problems())
    assert [(p.path, p.line, p.column) for p in problems] == [("$.code", 1, 8)]
    assert "import of 'os'" in problems[0].message and "math" in problems[0].hint


def test_validation_never_runs_code(tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    write = f"open({str(marker)!r}, 'w').write('x')"
    code = (
        f"def mark(f):\n    {write}\n    return f\n"
        f"@mark\n"
        f"def process(batch, state=[{write}], other={write}):\n"
        "    return batch\n"
    )
    assert messages(code)  # refused (open), and nothing ran
    assert not marker.exists()
    # Code the policy accepts is not run either: a decorator that never returns.
    endless = "def forever(f):\n    while True:\n        pass\n@forever\n" + OK_BODY
    started = time.monotonic()
    assert check(endless) == []
    assert time.monotonic() - started < 5
