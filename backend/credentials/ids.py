"""Readable text ids for credentials and devices: given, or derived from the name."""

from __future__ import annotations

import re
import secrets
from typing import Annotated

import asyncpg  # type: ignore[import-untyped, unused-ignore]
import msgspec

ID_PATTERN = r"^[A-Za-z0-9_-]{1,64}$"

TextId = Annotated[
    str,
    msgspec.Meta(
        pattern=ID_PATTERN,
        description="Letters, digits, '_' and '-'; 1-64 characters. Flows refer to it, so it never changes.",
        examples=["press-3"],
    ),
]


def slug(name: str) -> str:
    """``"Press #3 (hall B)"`` → ``"press-3-hall-b"``; empty when nothing usable is left."""
    text = re.sub(r"[^A-Za-z0-9_]+", "-", name.strip().lower()).strip("-")
    return text[:56].rstrip("-")


async def free_id(conn: asyncpg.Connection, table: str, name: str) -> str:
    """An unused id for ``table`` derived from ``name`` (``press-3``, ``press-3-2``, ...)."""
    assert table in ("credentials", "devices")
    base = slug(name) or f"{table[:-1]}-{secrets.token_hex(3)}"
    candidate, n = base, 1
    while await conn.fetchval(f"SELECT 1 FROM {table} WHERE id = $1", candidate):
        n += 1
        candidate = f"{base}-{n}"
    return candidate
