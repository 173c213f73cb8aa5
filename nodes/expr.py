"""The expression language of the filter and expression nodes.

Users write small Python-like expressions in the editor::

    value > 10 and quality == GOOD            # transform.filter: which points to keep
    voltage * current / 1000                  # transform.expression: a new tag from other tags
    point["Voltage L1"] * sqrt(3)             # tag names that are not identifiers

An expression is parsed with :func:`ast.parse` and checked once against a strict allow-list of
node types, names and functions. The checked tree is then translated (by this module, never by
copying user text) into the source of one list comprehension over the batch columns, compiled
once, and executed with a globals dict that holds only the helpers below and an empty
``__builtins__``. Per batch, evaluation is a single comprehension, not an interpreter loop.

User text reaches the generated code only as ``repr()`` of validated constants; every name is
mapped to a generated identifier (``value``, ``_t0``, ``_f_sqrt``...), so nothing the user types
can name a builtin, a module or an attribute.

Two modes share the grammar:

* ``filter`` (:func:`compile_filter`): the names are the fields of a point -- ``value``,
  ``quality``, ``ts``, ``series``, ``tag``, ``device`` -- and the result is a truth value.
* ``expression`` (:func:`compile_expression`): every other bare identifier is a tag name, and
  the result is the new value.

Evaluation errors (comparing text with a number, division by zero, ``sqrt(-1)``...) never fail a
whole batch: the failing points are counted and skipped, see :meth:`Filter.select_with_errors`
and :meth:`Expression.evaluate_columns`.
"""

from __future__ import annotations

import ast
import bisect
import itertools
import math
import re
import unicodedata
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, Final, Literal, NoReturn

from nodes.points import Batch, Value

__all__ = [
    "CONSTANTS",
    "FILTER_FIELDS",
    "FUNCTIONS",
    "MAX_DEPTH",
    "MAX_EXPONENT",
    "MAX_SOURCE_LENGTH",
    "EvaluationError",
    "Expression",
    "ExpressionError",
    "Filter",
    "check",
    "compile_expression",
    "compile_filter",
]

Mode = Literal["filter", "expression"]

MAX_SOURCE_LENGTH: Final = 4000
MAX_DEPTH: Final = 50
MAX_EXPONENT: Final = 64
# String repetition (``text * n``) is capped both per operation and in total length: nested
# repetitions (``(s * 9999) * 9999``) stay under the count limit but not under the length one.
MAX_REPEAT: Final = 10_000
MAX_STRING_LENGTH: Final = 1_000_000
# ``int ** int`` is exact and its cost grows with the size of the result; 2**16 bits is ~20,000
# digits, microseconds to compute, while ``((10**64)**64)**64`` would take seconds.
MAX_POWER_BITS: Final = 1 << 16


# --------------------------------------------------------------------------------------------
# Errors
# --------------------------------------------------------------------------------------------


class ExpressionError(ValueError):
    """An expression that cannot be compiled, with the position of the offending text."""

    message: str
    offset: int  # 0-based character offset in the source
    line: int  # 1-based
    column: int  # 1-based, in characters

    def __init__(self, message: str, offset: int, line: int, column: int) -> None:
        # All four go to ``args`` so that the exception pickles and copies faithfully.
        super().__init__(message, offset, line, column)
        self.message = message
        self.offset = offset
        self.line = line
        self.column = column

    def __str__(self) -> str:
        return f"line {self.line}, column {self.column}: {self.message}"


class EvaluationError(ValueError):
    """Evaluating a compiled expression failed for one set of values (or a tag was missing)."""


def _error_at(source: str, message: str, offset: int) -> ExpressionError:
    offset = max(0, min(offset, len(source)))
    starts = _line_starts(source)
    index = bisect.bisect_right(starts, offset) - 1
    return ExpressionError(message, offset, index + 1, offset - starts[index] + 1)


def _line_starts(text: str) -> list[int]:
    """Offsets at which lines begin, splitting exactly where Python's tokenizer does.

    ``str.splitlines`` is not used: it also splits at form feeds, ``\\x1c``, ``\\u2028``...,
    which the tokenizer treats as ordinary characters, and line numbers would drift.
    """
    starts = [0]
    i, n = 0, len(text)
    while i < n:
        char = text[i]
        if char == "\r":
            if i + 1 < n and text[i + 1] == "\n":
                i += 1
            starts.append(i + 1)
        elif char == "\n":
            starts.append(i + 1)
        i += 1
    return starts


# --------------------------------------------------------------------------------------------
# Run-time helpers: the only things generated code can reach
# --------------------------------------------------------------------------------------------


def _type_name(value: object) -> str:
    return "text" if isinstance(value, str) else type(value).__name__


_NUMBER_TYPES: Final = (int, float)  # a tuple: isinstance with a tuple is faster than with int | float


def _pow(base: Any, exponent: Any) -> Any:
    """``base ** exponent`` refusing results that would take unbounded time or memory."""
    if not (isinstance(base, _NUMBER_TYPES) and isinstance(exponent, _NUMBER_TYPES)):
        raise TypeError(f"** needs numbers, not {_type_name(base)} and {_type_name(exponent)}")
    if exponent > MAX_EXPONENT or exponent < -MAX_EXPONENT:
        raise EvaluationError(f"the exponent is too large (the limit is {MAX_EXPONENT})")
    # Only int ** int is exact, and so the only case whose cost grows with the result.
    if (
        exponent.__class__ is int
        and isinstance(base, int)
        and exponent > 0
        and base.bit_length() * exponent > MAX_POWER_BITS
    ):
        raise EvaluationError("the result of ** is too large")
    try:
        result = base**exponent
    except OverflowError:
        raise EvaluationError("the result of ** is too large") from None
    if result.__class__ is complex:  # (-8) ** 0.5 is a complex number in Python
        raise EvaluationError("a negative number cannot be raised to a fractional power")
    return result


