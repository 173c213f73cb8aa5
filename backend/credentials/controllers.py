"""/api/credentials (admin): stored credentials. Secrets go in, never out."""

from __future__ import annotations

from typing import Annotated

from litestar import Controller, delete, get, patch, post
from litestar.datastructures import State
from litestar.params import JSONBody, PathParameter

from backend.auth.guards import admin
from backend.credentials import service
from backend.credentials.ids import ID_PATTERN
from backend.credentials.schemas import CredentialCreate, CredentialInfo, CredentialUpdate
from backend.deps import Address, Caller, Db

CredentialId = Annotated[str, PathParameter(pattern=ID_PATTERN, min_length=1, max_length=64)]


class CredentialController(Controller):
    path = "/api/credentials"
    tags = ["credentials"]
    guards = [admin]

    @get("/", summary="List stored credentials (without secrets) and what uses them")
    async def list_credentials(self, db: Db, state: State) -> list[CredentialInfo]:
        refs = await service.node_refs(db, getattr(state, "credential_node_refs", None))
        return await service.list_credentials(db, refs)

    @post("/", summary="Store a credential; its secret is encrypted and never shown again")
    async def create_credential(
        self, db: Db, state: State, principal: Caller, address: Address, data: JSONBody[CredentialCreate]
    ) -> CredentialInfo:
        return await service.create_credential(db, state.box, principal, data, address)

    @get("/{credential_id:str}", summary="Get a credential (without its secret) and what uses it")
    async def get_credential(self, db: Db, state: State, credential_id: CredentialId) -> CredentialInfo:
        refs = await service.node_refs(db, getattr(state, "credential_node_refs", None))
        return await service.get_credential(db, credential_id, refs)

    @patch("/{credential_id:str}", summary="Rename a credential, change its user name or replace its secret")
    async def update_credential(
        self,
        db: Db,
        state: State,
        principal: Caller,
        address: Address,
        credential_id: CredentialId,
        data: JSONBody[CredentialUpdate],
    ) -> CredentialInfo:
        return await service.update_credential(db, state.box, principal, credential_id, data, address)

    @delete("/{credential_id:str}", summary="Delete a credential (409 while a device or node uses it)")
    async def delete_credential(
        self, db: Db, state: State, principal: Caller, address: Address, credential_id: CredentialId
    ) -> None:
        refs = await service.node_refs(db, getattr(state, "credential_node_refs", None))
        await service.delete_credential(db, principal, credential_id, address, refs)
