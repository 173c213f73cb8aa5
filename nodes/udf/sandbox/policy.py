"""The AST policy for ``udf.python`` code: what the code may say, checked without running it.

:func:`check` parses the code with :func:`ast.parse` and compiles the tree with :func:`compile`
(both only build data structures: no statement, decorator, default value or annotation is
evaluated), then walks every node -- iteratively, so deep nesting cannot overflow the stack --
and collects every violation with its line and column. It runs twice: when a flow is validated
or deployed (``PythonUdfConfig.problems``) and in the worker before the code is compiled there.

The rules:

* Imports: only the modules in :data:`ALLOWED_MODULES`, in every form (``import x``,
  ``import x.y``, ``from x import y``); relative and ``*`` imports are refused.
* Names starting with ``__`` (``__import__``, ``__builtins__``, ``__class__``...) are refused
  everywhere, except method names such as ``__init__`` defined directly in a class body.
* Attributes starting with ``_`` are refused (``x.__class__``, ``x.__globals__``, ``random._os``),
  as are frame/code/traceback attributes (``gi_frame``, ``f_back``, ``tb_frame``, ``co_code``...),
  ``mro`` and the name-based attribute readers ``format``/``format_map`` (``'{0.__class__}'.format(x)``)
  and ``operator.attrgetter``/``methodcaller``.
* The builtins in :data:`FORBIDDEN_BUILTINS` (``eval``, ``exec``, ``compile``, ``open``,
  ``getattr``, ``type``, ``globals``...) may not be named at all, and no builtin name may be
  rebound at the top level or declared ``global``.
* The top level may hold only imports, function and class definitions, constant assignments
  (literals, names, dotted names, arithmetic) and docstrings, so loading the code runs nothing
  heavy; class bodies likewise. Decorators, default values and annotations are checked like any
  other code (they run when the worker loads the code, inside the sandbox).
* ``async`` code is refused; a top-level ``def process(batch, state)`` must exist.

The policy is the first layer, not the only one: the worker (see ``worker.py``) provides only the
safe builtins, sanitized copies of the allowed modules, and an audit hook, so code that slips
past these rules still cannot open files, sockets or processes.
"""

from __future__ import annotations

import ast
import builtins
import warnings
from dataclasses import dataclass
from typing import Final

__all__ = [
    "ALLOWED_MODULES",
    "FORBIDDEN_ATTRIBUTES",
    "FORBIDDEN_BUILTINS",
    "SAFE_BUILTINS",
    "PolicyError",
    "check",
    "describe",
]

MAX_SOURCE_LENGTH: Final = 200_000
FILENAME: Final = "<udf>"

# Modules user code may import (and the submodules named here). All are pure computation: none
# opens files, sockets or processes. ``struct`` is added to the usual list for decoding register
# words (``struct.unpack('>f', ...)``), a common need with PLC data.
ALLOWED_MODULES: Final[frozenset[str]] = frozenset(
    {
        "bisect",
        "cmath",
        "collections",
        "collections.abc",
        "datetime",
        "decimal",
        "fractions",
        "functools",
        "heapq",
        "itertools",
        "json",
        "math",
        "operator",
        "random",
        "re",
        "statistics",
        "struct",
        "time",
    }
)
_ALLOWED_LIST: Final = ", ".join(sorted(m for m in ALLOWED_MODULES if "." not in m))

# The builtins the worker gives user code (``print`` is captured, ``__import__`` is guarded).
SAFE_BUILTINS: Final[frozenset[str]] = frozenset(
    {
        "abs", "all", "any", "ascii", "bin", "bool", "bytearray", "bytes", "callable", "chr",
        "classmethod", "complex", "dict", "divmod", "enumerate", "filter", "float", "format",
        "frozenset", "hash", "hex", "id", "int", "isinstance", "issubclass", "iter", "len", "list",
        "map", "max", "min", "next", "object", "oct", "ord", "pow", "print", "property", "range",
        "repr", "reversed", "round", "set", "slice", "sorted", "staticmethod", "str", "sum", "super",
        "tuple", "zip", "True", "False", "None", "NotImplemented", "Ellipsis",
        "ArithmeticError", "AssertionError", "AttributeError", "Exception", "FloatingPointError",
        "IndexError", "KeyError", "LookupError", "MemoryError", "NameError", "NotImplementedError",
        "OverflowError", "RecursionError", "RuntimeError", "StopIteration", "TypeError",
        "UnicodeDecodeError", "UnicodeEncodeError", "UnicodeError", "ValueError", "ZeroDivisionError",
    }
)  # fmt: skip

