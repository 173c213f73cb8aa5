"""Users: creation, updates (which end the user's sessions), deletion; API tokens."""

from __future__ import annotations

import asyncpg  # type: ignore[import-untyped, unused-ignore]

from backend.audit.service import record
from backend.auth.principal import Principal
from backend.auth.sessions import SessionStore
from backend.errors import ApiError, conflict, not_found
from backend.security import hash_password, new_api_token
from backend.users.schemas import Token, TokenCreated, User, UserCreate, UserUpdate

_USER_COLUMNS = "id, username, display_name, role, disabled, created_at"


async def count_users(conn: asyncpg.Connection) -> int:
    return int(await conn.fetchval("SELECT count(*) FROM users"))


async def list_users(conn: asyncpg.Connection) -> list[User]:
    return [User(**dict(r)) for r in await conn.fetch(f"SELECT {_USER_COLUMNS} FROM users ORDER BY username")]


async def get_user(conn: asyncpg.Connection, user_id: int) -> User:
    row = await conn.fetchrow(f"SELECT {_USER_COLUMNS} FROM users WHERE id = $1", user_id)
    if row is None:
        raise not_found("user", user_id)
    return User(**dict(row))


async def create_user(conn: asyncpg.Connection, who: Principal | None, data: UserCreate, *, address: str = "") -> User:
    async with conn.transaction():
        if await conn.fetchval("SELECT 1 FROM users WHERE lower(username) = lower($1)", data.username):
            raise conflict(f"user {data.username!r} already exists")
        row = await conn.fetchrow(
            f"""INSERT INTO users (username, display_name, role, password_hash) VALUES ($1, $2, $3, $4)
                RETURNING {_USER_COLUMNS}""",
            data.username,
            data.display_name,
            data.role,
            hash_password(data.password),
        )
        user = User(**dict(row))
        await record(conn, who, "user.create", "user", user.id, after=user, address=address, username=data.username)
    return user


async def update_user(
    conn: asyncpg.Connection, sessions: SessionStore, who: Principal, user_id: int, data: UserUpdate, address: str
) -> User:
    async with conn.transaction():
        before = await get_user(conn, user_id)
        if user_id == who.user_id and (data.role not in (None, "admin") or data.disabled):
            raise ApiError(409, "conflict", "you cannot demote or disable yourself", field="role")
        await _keep_an_admin(conn, before, data.role, data.disabled)
        row = await conn.fetchrow(
            f"""UPDATE users SET display_name = coalesce($2, display_name), role = coalesce($3, role),
                       disabled = coalesce($4, disabled),
                       password_hash = coalesce($5, password_hash), updated_at = now()
                WHERE id = $1 RETURNING {_USER_COLUMNS}""",
            user_id,
            data.display_name,
            data.role,
            data.disabled,
            hash_password(data.password) if data.password else None,
        )
        after = User(**dict(row))
        await record(conn, who, "user.update", "user", user_id, before=before, after=after, address=address)
    if data.role is not None or data.disabled or data.password:
        await sessions.delete_user(user_id)  # sessions carry the role: make them sign in again
    return after


async def delete_user(
    conn: asyncpg.Connection, sessions: SessionStore, who: Principal, user_id: int, address: str
) -> None:
    async with conn.transaction():
        before = await get_user(conn, user_id)
        if user_id == who.user_id:
            raise ApiError(409, "conflict", "you cannot delete yourself")
        await _keep_an_admin(conn, before, "viewer", True)
        await conn.execute("DELETE FROM users WHERE id = $1", user_id)
        await record(conn, who, "user.delete", "user", user_id, before=before, address=address)
    await sessions.delete_user(user_id)


async def _keep_an_admin(conn: asyncpg.Connection, user: User, role: str | None, disabled: bool | None) -> None:
    losing = user.role == "admin" and not user.disabled and ((role not in (None, "admin")) or disabled)
    if losing:
        others = await conn.fetchval(
            "SELECT count(*) FROM users WHERE role = 'admin' AND NOT disabled AND id <> $1", user.id
        )
        if not others:
            raise ApiError(409, "conflict", "this is the last active admin; make someone else admin first")


async def list_tokens(conn: asyncpg.Connection, who: Principal) -> list[Token]:
    rows = await conn.fetch(
        """SELECT id, name, prefix, created_at, last_used_at, revoked_at FROM api_tokens
           WHERE user_id = $1 ORDER BY id""",
        who.user_id,
    )
    return [Token(**dict(r)) for r in rows]


async def create_token(conn: asyncpg.Connection, who: Principal, name: str, address: str) -> TokenCreated:
    secret, digest = new_api_token()
    async with conn.transaction():
        row = await conn.fetchrow(
            """INSERT INTO api_tokens (user_id, name, token_hash, prefix) VALUES ($1, $2, $3, $4)
               RETURNING id, name, prefix, created_at, last_used_at, revoked_at""",
            who.user_id,
            name,
            digest,
            secret[:12],
        )
        token = Token(**dict(row))
        await record(conn, who, "token.create", "token", token.id, after=token, address=address)
    return TokenCreated(token=token, secret=secret)


async def revoke_token(conn: asyncpg.Connection, who: Principal, token_id: int, address: str) -> None:
    async with conn.transaction():
        row = await conn.fetchrow(
            """UPDATE api_tokens SET revoked_at = now() WHERE id = $1 AND user_id = $2 AND revoked_at IS NULL
               RETURNING id, name, prefix, created_at, last_used_at, revoked_at""",
            token_id,
            who.user_id,
        )
        if row is None:
            raise not_found("token", token_id)
        await record(conn, who, "token.revoke", "token", token_id, after=Token(**dict(row)), address=address)