def _mul(left: Any, right: Any) -> Any:
    """``left * right`` refusing huge string repetitions; used only where the compiler cannot
    tell that neither side is text (see ``_Translator._binop``)."""
    if isinstance(left, str) and isinstance(right, int):
        _check_repeat(left, right)
    elif isinstance(right, str) and isinstance(left, int):
        _check_repeat(right, left)
    return left * right


def _check_repeat(text: str, count: int) -> None:
    if count > MAX_REPEAT or len(text) * count > MAX_STRING_LENGTH:
        raise EvaluationError(
            f"text can be repeated at most {MAX_REPEAT} times and up to {MAX_STRING_LENGTH} characters"
        )


def _mod(left: Any, right: Any) -> Any:
    # ``"%0999999999d" % 1`` allocates a gigabyte: % on text is formatting, which we do not offer.
    if isinstance(left, str):
        raise TypeError("% is not defined for text")
    return left % right


def _round(x: Any, digits: Any = None) -> Any:
    if digits is None:
        return round(x)
    if not isinstance(digits, int):
        raise TypeError(f"round() needs a whole number of digits, not {_type_name(digits)}")
    if abs(digits) > MAX_EXPONENT:  # round(5, -10**9) computes 10**(10**9)
        raise EvaluationError(f"round() accepts at most {MAX_EXPONENT} digits")
    return round(x, digits)


def _clamp(x: Any, lo: Any, hi: Any) -> Any:
    if x < lo:
        return lo
    if x > hi:
        return hi
    return x


def _text(function: str, *values: object) -> None:
    for value in values:
        if not isinstance(value, str):
            raise TypeError(f"{function}() needs text, not {_type_name(value)}")


def _len(s: Any) -> int:
    _text("len", s)
    return len(s)


def _startswith(s: Any, prefix: Any) -> bool:
    _text("startswith", s, prefix)
    return bool(s.startswith(prefix))


def _endswith(s: Any, suffix: Any) -> bool:
    _text("endswith", s, suffix)
    return bool(s.endswith(suffix))


def _contains(s: Any, sub: Any) -> bool:
    _text("contains", s, sub)
    return sub in s


# --------------------------------------------------------------------------------------------
# Names: functions, constants, filter fields
# --------------------------------------------------------------------------------------------

# Static result kinds, used only to skip run-time guards where they are provably unnecessary:
# "float" is certainly a float, "num" certainly int/float/bool, "str" certainly text, "any" unknown;
# "join" (functions only) means "the join of the argument kinds", as for min/max.
_Kind = Literal["num", "float", "str", "any"]
_NUMERIC: Final = ("num", "float")


@dataclass(frozen=True, slots=True)
class _Function:
    impl: Callable[..., Any]
    min_args: int
    max_args: int | None  # None: no upper limit
    kind: _Kind | Literal["join"]
    doc: str


_FUNCTIONS: Final[dict[str, _Function]] = {
    "abs": _Function(abs, 1, 1, "num", "abs(x): absolute value of x"),
    "min": _Function(min, 2, None, "join", "min(a, b, ...): the smallest argument"),
    "max": _Function(max, 2, None, "join", "max(a, b, ...): the largest argument"),
    "round": _Function(_round, 1, 2, "num", "round(x) or round(x, digits): x rounded (halves to even)"),
    "sqrt": _Function(math.sqrt, 1, 1, "float", "sqrt(x): square root of x"),
    "log": _Function(math.log, 1, 2, "float", "log(x) or log(x, base): natural logarithm, or to base"),
    "log10": _Function(math.log10, 1, 1, "float", "log10(x): base-10 logarithm of x"),
    "exp": _Function(math.exp, 1, 1, "float", "exp(x): e raised to the power x"),
    "sin": _Function(math.sin, 1, 1, "float", "sin(x): sine of x (radians)"),
    "cos": _Function(math.cos, 1, 1, "float", "cos(x): cosine of x (radians)"),
    "tan": _Function(math.tan, 1, 1, "float", "tan(x): tangent of x (radians)"),
    "floor": _Function(math.floor, 1, 1, "num", "floor(x): largest whole number <= x"),
    "ceil": _Function(math.ceil, 1, 1, "num", "ceil(x): smallest whole number >= x"),
    "clamp": _Function(_clamp, 3, 3, "join", "clamp(x, lo, hi): x limited to the range lo..hi"),
    "int": _Function(int, 1, 1, "num", "int(x): x as a whole number (text is parsed, decimals cut)"),
    "float": _Function(float, 1, 1, "float", "float(x): x as a decimal number (text is parsed)"),
    "bool": _Function(bool, 1, 1, "num", "bool(x): truth value of x (0, empty text and False are false)"),
    "str": _Function(str, 1, 1, "str", "str(x): x as text"),
    "len": _Function(_len, 1, 1, "num", "len(s): number of characters in the text s"),
    "startswith": _Function(_startswith, 2, 2, "num", "startswith(s, prefix): whether s begins with prefix"),
    "endswith": _Function(_endswith, 2, 2, "num", "endswith(s, suffix): whether s ends with suffix"),
    "contains": _Function(_contains, 2, 2, "num", "contains(s, sub): whether the text sub occurs in s"),
}

