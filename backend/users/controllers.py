"""/api/users (admin) and /api/tokens (own tokens)."""

from __future__ import annotations

from typing import Annotated

from litestar import Controller, delete, get, patch, post
from litestar.datastructures import State
from litestar.params import JSONBody, PathParameter

from backend.auth.guards import admin, viewer
from backend.deps import Address, Caller, Db
from backend.users import service
from backend.users.schemas import Token, TokenCreate, TokenCreated, User, UserCreate, UserUpdate

Id = Annotated[int, PathParameter(ge=1, le=2**62)]


class UserController(Controller):
    path = "/api/users"
    tags = ["users"]
    guards = [admin]

    @get("/", summary="List users")
    async def list_users(self, db: Db) -> list[User]:
        return await service.list_users(db)

    @post("/", summary="Create a user")
    async def create_user(self, db: Db, principal: Caller, address: Address, data: JSONBody[UserCreate]) -> User:
        return await service.create_user(db, principal, data, address=address)

    @get("/{user_id:int}", summary="Get a user")
    async def get_user(self, db: Db, user_id: Id) -> User:
        return await service.get_user(db, user_id)

    @patch("/{user_id:int}", summary="Change a user's name, role, password or disable them")
    async def update_user(
        self, db: Db, state: State, principal: Caller, address: Address, user_id: Id, data: JSONBody[UserUpdate]
    ) -> User:
        return await service.update_user(db, state.sessions, principal, user_id, data, address)

    @delete("/{user_id:int}", summary="Delete a user")
    async def delete_user(self, db: Db, state: State, principal: Caller, address: Address, user_id: Id) -> None:
        await service.delete_user(db, state.sessions, principal, user_id, address)


class TokenController(Controller):
    path = "/api/tokens"
    tags = ["tokens"]
    guards = [viewer]

    @get("/", summary="List your API tokens")
    async def list_tokens(self, db: Db, principal: Caller) -> list[Token]:
        return await service.list_tokens(db, principal)

    @post("/", summary="Create an API token (acts with your role)")
    async def create_token(
        self, db: Db, principal: Caller, address: Address, data: JSONBody[TokenCreate]
    ) -> TokenCreated:
        return await service.create_token(db, principal, data.name, address)

    @delete("/{token_id:int}", summary="Revoke one of your API tokens")
    async def revoke_token(self, db: Db, principal: Caller, address: Address, token_id: Id) -> None:
        await service.revoke_token(db, principal, token_id, address)
