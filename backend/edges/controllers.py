"""/api/edges: registered edge gateways with live status (viewer); register/remove (admin)."""

from __future__ import annotations

import logging
from typing import Annotated, Any

from litestar import Controller, Request, delete, get, patch, post
from litestar.datastructures import State
from litestar.params import JSONBody, PathParameter, QueryParameter

from backend.auth.guards import admin, viewer
from backend.deps import Address, Caller, Db
from backend.devices.hooks import device_changed
from backend.edges import service
from backend.edges.natsauth import HubNatsAuth
from backend.edges.schemas import (
    EDGE_ID_PATTERN,
    Edge,
    EdgeCreate,
    EdgeCredentials,
    EdgeRemoved,
    EdgeUpdate,
    NatsUserState,
)

log = logging.getLogger("proxus.hub.edges")

EdgeId = Annotated[str, PathParameter(pattern=EDGE_ID_PATTERN, min_length=1, max_length=64)]


async def apply_nats(state: State, db: Db, edge_id: str, removed: bool = False, revoke: bool = False) -> NatsUserState:
    """Bring the hub NATS users in line with the edges table (reload the embedded server); with
    ``revoke`` the edge's current leaf connection is ended (removal, new password)."""
    auth: HubNatsAuth = state.hub_nats_auth
    try:
        applied = await auth.apply(
            db, getattr(state, "hub_nats_server", None), revoked=[edge_id] if revoke or removed else []
        )
    except Exception as exc:
        log.exception("applying NATS users after a change of edge %s", edge_id)
        return NatsUserState(applied=False, message=f"the hub NATS server did not take the new users: {exc}")
    if applied:
        what = "refuses" if removed else "accepts"
        return NatsUserState(applied=True, message=f"the hub NATS server {what} edge {edge_id!r} now")
    if removed:
        return NatsUserState(
            applied=False,
            message=f"the Hub does not manage its NATS server: remove user {edge_id!r} from account APP "
            f"(or include {auth.conf_path}) and reload it",
        )
    password_hash = await db.fetchval("SELECT nats_password_hash FROM edges WHERE id = $1", edge_id)
    return NatsUserState(
        applied=False,
        message=f"the Hub does not manage its NATS server: add this user to account APP (or include "
        f"{auth.conf_path}) and reload it",
        user_config=auth.edge_user_config(edge_id, str(password_hash)),
    )


def _credentials(
    state: State, request: Request[Any, Any, Any], edge: Edge, password: str, nats: NatsUserState
) -> EdgeCredentials:
    host, port = service.leaf_address(state, request.url.hostname or "localhost")
    join = service.join_instructions(edge.id, password, host, port, state.settings.hub_domain)
    return EdgeCredentials(edge=edge, password=password, nats=nats, **join)


class EdgeController(Controller):
    path = "/api/edges"
    tags = ["edges"]
    guards = [viewer]

    @get("/", summary="List edges with their live status")
    async def list_edges(self, db: Db, state: State) -> list[Edge]:
        return await service.list_edges(db, state.edge_status, state.nats, state.settings.offline_after_s)

    @get("/{edge_id:str}", summary="Get an edge with its live status")
    async def get_edge(self, db: Db, state: State, edge_id: EdgeId) -> Edge:
        return await service.get_edge(db, edge_id, state.edge_status, state.nats, state.settings.offline_after_s)

    @post(
        "/",
        guards=[admin],
        summary="Register an edge: creates its NATS leaf credentials (the password is shown only now)",
    )
    async def register_edge(
        self,
        db: Db,
        state: State,
        request: Request[Any, Any, Any],
        principal: Caller,
        address: Address,
        data: JSONBody[EdgeCreate],
    ) -> EdgeCredentials:
        edge, password = await service.register_edge(db, principal, data, address)
        nats = await apply_nats(state, db, edge.id)
        _historian_sync(state)
        return _credentials(state, request, edge, password, nats)

    @post(
        "/{edge_id:str}/credentials",
        guards=[admin],
        summary="Replace an edge's NATS password (the old one stops working; the new one is shown only now)",
    )
    async def rotate_credentials(
        self,
        db: Db,
        state: State,
        request: Request[Any, Any, Any],
        principal: Caller,
        address: Address,
        edge_id: EdgeId,
    ) -> EdgeCredentials:
        edge, password = await service.rotate_password(db, principal, edge_id, address)
        nats = await apply_nats(state, db, edge.id, revoke=True)
        return _credentials(state, request, edge, password, nats)

    @patch("/{edge_id:str}", guards=[admin], summary="Rename an edge or change its description")
    async def update_edge(
        self, db: Db, state: State, principal: Caller, address: Address, edge_id: EdgeId, data: JSONBody[EdgeUpdate]
    ) -> Edge:
        await service.update_edge(db, principal, edge_id, data, address)
        return await service.get_edge(db, edge_id, state.edge_status, state.nats, state.settings.offline_after_s)

    @delete(
        "/{edge_id:str}",
        guards=[admin],
        status_code=200,
        summary="Remove an edge and revoke its NATS credentials (409 while devices are assigned, unless force)",
    )
    async def remove_edge(
        self,
        db: Db,
        state: State,
        principal: Caller,
        address: Address,
        edge_id: EdgeId,
        force: Annotated[
            bool, QueryParameter(description="Remove even with devices assigned; they become unassigned")
        ] = False,
    ) -> EdgeRemoved:
        unassigned = await service.remove_edge(db, principal, edge_id, force, address)
        nats = await apply_nats(state, db, edge_id, removed=True)
        state.edge_status.forget(edge_id)
        _historian_sync(state)
        for device_id in unassigned:
            await device_changed(state, device_id)
        return EdgeRemoved(id=edge_id, unassigned_devices=unassigned, nats=nats)


def _historian_sync(state: State) -> None:
    """Have the historian writer source (or stop sourcing) the edge's outbox now, not on its next poll."""
    historian = getattr(state, "historian", None)
    if historian is not None:
        historian.request_sync()
