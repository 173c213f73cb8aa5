"""Stored credentials as the API accepts and shows them. A secret is accepted, never shown."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

import msgspec

from backend.credentials.ids import TextId

Kind = Literal["username_password", "token", "header"]
Name = Annotated[str, msgspec.Meta(min_length=1, max_length=100, description="Display name; unique")]
Username = Annotated[
    str,
    msgspec.Meta(
        max_length=256,
        description="User name (username_password), header name (header, e.g. Authorization) or empty (token)",
    ),
]
Secret = Annotated[
    str,
    msgspec.Meta(
        min_length=1,
        max_length=8192,
        description="Password, token or header value; stored encrypted and never shown again",
    ),
]


class CredentialCreate(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    name: Name
    kind: Kind
    secret: Secret
    username: Username = ""
    id: Annotated[TextId | None, msgspec.Meta(description="Id nodes refer to; derived from the name when unset")] = None


class CredentialUpdate(msgspec.Struct, frozen=True, forbid_unknown_fields=True, omit_defaults=True, kw_only=True):
    name: Name | None = None
    username: Username | None = None
    secret: Annotated[Secret | None, msgspec.Meta(description="A new secret replacing the stored one")] = None


class NodeRef(msgspec.Struct, frozen=True, kw_only=True):
    """A flow node that refers to the credential directly (e.g. an HTTP sink)."""

    flow_id: str
    node_id: str
    flow_name: str = ""


class CredentialUsage(msgspec.Struct, frozen=True, kw_only=True):
    devices: list[str] = msgspec.field(default_factory=list)
    nodes: list[NodeRef] = msgspec.field(default_factory=list)


class CredentialInfo(msgspec.Struct, frozen=True, kw_only=True):
    """A credential without its secret."""

    id: str
    name: str
    kind: Kind
    username: str
    created_at: datetime
    updated_at: datetime
    used_by: CredentialUsage = msgspec.field(default_factory=CredentialUsage)
