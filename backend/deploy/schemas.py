"""Deployments as the API accepts and returns them."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

import msgspec

from backend.deploy.events import DeploymentState, EdgeState

Message = Annotated[str, msgspec.Meta(max_length=2000, description="Why (shown in the deployment history)")]


class DeployRequest(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    version: (
        Annotated[
            int, msgspec.Meta(ge=1, le=2**31 - 1, description="The saved version to deploy (default: the latest)")
        ]
        | None
    ) = None
    message: Message = ""


class UndeployRequest(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    message: Message = ""


class DeploymentEdge(msgspec.Struct, frozen=True, kw_only=True):
    """What the deployment asked of one edge and what the edge said."""

    edge: str
    action: Annotated[Literal["apply", "remove"], msgspec.Meta(description="Run the plan, or take the flow off")]
    hash: Annotated[str, msgspec.Meta(description="Plan hash to run (apply)")]
    steps: int
    state: EdgeState
    error: Annotated[str, msgspec.Meta(description="The edge's error when failed")]
    updated_at: datetime


class Deployment(msgspec.Struct, frozen=True, kw_only=True):
    id: int
    flow_id: str
    version: Annotated[int | None, msgspec.Meta(description="Deployed version; null for an undeploy")]
    action: Literal["deploy", "undeploy", "redeploy"]
    by: str
    message: str
    at: datetime
    state: Annotated[DeploymentState, msgspec.Meta(description="pending until every edge has answered")]
    edges: list[DeploymentEdge]
