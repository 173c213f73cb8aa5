"""Modbus register maps from CSV: ``tag,table,address,data_type,byte_order,scale,offset,unit,length,bit``.

The header line is required (columns in any order; only ``tag`` and ``address`` are required, an
empty cell takes the field's default). Every bad row is reported with its line number and column;
the caller saves nothing when there is any problem.
"""

from __future__ import annotations

import csv
import io
import re
from typing import Any, get_args

import msgspec

from backend.devices.schemas import CsvProblem
from nodes.device.modbus_read import ByteOrder, DataType, Register, Table

COLUMNS = ("tag", "table", "address", "data_type", "byte_order", "scale", "offset", "unit", "length", "bit")
REQUIRED = ("tag", "address")
MAX_ROWS = 20_000
_INTEGER = {"address", "length", "bit"}
_FLOAT = {"scale", "offset"}
_LOWER = {"table", "data_type"}
_UPPER = {"byte_order"}
_CHOICES = {"table": get_args(Table), "data_type": get_args(DataType), "byte_order": get_args(ByteOrder)}
_AT = re.compile(r"^(?P<message>.*?)(?: - at `\$\.?(?P<path>[^`]*)`)?$", re.DOTALL)


class ParsedRow(msgspec.Struct, frozen=True):
    line: int
    register: Register


def _convert(column: str, cell: str) -> Any:
    if column in _INTEGER:
        try:
            return int(cell, 10)
        except ValueError:
            raise ValueError(f"{cell!r} is not a whole number") from None
    if column in _FLOAT:
        try:
            return float(cell)
        except ValueError:
            raise ValueError(f"{cell!r} is not a number") from None
    if column in _LOWER:
        return cell.lower()
    if column in _UPPER:
        return cell.upper()
    return cell


def parse_registers(text: str) -> tuple[list[ParsedRow], list[CsvProblem]]:
    """The registers of ``text`` with the line each came from, and every problem found."""
    problems: list[CsvProblem] = []
    reader = csv.reader(io.StringIO(text.removeprefix("\ufeff")))
    header: list[str] | None = None
    header_line = 0
    rows: list[ParsedRow] = []
    try:
        while True:
            start = reader.line_num + 1
            try:
                cells = next(reader)
            except StopIteration:
                break
            if not any(c.strip() for c in cells):
                continue
            if header is None:
                header, header_line = [c.strip().lower() for c in cells], start
                problems.extend(_header_problems(header, header_line))
                if problems:
                    return [], problems
                continue
            if len(rows) >= MAX_ROWS:
                problems.append(CsvProblem(line=start, column="", message=f"more than {MAX_ROWS} registers"))
                break
            row = _row(header, cells, start, problems)
            if row is not None:
                rows.append(row)
    except csv.Error as exc:
        problems.append(CsvProblem(line=reader.line_num, column="", message=f"malformed CSV: {exc}"))
    if header is None:
        problems.append(CsvProblem(line=1, column="", message="the CSV is empty; the first line must name the columns"))
    return rows, problems


def _header_problems(header: list[str], line: int) -> list[CsvProblem]:
    problems = []
    seen: set[str] = set()
    for name in header:
        if name not in COLUMNS:
            expected = ",".join(COLUMNS)
            problems.append(
                CsvProblem(line=line, column=name, message=f"unknown column {name!r}; the columns are {expected}")
            )
        elif name in seen:
            problems.append(CsvProblem(line=line, column=name, message=f"column {name!r} appears twice"))
        seen.add(name)
    for name in REQUIRED:
        if name not in seen:
            problems.append(
                CsvProblem(
                    line=line,
                    column=name,
                    message=f"the header has no {name!r} column (the first line must name the columns)",
                )
            )
    return problems


def _row(header: list[str], cells: list[str], line: int, problems: list[CsvProblem]) -> ParsedRow | None:
    if len(cells) > len(header):
        problems.append(
            CsvProblem(line=line, column="", message=f"{len(cells)} fields, but the header names {len(header)}")
        )
        return None
    fields: dict[str, Any] = {}
    bad = False
    for column, cell in zip(header, cells, strict=False):
        cell = cell.strip()
        if not cell:
            continue
        try:
            fields[column] = _convert(column, cell)
        except ValueError as exc:
            problems.append(CsvProblem(line=line, column=column, message=str(exc)))
            bad = True
    for column in REQUIRED:
        if column not in fields and not any(p.line == line and p.column == column for p in problems):
            problems.append(CsvProblem(line=line, column=column, message=f"{column} is empty"))
            bad = True
    if bad:
        return None
    try:
        return ParsedRow(line, msgspec.convert(fields, Register))
    except msgspec.ValidationError as exc:
        match = _AT.match(str(exc))
        assert match is not None
        column, message = match["path"] or "", match["message"]
        if column in _CHOICES and message.startswith("Invalid enum value"):
            message += "; use one of " + ", ".join(_CHOICES[column])
        problems.append(CsvProblem(line=line, column=column, message=message))
        return None
