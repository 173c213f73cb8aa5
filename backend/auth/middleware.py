"""Authentication: a session cookie (with a CSRF token for unsafe methods) or an API token."""

from __future__ import annotations

from typing import Any

from litestar.connection import ASGIConnection
from litestar.enums import ScopeType
from litestar.exceptions import NotAuthorizedException, PermissionDeniedException
from litestar.middleware import AbstractAuthenticationMiddleware, AuthenticationResult

from backend.auth.principal import Principal
from backend.security import TOKEN_PREFIX, token_hash

SESSION_COOKIE = "proxus_session"
CSRF_HEADER = "x-csrf-token"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


class AuthMiddleware(AbstractAuthenticationMiddleware):
    async def authenticate_request(self, connection: ASGIConnection[Any, Any, Any, Any]) -> AuthenticationResult:
        state = connection.app.state
        header = connection.headers.get("authorization", "")
        if header.lower().startswith("bearer "):
            token = header[7:].strip()
            if not token.startswith(TOKEN_PREFIX):
                raise NotAuthorizedException("invalid API token")
            async with state.pool.acquire() as conn:
                row = await conn.fetchrow(
                    """UPDATE api_tokens t SET last_used_at = now()
                       FROM users u
                       WHERE t.token_hash = $1 AND t.revoked_at IS NULL AND u.id = t.user_id AND NOT u.disabled
                       RETURNING u.id, u.username, u.role""",
                    token_hash(token),
                )
            if row is None:
                raise NotAuthorizedException("invalid or revoked API token")
            principal = Principal(user_id=row["id"], username=row["username"], role=row["role"], via="token")
            return AuthenticationResult(user=principal, auth=None)

        session_id = connection.cookies.get(SESSION_COOKIE)
        if not session_id:
            raise NotAuthorizedException("sign in first")
        data = await state.sessions.get(session_id)
        if data is None:
            raise NotAuthorizedException("your session has ended; sign in again")
        # CSRF: a cookie is sent by the browser on any site's request; the token only by our app.
        unsafe = (
            connection.scope.get("method", "GET") not in SAFE_METHODS and connection.scope["type"] == ScopeType.HTTP
        )
        if unsafe and connection.headers.get(CSRF_HEADER, "") != data["csrf"]:
            raise PermissionDeniedException("missing or wrong CSRF token (send the X-CSRF-Token header)")
        principal = Principal(
            user_id=data["user_id"],
            username=data["username"],
            role=data["role"],
            via="session",
            session_id=session_id,
            csrf=data["csrf"],
        )
        return AuthenticationResult(user=principal, auth=None)