_CODE = "it runs code from text"
_INTROSPECTION = "it exposes the interpreter's internals"
_BY_NAME = "it reads or writes attributes by name; use obj.attribute"
_INTERACTIVE = "it is an interactive helper"
FORBIDDEN_BUILTINS: Final[dict[str, str]] = {
    "eval": _CODE,
    "exec": _CODE,
    "compile": _CODE,
    "open": "UDF code has no file access",
    "input": "UDF code has no console",
    "globals": _INTROSPECTION,
    "locals": _INTROSPECTION,
    "vars": _INTROSPECTION,
    "dir": _INTROSPECTION,
    "memoryview": _INTROSPECTION,
    "type": "it exposes classes' internals (and type(name, bases, dict) builds classes); use isinstance()",
    "getattr": _BY_NAME,
    "setattr": _BY_NAME,
    "delattr": _BY_NAME,
    "hasattr": _BY_NAME,
    "breakpoint": _INTERACTIVE,
    "help": _INTERACTIVE,
    "exit": _INTERACTIVE,
    "quit": _INTERACTIVE,
    "copyright": _INTERACTIVE,
    "credits": _INTERACTIVE,
    "license": _INTERACTIVE,
}

_FRAME = "frame, code and traceback introspection is not available"
FORBIDDEN_ATTRIBUTES: Final[dict[str, str]] = {
    "format": "format strings can read attributes ('{0.__class__}'); use an f-string: f'{value:.2f}'",
    "format_map": "format strings can read attributes ('{0.__class__}'); use an f-string",
    "attrgetter": "it reads attributes by name; use a lambda",
    "methodcaller": "it calls methods by name; use a lambda",
    "mro": _INTROSPECTION,
    **dict.fromkeys(
        (
            "f_back", "f_builtins", "f_code", "f_globals", "f_lasti", "f_lineno", "f_locals", "f_trace",
            "f_trace_lines", "f_trace_opcodes", "func_closure", "func_code", "func_defaults", "func_dict",
            "func_globals", "im_class", "im_func", "im_self",
        ),
        _FRAME,
    ),
}  # fmt: skip
_FORBIDDEN_ATTRIBUTE_PREFIXES: Final = ("gi_", "cr_", "ag_", "tb_", "co_")

# Names that may not be (re)bound at the top level: every builtin the interpreter knows.
_BUILTIN_NAMES: Final[frozenset[str]] = frozenset(dir(builtins)) | SAFE_BUILTINS | frozenset(FORBIDDEN_BUILTINS)

_TOP_LEVEL_HINT: Final = (
    "move it into process (or a function it calls): the top level may hold only imports, definitions "
    "and constant assignments"
)
_SIGNATURE_HINT: Final = "define a top-level function: def process(batch, state): ... return batch"

# Node types of a "constant" value at the top level or in a class body.
_CONSTANT_NODES: Final = (
    ast.Constant, ast.Name, ast.Attribute, ast.Tuple, ast.List, ast.Set, ast.Dict, ast.UnaryOp, ast.BinOp,
    ast.Load, ast.UAdd, ast.USub, ast.Not, ast.Invert, ast.Add, ast.Sub, ast.Mult, ast.Div, ast.FloorDiv,
    ast.Mod, ast.BitOr, ast.BitAnd, ast.BitXor,
)  # fmt: skip
_ASYNC_NODES: Final = (ast.AsyncFunctionDef, ast.AsyncFor, ast.AsyncWith, ast.Await)


