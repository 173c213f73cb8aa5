"""POST /api/flows/{id}/deploy and /undeploy (editor); GET /api/deployments (viewer)."""

from __future__ import annotations

from typing import Annotated

from litestar import Controller, get, post
from litestar.datastructures import State
from litestar.params import JSONBody, PathParameter, QueryParameter

from backend.auth.guards import editor, viewer
from backend.deploy import service
from backend.deploy.schemas import Deployment, DeployRequest, UndeployRequest
from backend.deps import Address, Caller, Db
from backend.errors import ApiError

FlowIdParam = Annotated[str, PathParameter(pattern=r"^[A-Za-z0-9_-]{1,64}$", max_length=64, description="Flow id")]


class FlowDeployController(Controller):
    path = "/api/flows"
    tags = ["deploy"]
    guards = [editor]

    @post(
        "/{flow_id:str}/deploy",
        summary="Compile a version and send its plans to the edges (400 with diagnostics on errors)",
    )
    async def deploy(
        self,
        db: Db,
        state: State,
        principal: Caller,
        address: Address,
        flow_id: FlowIdParam,
        data: JSONBody[DeployRequest | None] = None,
    ) -> Deployment:
        request = data or DeployRequest()
        deployment = await service.deploy(
            db, state.deploy, principal, flow_id, request.version, request.message, address=address
        )
        if deployment is None:  # only with only_if_changed, which this route does not use
            raise ApiError(409, "conflict", "nothing to deploy")
        return deployment

    @post("/{flow_id:str}/undeploy", summary="Remove the flow from every edge")
    async def undeploy(
        self,
        db: Db,
        state: State,
        principal: Caller,
        address: Address,
        flow_id: FlowIdParam,
        data: JSONBody[UndeployRequest | None] = None,
    ) -> Deployment:
        request = data or UndeployRequest()
        return await service.undeploy(db, state.deploy, principal, flow_id, request.message, address)


class DeploymentController(Controller):
    path = "/api/deployments"
    tags = ["deploy"]
    guards = [viewer]

    @get("/", summary="Deployments, newest first, with the status of each edge")
    async def list_deployments(
        self,
        db: Db,
        flow_id: Annotated[str | None, QueryParameter(max_length=64, description="Only this flow's")] = None,
        limit: Annotated[int, QueryParameter(ge=1, le=500)] = 50,
        before_id: Annotated[int | None, QueryParameter(ge=1, le=2**62, description="Page: older than this id")] = None,
    ) -> list[Deployment]:
        return await service.list_deployments(db, flow_id, limit, before_id)

    @get("/{deployment_id:int}", summary="One deployment with the status of each edge")
    async def get_deployment(self, db: Db, deployment_id: Annotated[int, PathParameter(ge=1, le=2**62)]) -> Deployment:
        return await service.get_deployment(db, deployment_id)
