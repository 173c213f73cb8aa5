"""Who is calling, and the role ladder every route is checked against."""

from __future__ import annotations

from typing import Literal

import msgspec

Role = Literal["admin", "editor", "viewer"]
RANK: dict[str, int] = {"viewer": 0, "editor": 1, "admin": 2}


class Principal(msgspec.Struct, frozen=True, kw_only=True):
    user_id: int
    username: str
    role: Role
    via: Literal["session", "token"]
    session_id: str = ""
    csrf: str = ""

    def can(self, role: Role) -> bool:
        return RANK[self.role] >= RANK[role]