@dataclass(frozen=True, slots=True)
class PolicyError:
    """One violation: what is wrong, where (1-based line and character column), and what to do."""

    message: str
    line: int | None = None
    column: int | None = None
    hint: str = ""

    def __str__(self) -> str:
        where = f"line {self.line}" if self.line is not None else ""
        if where and self.column is not None:
            where += f", column {self.column}"
        return f"{where}: {self.message}" if where else self.message


def describe(errors: list[PolicyError], limit: int = 5) -> str:
    """One line for an exception message: the first few errors."""
    text = "; ".join(str(e) for e in errors[:limit])
    if len(errors) > limit:
        text += f"; and {len(errors) - limit} more"
    return text


class _Checker:
    def __init__(self, code: str) -> None:
        self._lines = code.splitlines()
        self.errors: list[PolicyError] = []

    # -- reporting -----------------------------------------------------------------------------

    def _column(self, line: int | None, byte_offset: int | None) -> int | None:
        """ast columns are UTF-8 byte offsets; editors count characters from 1."""
        if line is None or byte_offset is None:
            return None
        if 1 <= line <= len(self._lines):
            text = self._lines[line - 1].encode("utf-8")[:byte_offset]
            return len(text.decode("utf-8", errors="replace")) + 1
        return byte_offset + 1

    def report(self, node: ast.AST | None, message: str, hint: str = "") -> None:
        line, offset = getattr(node, "lineno", None), getattr(node, "col_offset", None)
        if isinstance(node, ast.Attribute) and node.end_lineno is not None and node.end_col_offset is not None:
            # Point at the attribute's name, not at the start of the chain it ends.
            line, offset = node.end_lineno, node.end_col_offset - len(node.attr.encode("utf-8"))
        self.errors.append(PolicyError(message, line, self._column(line, offset), hint))

    # -- names and attributes ------------------------------------------------------------------

    def name(self, node: ast.AST, name: str | None, *, binding_method: bool = False) -> None:
        if name is None:
            return
        if name.startswith("__") and not (binding_method and name.endswith("__")):
            self.report(
                node,
                f"name {name!r} is not allowed",
                "names starting with '__' belong to Python's internals",
            )
        elif name in FORBIDDEN_BUILTINS:
            self.report(node, f"{name!r} is not available in UDF code: {FORBIDDEN_BUILTINS[name]}")

    def attribute(self, node: ast.AST, attr: str) -> None:
        if attr.startswith("_"):
            self.report(
                node,
                f"attribute {attr!r} is not allowed",
                "attributes starting with '_' are private (and '__' ones reach Python's internals)",
            )
        elif attr in FORBIDDEN_ATTRIBUTES:
            self.report(node, f"attribute {attr!r} is not allowed: {FORBIDDEN_ATTRIBUTES[attr]}")
        elif attr.startswith(_FORBIDDEN_ATTRIBUTE_PREFIXES):
            self.report(node, f"attribute {attr!r} is not allowed: {_FRAME}")

    def module(self, node: ast.AST, module: str) -> None:
        if module not in ALLOWED_MODULES:
            self.report(node, f"import of {module!r} is not allowed", f"allowed modules: {_ALLOWED_LIST}")

    # -- the walk --------------------------------------------------------------------------------

    def walk(self, tree: ast.Module) -> None:
        stack: list[tuple[ast.AST, bool]] = [(tree, False)]
        while stack:
            node, in_class_body = stack.pop()
            self.visit(node, in_class_body)
            body_ids = {id(s) for s in node.body} if isinstance(node, ast.ClassDef) else set()
            stack.extend((child, id(child) in body_ids) for child in ast.iter_child_nodes(node))

    def visit(self, node: ast.AST, in_class_body: bool) -> None:
        if isinstance(node, ast.Name):
            self.name(node, node.id)
        elif isinstance(node, ast.Attribute):
            self.attribute(node, node.attr)
        elif isinstance(node, _ASYNC_NODES):
            self.report(node, "async code is not supported", "use a plain def")
        elif isinstance(node, ast.FunctionDef):
            self.name(node, node.name, binding_method=in_class_body)
        elif isinstance(node, ast.ClassDef):
            self.name(node, node.name)
        elif isinstance(node, ast.arg):
            self.name(node, node.arg)
        elif isinstance(node, ast.Import):
            for alias in node.names:
                self.module(alias, alias.name)
                self.name(alias, alias.asname)
        elif isinstance(node, ast.ImportFrom):
            self.import_from(node)
        elif isinstance(node, ast.Global | ast.Nonlocal):
            for name in node.names:
                self.name(node, name)
                if isinstance(node, ast.Global) and name in _BUILTIN_NAMES:
                    self.report(node, f"'global {name}' would replace the builtin {name!r}", "use another name")
        elif isinstance(node, ast.ExceptHandler | ast.MatchAs | ast.MatchStar):
            self.name(node, node.name)
        elif isinstance(node, ast.MatchMapping):
            self.name(node, node.rest)
        elif isinstance(node, ast.MatchClass):
            for attr in node.kwd_attrs:
                self.attribute(node, attr)

    def import_from(self, node: ast.ImportFrom) -> None:
        if node.level or node.module is None:
            self.report(node, "relative imports are not allowed", f"import one of: {_ALLOWED_LIST}")
            return
        self.module(node, node.module)
        for alias in node.names:
            if alias.name == "*":
                self.report(alias, f"'from {node.module} import *' is not allowed", "import the names you use")
                continue
            self.attribute(alias, alias.name)
            self.name(alias, alias.asname)

    # -- top level -----------------------------------------------------------------------------

    def top_level(self, tree: ast.Module) -> None:
        for stmt in tree.body:
            if isinstance(stmt, ast.Import | ast.ImportFrom):
                for alias in stmt.names:
                    bound = alias.asname or alias.name.partition(".")[0]
                    self.binding(alias, bound)
            elif isinstance(stmt, ast.FunctionDef):
                self.binding(stmt, stmt.name)
            elif isinstance(stmt, ast.ClassDef):
                self.binding(stmt, stmt.name)
                for inner in stmt.body:
                    if not isinstance(inner, ast.FunctionDef | ast.AsyncFunctionDef):
                        self.simple_statement(inner, "in a class body")
            elif not isinstance(stmt, ast.AsyncFunctionDef):  # already reported as async
                self.simple_statement(stmt, "at the top level")
                for target in _assigned(stmt):
                    if isinstance(target, ast.Name):
                        self.binding(target, target.id)

    def binding(self, node: ast.AST, name: str) -> None:
        if name in _BUILTIN_NAMES and name not in FORBIDDEN_BUILTINS and not name.startswith("__"):
            self.report(node, f"assigning {name!r} at the top level would replace the builtin", "use another name")

    def simple_statement(self, stmt: ast.stmt, where: str) -> None:
        if isinstance(stmt, ast.Pass):
            return
        if isinstance(stmt, ast.Expr) and isinstance(stmt.value, ast.Constant) and isinstance(stmt.value.value, str):
            return  # docstring
        if isinstance(stmt, ast.Assign | ast.AnnAssign):
            for target in _assigned(stmt):
                if not isinstance(target, ast.Name):
                    self.report(target, f"only plain names may be assigned {where}", _TOP_LEVEL_HINT)
                    return
            values = [stmt.value] if stmt.value is not None else []
            if isinstance(stmt, ast.AnnAssign):
                values.append(stmt.annotation)
            for value in values:
                bad = next((n for n in ast.walk(value) if not isinstance(n, _CONSTANT_NODES)), None)
                if bad is not None:
                    self.report(
                        bad,
                        f"only constant values may be assigned {where} (found {_kind(bad)})",
                        _TOP_LEVEL_HINT,
                    )
                    return
            return
        self.report(stmt, f"{_kind(stmt)} statement is not allowed {where}", _TOP_LEVEL_HINT)

    def signature(self, tree: ast.Module) -> None:
        defs = [n for n in tree.body if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef) and n.name == "process"]
        if not defs:
            self.report(None, "no top-level function named process", _SIGNATURE_HINT)
            return
        fn = defs[-1]
        if isinstance(fn, ast.AsyncFunctionDef):
            return  # reported as async
        args = fn.args
        positional = [*args.posonlyargs, *args.args]
        required = len(positional) - len(args.defaults)
        required_kwonly = [a for a, default in zip(args.kwonlyargs, args.kw_defaults, strict=True) if default is None]
        if required > 2 or (len(positional) < 2 and args.vararg is None) or required_kwonly:
            self.report(fn, "process must take two parameters: batch and state", _SIGNATURE_HINT)


