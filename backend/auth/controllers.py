"""/api/auth: first-run setup, sign-in, sign-out, the current user."""

from __future__ import annotations

import secrets
from typing import Annotated, Any

import msgspec
from litestar import Controller, Request, Response, get, post
from litestar.datastructures import Cookie, State
from litestar.params import JSONBody

from backend.audit.service import record
from backend.auth.guards import viewer
from backend.auth.middleware import SESSION_COOKIE
from backend.auth.principal import Role
from backend.deps import Caller, Db
from backend.errors import ApiError
from backend.security import verify_password
from backend.users import service as users
from backend.users.schemas import DisplayName, Password, User, UserCreate, Username


class SetupStatus(msgspec.Struct, frozen=True):
    needed: bool


class SetupRequest(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    username: Username
    password: Password
    display_name: DisplayName = ""


class LoginRequest(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    username: Username
    password: Annotated[str, msgspec.Meta(max_length=1024)]


class Me(msgspec.Struct, frozen=True):
    id: int
    username: str
    role: Role
    display_name: str
    csrf_token: str


def _cookie(state: State, value: str, max_age: int) -> Cookie:
    return Cookie(
        key=SESSION_COOKIE,
        value=value,
        httponly=True,
        samesite="lax",
        secure=state.settings.secure_cookies,
        path="/",
        max_age=max_age,
    )


async def _start_session(request: Request[Any, Any, Any], state: State, user: User) -> Response[Me]:
    # Rotation: whatever session id the browser had before is dropped; a new one is issued.
    old = request.cookies.get(SESSION_COOKIE)
    if old:
        await state.sessions.delete(old)
    csrf = secrets.token_urlsafe(24)
    ttl = state.settings.session_ttl_s
    session_id = await state.sessions.create(
        {"user_id": user.id, "username": user.username, "role": user.role, "csrf": csrf}, ttl
    )
    me = Me(id=user.id, username=user.username, role=user.role, display_name=user.display_name, csrf_token=csrf)
    return Response(me, cookies=[_cookie(state, session_id, ttl)])


class AuthController(Controller):
    path = "/api/auth"
    tags = ["auth"]

    @get("/setup", summary="Whether the first admin still has to be created", exclude_from_auth=True)
    async def setup_status(self, db: Db) -> SetupStatus:
        return SetupStatus(needed=await users.count_users(db) == 0)

    @post("/setup", summary="Create the first admin (only while there is no user) and sign in", exclude_from_auth=True)
    async def setup(
        self, request: Request[Any, Any, Any], db: Db, state: State, data: JSONBody[SetupRequest]
    ) -> Response[Me]:
        async with db.transaction():
            await db.execute("LOCK TABLE users IN EXCLUSIVE MODE")  # two browsers racing: one wins
            if await users.count_users(db):
                raise ApiError(409, "already_set_up", "an admin already exists; sign in instead")
            user = await users.create_user(
                db,
                None,
                UserCreate(
                    username=data.username, password=data.password, role="admin", display_name=data.display_name
                ),
                address=request.client.host if request.client else "",
            )
        return await _start_session(request, state, user)

    @post("/login", summary="Sign in with a user name and password", exclude_from_auth=True, status_code=200)
    async def login(
        self, request: Request[Any, Any, Any], db: Db, state: State, data: JSONBody[LoginRequest]
    ) -> Response[Me]:
        address = request.client.host if request.client else ""
        throttle_key = f"{data.username.lower()}|{address}"
        settings = state.settings
        attempts = await state.sessions.hit(throttle_key, settings.login_window_s)
        if attempts > settings.login_attempts:
            await record(db, None, "login.throttled", "user", data.username, address=address, username=data.username)
            raise ApiError(
                429,
                "too_many_attempts",
                f"too many failed sign-ins; try again in {settings.login_window_s // 60} minutes",
            )
        row = await db.fetchrow(
            "SELECT id, password_hash, disabled FROM users WHERE lower(username) = lower($1)", data.username
        )
        ok = verify_password(row["password_hash"] if row else None, data.password)
        if not ok or row is None or row["disabled"]:
            await record(db, None, "login.failed", "user", data.username, address=address, username=data.username)
            raise ApiError(401, "wrong_credentials", "wrong user name or password")
        await state.sessions.clear_hits(throttle_key)
        user = await users.get_user(db, row["id"])
        await record(db, None, "login", "user", user.id, address=address, username=user.username)
        return await _start_session(request, state, user)

    @post("/logout", summary="Sign out (ends this session)", guards=[viewer], status_code=200)
    async def logout(self, state: State, principal: Caller) -> Response[None]:
        if principal.session_id:
            await state.sessions.delete(principal.session_id)
        return Response(None, cookies=[_cookie(state, "", 0)])

    @get("/me", summary="The signed-in user and the CSRF token to send with changes", guards=[viewer])
    async def me(self, db: Db, principal: Caller) -> Me:
        user = await users.get_user(db, principal.user_id)
        return Me(
            id=user.id,
            username=user.username,
            role=user.role,
            display_name=user.display_name,
            csrf_token=principal.csrf,
        )
