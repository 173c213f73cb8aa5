"""Users and tokens as the API shows and accepts them."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

import msgspec

from backend.auth.principal import Role

Username = Annotated[
    str,
    msgspec.Meta(
        pattern=r"^[A-Za-z0-9_.@-]{1,64}$", description="Letters, digits, '_', '.', '@', '-'; 1-64 characters"
    ),
]
Password = Annotated[str, msgspec.Meta(min_length=8, max_length=256, description="At least 8 characters")]
DisplayName = Annotated[str, msgspec.Meta(max_length=200)]


class User(msgspec.Struct, frozen=True):
    id: int
    username: str
    display_name: str
    role: Role
    disabled: bool
    created_at: datetime


class UserCreate(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    username: Username
    password: Password
    role: Role = "viewer"
    display_name: DisplayName = ""


class UserUpdate(msgspec.Struct, frozen=True, forbid_unknown_fields=True, omit_defaults=True):
    display_name: DisplayName | None = None
    role: Role | None = None
    disabled: bool | None = None
    password: Password | None = None


class TokenCreate(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    name: Annotated[str, msgspec.Meta(min_length=1, max_length=100, description="What the token is for")]


class Token(msgspec.Struct, frozen=True):
    id: int
    name: str
    prefix: str
    created_at: datetime
    last_used_at: datetime | None
    revoked_at: datetime | None


class TokenCreated(msgspec.Struct, frozen=True):
    token: Token
    secret: Annotated[str, msgspec.Meta(description="The token itself: shown this once, store it now")]