def _assigned(stmt: ast.stmt) -> list[ast.expr]:
    """The names (and other targets) an assignment statement binds, flattened."""
    if isinstance(stmt, ast.Assign):
        targets = list(stmt.targets)
    elif isinstance(stmt, ast.AnnAssign | ast.AugAssign):
        targets = [stmt.target]
    else:
        return []
    flat: list[ast.expr] = []
    while targets:
        target = targets.pop()
        if isinstance(target, ast.Tuple | ast.List):
            targets.extend(target.elts)
        elif isinstance(target, ast.Starred):
            targets.append(target.value)
        else:
            flat.append(target)
    return flat


_KINDS: Final[dict[type[ast.AST], str]] = {
    ast.For: "'for'",
    ast.While: "'while'",
    ast.If: "'if'",
    ast.Try: "'try'",
    ast.TryStar: "'try'",
    ast.With: "'with'",
    ast.Match: "'match'",
    ast.Raise: "'raise'",
    ast.Assert: "'assert'",
    ast.Delete: "'del'",
    ast.Global: "'global'",
    ast.Nonlocal: "'nonlocal'",
    ast.Return: "'return'",
    ast.AugAssign: "an augmented assignment",
    ast.Expr: "an expression",
    ast.Call: "a call",
    ast.Lambda: "a lambda",
    ast.Subscript: "a subscript",
    ast.Compare: "a comparison",
    ast.BoolOp: "'and'/'or'",
    ast.IfExp: "a conditional expression",
    ast.NamedExpr: "':='",
    ast.Pow: "'**'",
    ast.ListComp: "a comprehension",
    ast.SetComp: "a comprehension",
    ast.DictComp: "a comprehension",
    ast.GeneratorExp: "a generator",
    ast.JoinedStr: "an f-string",
}