_CONSTANT_VALUES: Final[dict[str, int | float]] = {
    "pi": math.pi,
    "e": math.e,
    "GOOD": 0,
    "UNCERTAIN": 1,
    "BAD": 2,
}

#: Function name -> one-line help, for the editor.
FUNCTIONS: Final[Mapping[str, str]] = MappingProxyType({name: f.doc for name, f in _FUNCTIONS.items()})

#: Constant name -> one-line help, for the editor.
CONSTANTS: Final[Mapping[str, str]] = MappingProxyType(
    {
        "pi": "pi: 3.14159...",
        "e": "e: 2.71828..., the base of natural logarithms",
        "GOOD": "GOOD: quality 0, a good value",
        "UNCERTAIN": "UNCERTAIN: quality 1, a value of uncertain quality",
        "BAD": "BAD: quality 2, a bad value",
    }
)

#: Filter field -> one-line help, for the editor. The order is the column order of the
#: generated code.
FILTER_FIELDS: Final[Mapping[str, str]] = MappingProxyType(
    {
        "value": "value: the point's value (number, true/false or text)",
        "quality": "quality: the point's quality, GOOD (0), UNCERTAIN (1) or BAD (2)",
        "ts": "ts: the point's time, in seconds since 1970-01-01 UTC",
        "series": 'series: the full series key, e.g. "plc1/temperature"',
        "tag": "tag: the last part of the series key",
        "device": "device: the first part of the series key",
    }
)

# How a field appears in generated code: its loop variable, the expression using it, its kind.
# ``ts`` is iterated as integer nanoseconds and converted where used, which is cheaper than a
# converted column when the expression does not end up reading it for every point.
_FIELD_VARS: Final[dict[str, tuple[str, str, _Kind]]] = {
    "value": ("value", "value", "any"),
    "quality": ("quality", "quality", "num"),
    "ts": ("ts_ns", "(ts_ns / 1000000000)", "float"),
    "series": ("series", "series", "str"),
    "tag": ("tag", "tag", "str"),
    "device": ("device", "device", "str"),
}

_RUNTIME: Final[dict[str, object]] = {
    "_zip": zip,
    "_enumerate": enumerate,
    "_range": range,
    "_pow": _pow,
    "_mul": _mul,
    "_mod": _mod,
    **{f"_f_{name}": f.impl for name, f in _FUNCTIONS.items()},
}


# --------------------------------------------------------------------------------------------
# Translation: validate the AST and generate Python source for it, in one walk
# --------------------------------------------------------------------------------------------

_REJECTED: Final[dict[type[ast.AST], str]] = {
    ast.Lambda: "lambda functions are not allowed",
    ast.ListComp: "comprehensions are not allowed",
    ast.SetComp: "comprehensions are not allowed",
    ast.DictComp: "comprehensions are not allowed",
    ast.GeneratorExp: "generator expressions are not allowed",
    ast.Starred: "unpacking with * is not allowed",
    ast.NamedExpr: "assignment with := is not allowed",
    ast.JoinedStr: "f-strings are not allowed",
    ast.FormattedValue: "f-strings are not allowed",
    ast.Dict: "dict literals are not allowed",
    ast.Set: "set literals are not allowed",
    ast.Slice: "slices are not allowed",
    ast.Await: "await is not allowed",
    ast.Yield: "yield is not allowed",
    ast.YieldFrom: "yield is not allowed",
    ast.Tuple: "lists and tuples are only allowed after 'in', as in value in (1, 2, 3)",
    ast.List: "lists and tuples are only allowed after 'in', as in value in (1, 2, 3)",
}

_BINOPS: Final[dict[type[ast.operator], str]] = {
    ast.Add: "+",
    ast.Sub: "-",
    ast.Mult: "*",
    ast.Div: "/",
    ast.FloorDiv: "//",
    ast.Mod: "%",
    ast.Pow: "**",
}

_REJECTED_BINOPS: Final[dict[type[ast.operator], tuple[str, str]]] = {
    ast.BitAnd: ("&", "the bitwise operator & is not allowed; use 'and'"),
    ast.BitOr: ("|", "the bitwise operator | is not allowed; use 'or'"),
    ast.BitXor: ("^", "the bitwise operator ^ is not allowed; use ** for powers"),
    ast.LShift: ("<<", "the shift operator << is not allowed"),
    ast.RShift: (">>", "the shift operator >> is not allowed"),
    ast.MatMult: ("@", "the operator @ is not allowed"),
}

_COMPARISONS: Final[dict[type[ast.cmpop], str]] = {
    ast.Eq: "==",
    ast.NotEq: "!=",
    ast.Lt: "<",
    ast.LtE: "<=",
    ast.Gt: ">",
    ast.GtE: ">=",
    ast.In: "in",
    ast.NotIn: "not in",
}

_NOT_CONSTANT: Final = object()


@dataclass(frozen=True, slots=True)
class _Code:
    """Generated Python source for one sub-expression, with what the compiler knows about it."""

    text: str
    kind: _Kind
    # The numeric value when the sub-expression is a constant (folded at compile time).
    const: object = _NOT_CONSTANT
    # A raw input or a literal: its size is bounded by the input, not by a computation.
    leaf: bool = False


