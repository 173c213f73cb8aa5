"""Role guards: viewer reads; editor edits and deploys; admin also manages users, edges, credentials."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from litestar.connection import ASGIConnection
from litestar.exceptions import NotAuthorizedException, PermissionDeniedException
from litestar.handlers.base import BaseRouteHandler

from backend.auth.principal import Principal, Role

Guard = Callable[[ASGIConnection[Any, Any, Any, Any], BaseRouteHandler], None]


def principal_of(connection: ASGIConnection[Any, Any, Any, Any]) -> Principal:
    user = connection.scope.get("user")
    if not isinstance(user, Principal):
        raise NotAuthorizedException("sign in first")
    return user


def requires(role: Role) -> Guard:
    def guard(connection: ASGIConnection[Any, Any, Any, Any], _: BaseRouteHandler) -> None:
        principal = principal_of(connection)
        if not principal.can(role):
            raise PermissionDeniedException(f"this needs the {role} role; you are {principal.role}")

    guard.__name__ = f"requires_{role}"
    return guard


viewer = requires("viewer")
editor = requires("editor")
admin = requires("admin")