def _kind(node: ast.AST) -> str:
    return _KINDS.get(type(node), f"'{type(node).__name__}'")


def check(code: str) -> list[PolicyError]:
    """Every policy violation in ``code``, in source order; an empty list when the code is allowed.

    Never executes the code: it is parsed and compiled (to find errors only the compiler reports,
    such as ``return`` outside a function), never run.
    """
    if len(code) > MAX_SOURCE_LENGTH:
        return [PolicyError(f"the code is longer than {MAX_SOURCE_LENGTH} characters", hint="shorten it")]
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # SyntaxWarning ("is" with a literal...) are not errors
            tree = ast.parse(code, filename=FILENAME, mode="exec")
    except SyntaxError as e:
        return [PolicyError(f"syntax error: {e.msg}", e.lineno, e.offset, "fix the Python syntax")]
    except (ValueError, RecursionError, MemoryError) as e:
        return [PolicyError(f"the code cannot be parsed: {e}", hint="simplify the code")]
    checker = _Checker(code)
    checker.walk(tree)
    checker.top_level(tree)
    checker.signature(tree)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            compile(tree, FILENAME, "exec", dont_inherit=True)
    except SyntaxError as e:
        checker.errors.append(PolicyError(f"syntax error: {e.msg}", e.lineno, e.offset, "fix the Python syntax"))
    except (ValueError, RecursionError, MemoryError) as e:
        checker.errors.append(PolicyError(f"the code cannot be compiled: {e}", hint="simplify the code"))
    unique = {(e.line or 0, e.column or 0, e.message): e for e in checker.errors}
    return [unique[k] for k in sorted(unique)]