@dataclass(frozen=True, slots=True)
class _Translation:
    body: str  # Python source of the expression, over the loop variables
    fields: tuple[str, ...]  # filter mode: referenced fields, in FILTER_FIELDS order
    inputs: tuple[str, ...]  # expression mode: referenced tags, in first-appearance order
    constants: dict[str, object]  # values too large or special for a literal (_k0, _k1...)


class _Translator:
    def __init__(self, source: str, prefix: int, mode: Mode) -> None:
        self.source = source
        # ast positions are relative to the parsed text, the source without leading whitespace.
        self.prefix = prefix
        self.body_starts = _line_starts(source[prefix:])
        self.mode = mode
        self.fields: set[str] = set()
        self.inputs: dict[str, str] = {}  # tag name -> loop variable, in first-appearance order
        self.constants: dict[str, object] = {}

    # -- positions ---------------------------------------------------------------------------

    def _offset(self, lineno: int, col_bytes: int) -> int:
        """Character offset in the source of an ast position (ast columns are UTF-8 bytes)."""
        index = max(0, min(lineno - 1, len(self.body_starts) - 1))
        start = self.prefix + self.body_starts[index]
        line = self.source[start : start + col_bytes]  # a byte column is >= the char column
        column = len(line.encode("utf-8", "surrogatepass")[:col_bytes].decode("utf-8", "ignore"))
        return start + column

    def _start(self, node: ast.AST) -> int:
        lineno = getattr(node, "lineno", None)
        col = getattr(node, "col_offset", None)
        if lineno is None or col is None:
            return self.prefix
        return self._offset(lineno, col)

    def _end(self, node: ast.AST) -> int:
        lineno = getattr(node, "end_lineno", None)
        col = getattr(node, "end_col_offset", None)
        if lineno is None or col is None:
            return self._start(node)
        return self._offset(lineno, col)

    def fail(self, message: str, node: ast.AST, offset: int | None = None) -> NoReturn:
        raise _error_at(self.source, message, self._start(node) if offset is None else offset)

    def _between(self, symbol: str, left: ast.AST, right: ast.AST) -> int | None:
        """Offset of an operator symbol (which has no ast position) between two operands."""
        found = self.source.find(symbol, self._end(left), self._start(right))
        return None if found < 0 else found

    # -- walk --------------------------------------------------------------------------------

    def translate(self, tree: ast.Expression) -> _Translation:
        code = self.visit(tree.body, 1)
        return _Translation(
            body=code.text,
            fields=tuple(f for f in FILTER_FIELDS if f in self.fields),
            inputs=tuple(self.inputs),
            constants=self.constants,
        )

    def visit(self, node: ast.expr, depth: int) -> _Code:
        if depth > MAX_DEPTH:
            self.fail(f"the expression is nested too deeply (more than {MAX_DEPTH} levels)", node)
        if isinstance(node, ast.Constant):
            return self._constant(node)
        if isinstance(node, ast.Name):
            return self._name(node)
        if isinstance(node, ast.Subscript):
            return self._subscript(node)
        if isinstance(node, ast.UnaryOp):
            return self._unary(node, depth)
        if isinstance(node, ast.BinOp):
            return self._binop(node, depth)
        if isinstance(node, ast.BoolOp):
            keyword = " and " if isinstance(node.op, ast.And) else " or "
            parts = [self.visit(value, depth + 1) for value in node.values]
            return _Code(f"({keyword.join(p.text for p in parts)})", _join(p.kind for p in parts))
        if isinstance(node, ast.Compare):
            return self._compare(node, depth)
        if isinstance(node, ast.IfExp):
            body = self.visit(node.body, depth + 1)  # source order, so inputs keep appearance order
            test = self.visit(node.test, depth + 1)
            orelse = self.visit(node.orelse, depth + 1)
            return _Code(f"({body.text} if {test.text} else {orelse.text})", _join((body.kind, orelse.kind)))
        if isinstance(node, ast.Call):
            return self._call(node, depth)
        if isinstance(node, ast.Attribute):
            self._attribute(node, 'attribute access is not allowed (use point["name"] for tag names)')
        self.fail(_REJECTED.get(type(node), f"{type(node).__name__} is not allowed"), node)

    def _attribute(self, node: ast.Attribute, message: str) -> NoReturn:
        # Point at the attribute name, after the dot: that is the part that is wrong.
        offset = self._end(node) - len(node.attr)
        if self.source[offset : offset + len(node.attr)] != node.attr:
            offset = self._start(node)  # non-ASCII name normalised by the parser: be safe
        self.fail(message, node, offset)

    def _literal(self, value: object, kind: _Kind, *, numeric: bool) -> _Code:
        const = value if numeric else _NOT_CONSTANT
        if isinstance(value, bool) or value is None or isinstance(value, str):
            return _Code(repr(value), kind, const, leaf=True)
        if (isinstance(value, int) and abs(value) < 1 << 63) or (isinstance(value, float) and math.isfinite(value)):
            text = repr(value)
            # Parenthesised so that a folded -2 stays -2 as the base of ** or after another minus.
            return _Code(f"({text})" if text.startswith("-") else text, kind, const, leaf=True)
        # inf, nan and huge ints have no safe literal (repr of a 5,000-digit int even raises):
        # hand the object to the generated code as a global instead.
        name = f"_k{len(self.constants)}"
        self.constants[name] = value
        return _Code(name, kind, const, leaf=True)

    def _constant(self, node: ast.Constant) -> _Code:
        value = node.value
        if isinstance(value, int):  # bool included
            return self._literal(value, "num", numeric=True)
        if isinstance(value, float):
            return self._literal(value, "float", numeric=True)
        if isinstance(value, str):
            return self._literal(value, "str", numeric=False)
        if value is None:
            return self._literal(None, "any", numeric=False)
        if isinstance(value, complex):
            self.fail("complex numbers are not supported", node)
        if isinstance(value, bytes):
            self.fail("bytes literals are not allowed", node)
        self.fail(f"the constant {value!r} is not allowed", node)

    def _name(self, node: ast.Name) -> _Code:
        name = node.id
        if name.startswith("__"):
            self.fail("names starting with '__' are not allowed", node)
        if name in _CONSTANT_VALUES:
            value = _CONSTANT_VALUES[name]
            return self._literal(value, "float" if isinstance(value, float) else "num", numeric=True)
        if name in _FUNCTIONS:
            hint = f' (use point["{name}"] for a tag of that name)' if self.mode == "expression" else ""
            self.fail(f"{name} is a function: call it as {name}(...){hint}", node)
        if name == "point":
            self.fail('point must be followed by a name in brackets, as in point["Voltage L1"]', node)
        if self.mode == "expression":
            # The parser NFKC-normalises identifiers: the micro sign in "Iµ" becomes a Greek mu
            # and the tag would not be found. The tag is what the user typed, so take the text.
            typed = self.source[self._start(node) : self._end(node)]
            if typed != name and unicodedata.normalize("NFKC", typed) == name:
                name = typed
        return self._field_or_tag(name, node)

    def _field_or_tag(self, name: str, node: ast.expr) -> _Code:
        if self.mode == "filter":
            if name not in FILTER_FIELDS:
                self.fail(f"unknown name {name!r}; a filter can use {', '.join(FILTER_FIELDS)}", node)
            self.fields.add(name)
            _, text, kind = _FIELD_VARS[name]
            return _Code(text, kind, leaf=True)
        var = self.inputs.setdefault(name, f"_t{len(self.inputs)}")
        return _Code(var, "any", leaf=True)

    def _subscript(self, node: ast.Subscript) -> _Code:
        if not (isinstance(node.value, ast.Name) and node.value.id == "point"):
            self.fail('brackets are only allowed after point, as in point["Voltage L1"]', node)
        index = node.slice
        if isinstance(index, ast.Slice):
            self.fail("slices are not allowed", index)
        if not (isinstance(index, ast.Constant) and isinstance(index.value, str)):
            self.fail('point[...] needs a name in quotes, as in point["Voltage L1"]', index)
        return self._field_or_tag(index.value, index)

    def _unary(self, node: ast.UnaryOp, depth: int) -> _Code:
        if isinstance(node.op, ast.Invert):
            self.fail("the bitwise operator ~ is not allowed; use 'not'", node)
        operand = self.visit(node.operand, depth + 1)
        if isinstance(node.op, ast.Not):
            return _Code(f"(not {operand.text})", "num")
        symbol = "-" if isinstance(node.op, ast.USub) else "+"
        value = operand.const
        if isinstance(value, int | float):
            return self._fold(node, lambda: -value if symbol == "-" else +value)
        # -x and +x succeed only on numbers, so the result is numeric whatever x was.
        return _Code(f"({symbol}{operand.text})", "float" if operand.kind == "float" else "num")

    def _fold(self, node: ast.expr, compute: Callable[[], object]) -> _Code:
        """A constant sub-expression, computed now (with the same guards as at run time)."""
        try:
            value = compute()
        except (ArithmeticError, ValueError, TypeError) as exc:
            self.fail(f"this constant expression cannot be computed: {_describe(exc)}", node)
        return self._literal(value, "float" if isinstance(value, float) else "num", numeric=True)

    def _binop(self, node: ast.BinOp, depth: int) -> _Code:
        op_type = type(node.op)
        if op_type in _REJECTED_BINOPS:
            symbol, message = _REJECTED_BINOPS[op_type]
            self.fail(message, node, self._between(symbol, node.left, node.right))
        if op_type not in _BINOPS:
            self.fail(f"the operator {op_type.__name__} is not allowed", node)
        symbol = _BINOPS[op_type]
        left = self.visit(node.left, depth + 1)
        right = self.visit(node.right, depth + 1)
        numeric = left.kind in _NUMERIC and right.kind in _NUMERIC
        some_float = "float" in (left.kind, right.kind)

        if symbol == "**" and isinstance(right.const, int | float) and abs(right.const) > MAX_EXPONENT:
            # Also catches 10 ** 10 ** 10: the exponent 10 ** 10 was folded to a constant.
            self.fail(f"the exponent is too large (the limit is {MAX_EXPONENT})", node.right)
        if symbol == "%" and left.kind == "str":
            self.fail("% is not defined for text", node, self._between("%", node.left, node.right))
        if symbol == "*" and "str" in (left.kind, right.kind):
            count = right.const if left.kind == "str" else left.const
            if isinstance(count, int) and count > MAX_REPEAT:
                self.fail(f"text can be repeated at most {MAX_REPEAT} times", node)

        if left.const is not _NOT_CONSTANT and right.const is not _NOT_CONSTANT:
            a, b = left.const, right.const
            return self._fold(node, lambda: _apply(symbol, a, b))

        kind: _Kind
        if symbol == "/":
            kind = "float"
        elif symbol in ("+", "*") and not numeric:
            # text + text and text * n give text; anything else that succeeds is a number.
            kind = "str" if "str" in (left.kind, right.kind) else "any"
        else:
            kind = "float" if some_float else "num"

        text = f"({left.text} {symbol} {right.text})"
        if symbol == "*" and not (numeric or some_float or _small_repeat(left, right)):
            text = f"_mul({left.text}, {right.text})"
        elif symbol == "%" and left.kind not in _NUMERIC:
            text = f"_mod({left.text}, {right.text})"
        elif symbol == "**" and not _safe_power(left, right):
            text = f"_pow({left.text}, {right.text})"
        return _Code(text, kind)

    def _compare(self, node: ast.Compare, depth: int) -> _Code:
        parts = [self.visit(node.left, depth + 1).text]
        previous: ast.expr = node.left
        for op, comparator in zip(node.ops, node.comparators, strict=True):
            if isinstance(op, ast.Is | ast.IsNot):
                self.fail("'is' is not allowed; use == or !=", node, self._between("is", previous, comparator))
            symbol = _COMPARISONS[type(op)]
            if symbol in ("in", "not in"):
                parts.append(f"{symbol} {self._constant_list(comparator, depth + 1)}")
            else:
                parts.append(f"{symbol} {self.visit(comparator, depth + 1).text}")
            previous = comparator
        return _Code(f"({' '.join(parts)})", "num")

    def _constant_list(self, node: ast.expr, depth: int) -> str:
        if depth > MAX_DEPTH:
            self.fail(f"the expression is nested too deeply (more than {MAX_DEPTH} levels)", node)
        if not isinstance(node, ast.Tuple | ast.List):
            hint = (
                "use a tuple (a, b) or a list [a, b]"
                if isinstance(node, ast.Set)
                else "use contains(text, part) to search in text"
            )
            self.fail(f"'in' needs a list of constants, as in value in (1, 2, 3); {hint}", node)
        items: list[str] = []
        for element in node.elts:
            if not _is_literal(element):
                self.fail("only constants are allowed in the list after 'in', as in (1, -2, 'text', BAD)", element)
            items.append(self.visit(element, depth + 1).text)
        if not items:
            return "()"
        # CPython turns `x in (consts)` into a constant tuple and `x in {consts}` into a constant
        # frozenset (hash lookup) -- but only if every item is a literal, not a _k global.
        if len(items) >= 4 and not any(item.startswith("_k") for item in items):
            return "{" + ", ".join(items) + "}"
        return "(" + ", ".join(items) + ("," if len(items) == 1 else "") + ")"

    def _call(self, node: ast.Call, depth: int) -> _Code:
        func = node.func
        if isinstance(func, ast.Attribute):
            self._attribute(func, "method calls are not allowed; use functions such as startswith(s, prefix)")
        if not isinstance(func, ast.Name):
            self.visit(func, depth + 1)  # reports lambdas and the like with their own message
            self.fail("only functions can be called, as in sqrt(x)", func)
        name = func.id
        if name.startswith("__"):
            self.fail("names starting with '__' are not allowed", func)
        spec = _FUNCTIONS.get(name)
        if spec is None:
            self.fail(f"unknown function {name!r}; the functions are {', '.join(_FUNCTIONS)}", func)
        args = [self.visit(arg, depth + 1) for arg in node.args]
        if node.keywords:
            keyword = node.keywords[0]
            if keyword.arg is None:
                self.fail("unpacking with ** is not allowed", keyword)
            self.fail(f"keyword arguments such as {keyword.arg}= are not allowed", keyword)
        count = len(args)
        if count < spec.min_args or (spec.max_args is not None and count > spec.max_args):
            if spec.max_args is None:
                expected = f"at least {spec.min_args}"
            elif spec.max_args == spec.min_args:
                expected = str(spec.min_args)
            else:
                expected = f"{spec.min_args} or {spec.max_args}"
            plural = "" if expected == "1" else "s"
            self.fail(f"{name}() takes {expected} argument{plural} ({count} given)", node)
        kind = _join(a.kind for a in args) if spec.kind == "join" else spec.kind
        return _Code(f"_f_{name}({', '.join(a.text for a in args)})", kind)


def _join(kinds: Any) -> _Kind:
    """The kind of a value that is one of several sub-expressions (min, max, a if c else b...)."""
    result: _Kind | None = None
    for kind in kinds:
        if result is None or result == kind:
            result = kind
        elif result in _NUMERIC and kind in _NUMERIC:
            result = "num"
        else:
            return "any"
    return result or "any"


def _is_literal(node: ast.expr) -> bool:
    """A constant: a literal, a named constant such as BAD, or a signed number such as -1
    (which the parser sees as -(1))."""
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub | ast.UAdd):
        node = node.operand
        return isinstance(node, ast.Constant) and isinstance(node.value, int | float)
    return isinstance(node, ast.Constant) or (isinstance(node, ast.Name) and node.id in _CONSTANT_VALUES)


def _apply(symbol: str, a: Any, b: Any) -> object:
    if symbol == "+":
        return a + b
    if symbol == "-":
        return a - b
    if symbol == "*":
        return _mul(a, b)
    if symbol == "/":
        return a / b
    if symbol == "//":
        return a // b
    if symbol == "%":
        return _mod(a, b)
    return _pow(a, b)


def _small_repeat(left: _Code, right: _Code) -> bool:
    """Whether ``left * right`` is safe inline although one side may be text.

    ``value * 1000`` is the common case: an input (bounded by the input's size) times a
    constant of at most MAX_REPEAT. A repetition of a repetition always goes through ``_mul``,
    because its inner side is then not a leaf.
    """
    for count, other in ((left, right), (right, left)):
        if isinstance(count.const, int) and abs(count.const) <= MAX_REPEAT and other.leaf:
            return True
    return False


def _safe_power(base: _Code, exponent: _Code) -> bool:
    """Whether ``base ** exponent`` is safe inline: a whole constant exponent within the limit
    (never a complex result) on a float (constant time) or on a raw input (bounded size)."""
    e = exponent.const
    return isinstance(e, int) and abs(e) <= MAX_EXPONENT and (base.leaf or base.kind == "float")


def _describe(exc: BaseException) -> str:
    """A failure's message for the user (who does not need Python's exception class names)."""
    if isinstance(exc, OverflowError):
        # 1e300 ** 2 says "(34, 'Numerical result out of range')", exp(1e300) "math range error".
        detail = exc.args[1] if len(exc.args) == 2 else str(exc)
        return f"a number is too large ({detail})"
    text = str(exc)
    return text if text else type(exc).__name__


_BAD_CHARACTERS: Final = re.compile("[\x00\ud800-\udfff]")  # NUL and lone surrogates


def _parse(source: str) -> tuple[ast.Expression, int]:
    """Parse ``source`` as one expression; returns the tree and the length of the leading
    whitespace that was stripped (Python would reject it as an indentation)."""
    if not isinstance(source, str):
        raise TypeError(f"an expression must be a str, not {type(source).__name__}")
    if len(source) > MAX_SOURCE_LENGTH:
        raise _error_at(
            source,
            f"the expression is too long ({len(source)} characters; the limit is {MAX_SOURCE_LENGTH})",
            MAX_SOURCE_LENGTH,
        )
    body = source.lstrip(" \t\f\r\n")
    prefix = len(source) - len(body)
    if not body.strip():
        raise _error_at(source, "the expression is empty", 0)
    # The parser rejects these with messages that carry no position: find them ourselves.
    bad = _BAD_CHARACTERS.search(source)
    if bad is not None:
        raise _error_at(source, f"the character {bad.group()!r} is not allowed", bad.start())
    try:
        with warnings.catch_warnings():
            # e.g. SyntaxWarning for `1 is 1` or `(1)(2)`: either rejected below or harmless.
            warnings.simplefilter("ignore")
            tree = ast.parse(body, mode="eval")
    except SyntaxError as exc:
        raise _error_at(source, f"syntax error: {exc.msg}", _syntax_offset(body, prefix, exc)) from None
    except (RecursionError, MemoryError):
        # `-` * 3000 + "1": the parser gives up before our own depth check could run.
        raise _error_at(source, f"the expression is nested too deeply (more than {MAX_DEPTH} levels)", prefix) from None
    except ValueError as exc:  # defensive: the parser's other refusals of odd input
        raise _error_at(source, f"syntax error: {_describe(exc)}", prefix) from None
    return tree, prefix


def _syntax_offset(body: str, prefix: int, exc: SyntaxError) -> int:
    starts = _line_starts(body)
    if not exc.lineno or exc.lineno < 1:
        return prefix + len(body.rstrip())
    index = min(exc.lineno, len(starts)) - 1
    start = starts[index]
    end = starts[index + 1] if index + 1 < len(starts) else len(body)
    line = body[start:end].rstrip("\r\n")
    # SyntaxError.offset is a 1-based character column; 0/None means "at the end" (unexpected EOF).
    if not exc.offset or exc.offset < 1:
        return prefix + start + len(line.rstrip())
    return prefix + start + min(exc.offset - 1, len(line))


def _translate(source: str, mode: Mode) -> _Translation:
    if mode not in ("filter", "expression"):
        raise ValueError(f"mode must be 'filter' or 'expression', not {mode!r}")
    tree, prefix = _parse(source)
    return _Translator(source, prefix, mode).translate(tree)


def _load(code: str, constants: Mapping[str, object]) -> dict[str, Any]:
    """Compile and run generated module code; the one place where anything is executed.

    ``code`` is built only from this module's templates, generated identifiers and ``repr()``
    of validated constants, never from user text.
    """
    namespace: dict[str, Any] = {"__builtins__": {}, **_RUNTIME, **constants}
    exec(compile(code, "<proxus-expression>", "exec", dont_inherit=True), namespace)
    return namespace


# --------------------------------------------------------------------------------------------
# Public API
# --------------------------------------------------------------------------------------------


def check(source: str, mode: Mode) -> ExpressionError | None:
    """Parse and validate ``source`` for ``mode`` without compiling or executing anything."""
    try:
        _translate(source, mode)
    except ExpressionError as exc:
        return exc
    return None


class Filter:
    """A compiled filter expression: which points of a batch to keep."""

    __slots__ = ("_fast", "_pred", "code", "fields", "source")

    source: str
    fields: tuple[str, ...]  # the point fields the expression reads, in FILTER_FIELDS order
    code: str  # the generated Python source, for debugging

    def __init__(self, source: str) -> None:
        translation = _translate(source, "filter")
        self.source = source
        self.fields = translation.fields
        self.code = _filter_code(translation)
        namespace = _load(self.code, translation.constants)
        self._fast: Callable[..., list[int]] = namespace["_fast"]
        self._pred: Callable[..., object] = namespace["_pred"]

    def __repr__(self) -> str:
        return f"Filter({self.source!r})"

    def select(self, batch: Batch) -> list[int]:
        """Indices of the points to keep; points whose evaluation fails are dropped."""
        return self.select_with_errors(batch)[0]

    def select_with_errors(self, batch: Batch) -> tuple[list[int], int, str | None]:
        """Indices of the points to keep, the number of points whose evaluation failed (they
        are not kept) and the first failure's message."""
        n = len(batch)
        if n == 0:
            return [], 0, None
        columns = [self._column(batch, field) for field in self.fields]
        try:
            return self._fast(n, *columns), 0, None
        except Exception:
            pass  # some point failed: redo the batch point by point to isolate it
        rows: Any = zip(*columns, strict=False) if columns else itertools.repeat((), n)
        keep: list[int] = []
        errors = 0
        first: str | None = None
        pred = self._pred
        for i, row in enumerate(rows):
            try:
                if pred(*row):
                    keep.append(i)
            except Exception as exc:  # any failure of user code is a failed point, never a crash
                errors += 1
                if first is None:
                    first = _describe(exc)
        return keep, errors, first

    @staticmethod
    def _column(batch: Batch, field: str) -> Sequence[Any]:
        if field == "value":
            return batch.values
        if field == "quality":
            return batch.quality
        if field == "ts":
            return batch.ts
        if field == "series":
            return batch.series
        if field == "tag":
            return [s.rpartition("/")[2] for s in batch.series]
        return [s.partition("/")[0] for s in batch.series]  # device


def _filter_code(t: _Translation) -> str:
    params = "".join(f", _c_{field}" for field in t.fields)
    variables = [_FIELD_VARS[field][0] for field in t.fields]
    if not t.fields:
        loop = "_i in _range(_n)"
    elif len(t.fields) == 1:
        loop = f"_i, {variables[0]} in _enumerate(_c_{t.fields[0]})"
    else:
        columns = ", ".join(f"_c_{field}" for field in t.fields)
        loop = f"_i, ({', '.join(variables)}) in _enumerate(_zip({columns}))"
    return (
        f"def _fast(_n{params}):\n"
        f"    return [_i for {loop} if {t.body}]\n"
        f"\n"
        f"def _pred({', '.join(variables)}):\n"
        f"    return {t.body}\n"
    )


class Expression:
    """A compiled value expression over tags, such as ``voltage * current / 1000``."""

    __slots__ = ("_fast", "_row", "code", "inputs", "source")

    source: str
    inputs: tuple[str, ...]  # referenced tag names, in first-appearance order
    code: str  # the generated Python source, for debugging

    def __init__(self, source: str) -> None:
        translation = _translate(source, "expression")
        self.source = source
        self.inputs = translation.inputs
        self.code = _expression_code(translation)
        namespace = _load(self.code, translation.constants)
        self._fast: Callable[..., list[Value | None]] = namespace["_fast"]
        self._row: Callable[..., Value | None] = namespace["_row"]

    def __repr__(self) -> str:
        return f"Expression({self.source!r})"

    def evaluate(self, env: Mapping[str, Value]) -> Value | None:
        """The value for one set of tag values; None only if the expression itself says None.

        Raises :class:`EvaluationError` when a tag is missing from ``env`` or evaluation fails.
        """
        args: list[Value] = []
        for name in self.inputs:
            try:
                args.append(env[name])
            except KeyError:
                raise EvaluationError(f"no value for tag {name!r}") from None
        try:
            return self._row(*args)
        except EvaluationError:
            raise
        except Exception as exc:
            raise EvaluationError(_describe(exc)) from exc

    def evaluate_columns(self, columns: Mapping[str, Sequence[Value]]) -> tuple[list[Value | None], int, str | None]:
        """Values for equal-length columns of tag values: the results (None where evaluation
        failed), the number of failed rows and the first failure's message.

        Raises :class:`EvaluationError` if an input column is missing or the columns differ in
        length.
        """
        for name in self.inputs:
            if name not in columns:
                raise EvaluationError(f"no values for tag {name!r}")
        lengths = {len(column) for column in columns.values()}
        if len(lengths) > 1:
            raise EvaluationError(f"the columns have different lengths: {sorted(lengths)}")
        n = lengths.pop() if lengths else 0
        args = [columns[name] for name in self.inputs]
        try:
            return self._fast(n, *args), 0, None
        except Exception:
            pass  # some row failed: redo row by row to isolate it
        rows: Any = zip(*args, strict=True) if args else itertools.repeat((), n)
        results: list[Value | None] = []
        errors = 0
        first: str | None = None
        row_fn = self._row
        for row in rows:
            try:
                results.append(row_fn(*row))
            except Exception as exc:  # any failure of user code is a failed row, never a crash
                results.append(None)
                errors += 1
                if first is None:
                    first = _describe(exc)
        return results, errors, first


def _expression_code(t: _Translation) -> str:
    variables = [f"_t{i}" for i in range(len(t.inputs))]
    params = "".join(f", _c{i}" for i in range(len(variables)))
    if not variables:
        loop = "_ in _range(_n)"
    elif len(variables) == 1:
        loop = "_t0 in _c0"
    else:
        loop = f"{', '.join(variables)} in _zip({', '.join(f'_c{i}' for i in range(len(variables)))})"
    return (
        f"def _fast(_n{params}):\n"
        f"    return [{t.body} for {loop}]\n"
        f"\n"
        f"def _row({', '.join(variables)}):\n"
        f"    return {t.body}\n"
    )


def compile_filter(source: str) -> Filter:
    """Compile a filter expression; raises :class:`ExpressionError` if it is not valid."""
    return Filter(source)


def compile_expression(source: str) -> Expression:
    """Compile a value expression; raises :class:`ExpressionError` if it is not valid."""
    return Expression(source)
