"""Deploy: compile a saved version, change each affected edge's plan bundle, record and track the outcome.

A deployment is recorded with one row per edge: ``apply`` (the plan hash the edge should run) or
``remove`` (the flow left that edge). Each starts ``pending`` and becomes ``applied``/``removed``
or ``failed`` when the edge reports (see :mod:`backend.deploy.tracker`). ``flow_placements`` mirrors
what the Hub has put into each edge's bundle for each flow; a deploy removes the flow from edges it
no longer compiles to. Deploys of one flow are serialised by a row lock on the flow held across the
KV writes, so the database and the bundles agree on which deployment came last.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

import asyncpg  # type: ignore[import-untyped, unused-ignore]

from backend.audit.service import record
from backend.auth.principal import Principal
from backend.deploy.bundles import change_plan, edges_running
from backend.deploy.events import DeployEvent, DeployEvents, DeploymentState
from backend.deploy.schemas import Deployment, DeploymentEdge
from backend.errors import ApiError, conflict, not_found
from backend.flows.service import hub_registry, invalid_flow, load_document
from backend.hubnats import HubNats
from proxus.catalog import Catalog
from proxus.compiler import compile_flow
from proxus.plan import Plan

if TYPE_CHECKING:
    from backend.deploy.tracker import OpenEntry, StatusTracker

log = logging.getLogger("proxus.hub.deploy")


@dataclass(frozen=True)
class DeployContext:
    """What deploys need besides a connection (``app.state.deploy``)."""

    catalog: Catalog
    nats: HubNats
    events: DeployEvents
    tracker: StatusTracker


def overall_state(action: str, states: list[str]) -> DeploymentState:
    live = [s for s in states if s != "superseded"]
    if not states:
        return "removed" if action == "undeploy" else "applied"
    if not live:
        return "superseded"
    if "pending" in live:
        return "pending"
    if "failed" in live:
        return "failed"
    if all(s == "removed" for s in live):
        return "removed"
    return "applied"


# -- reads -----------------------------------------------------------------------------------------

_DEPLOYMENT = "id, flow_id, version, action, by_user, message, at"
_EDGE = "deployment_id, edge, action, hash, steps, state, error, updated_at"


def _deployment(row: Any, edges: list[Any]) -> Deployment:
    edge_list = [
        DeploymentEdge(
            edge=e["edge"],
            action=e["action"],
            hash=e["hash"],
            steps=e["steps"],
            state=e["state"],
            error=e["error"],
            updated_at=e["updated_at"],
        )
        for e in edges
    ]
    return Deployment(
        id=row["id"],
        flow_id=row["flow_id"],
        version=row["version"],
        action=row["action"],
        by=row["by_user"],
        message=row["message"],
        at=row["at"],
        state=overall_state(row["action"], [e.state for e in edge_list]),
        edges=edge_list,
    )


async def get_deployment(conn: asyncpg.Connection, deployment_id: int) -> Deployment:
    row = await conn.fetchrow(f"SELECT {_DEPLOYMENT} FROM deployments WHERE id = $1", deployment_id)
    if row is None:
        raise not_found("deployment", deployment_id)
    edges = await conn.fetch(
        f"SELECT {_EDGE} FROM deployment_edges WHERE deployment_id = $1 ORDER BY edge", deployment_id
    )
    return _deployment(row, edges)


async def list_deployments(
    conn: asyncpg.Connection, flow_id: str | None, limit: int, before_id: int | None
) -> list[Deployment]:
    rows = await conn.fetch(
        f"""SELECT {_DEPLOYMENT} FROM deployments
            WHERE ($1::text IS NULL OR flow_id = $1) AND ($2::bigint IS NULL OR id < $2)
            ORDER BY id DESC LIMIT $3""",
        flow_id,
        before_id,
        limit,
    )
    ids = [r["id"] for r in rows]
    by_deployment: dict[int, list[Any]] = {i: [] for i in ids}
    for e in await conn.fetch(
        f"SELECT {_EDGE} FROM deployment_edges WHERE deployment_id = ANY($1::bigint[]) ORDER BY edge", ids
    ):
        by_deployment[e["deployment_id"]].append(e)
    return [_deployment(r, by_deployment[r["id"]]) for r in rows]


async def open_entries(conn: asyncpg.Connection) -> list[Any]:
    """Per (edge, flow): the pending entry, or the latest entry when it failed (it may still apply later)."""
    return list(
        await conn.fetch(
            """SELECT de.deployment_id, de.edge, de.flow_id, de.action, de.hash, de.state
               FROM deployment_edges de
               WHERE de.state IN ('pending', 'failed')
                 AND (de.state = 'pending' OR NOT EXISTS (
                      SELECT 1 FROM deployment_edges later
                      WHERE later.edge = de.edge AND later.flow_id = de.flow_id
                        AND later.deployment_id > de.deployment_id))"""
        )
    )


async def set_edge_state(
    conn: asyncpg.Connection, deployment_id: int, edge: str, state: str, error: str, from_states: tuple[str, ...]
) -> DeployEvent | None:
    """Move one edge of a deployment to ``state`` if it is in one of ``from_states``; the event, if it moved."""
    async with conn.transaction():
        row = await conn.fetchrow(
            """UPDATE deployment_edges SET state = $3, error = $4, updated_at = now()
               WHERE deployment_id = $1 AND edge = $2 AND state = ANY($5::text[])
               RETURNING flow_id, action, hash, updated_at""",
            deployment_id,
            edge,
            state,
            error,
            list(from_states),
        )
        if row is None:
            return None
        dep = await conn.fetchrow("SELECT version, action FROM deployments WHERE id = $1", deployment_id)
        states = [
            r["state"]
            for r in await conn.fetch("SELECT state FROM deployment_edges WHERE deployment_id = $1", deployment_id)
        ]
    return DeployEvent(
        deployment_id=deployment_id,
        flow_id=row["flow_id"],
        version=dep["version"],
        action=dep["action"],
        edge=edge,
        edge_action=row["action"],
        state=state,  # type: ignore[arg-type]
        hash=row["hash"],
        error=error,
        deployment_state=overall_state(dep["action"], states),
        at=row["updated_at"],
    )


async def flows_using_device(conn: asyncpg.Connection, device_id: str) -> list[tuple[str, int]]:
    """Deployed flows whose deployed version has a node with ``config.device == device_id``."""
    rows = await conn.fetch(
        """SELECT f.id, f.deployed_version FROM flows f
           JOIN flow_versions v ON v.flow_id = f.id AND v.version = f.deployed_version
           WHERE f.deployed_version IS NOT NULL
             AND jsonb_path_exists(v.document, '$.nodes[*] ? (@.config.device == $d)',
                                   jsonb_build_object('d', $1::text))
           ORDER BY f.id""",
        device_id,
    )
    return [(r["id"], r["deployed_version"]) for r in rows]


# -- deploy / undeploy -----------------------------------------------------------------------------


def _describe(exc: BaseException) -> str:
    return f"the Hub could not write the edge's desired state: {type(exc).__name__}: {exc}".rstrip(": ")


def _kv(ctx: DeployContext) -> Any:
    try:
        return ctx.nats.plans
    except RuntimeError as exc:
        raise ApiError(503, "unavailable", "the Hub is not connected to NATS; try again shortly") from exc


@dataclass
class _EdgeChange:
    edge: str
    plan: Plan | None  # None: remove the flow from the edge
    error: str = ""
    absent: bool = False  # removal of a flow the bundle did not hold

    @property
    def action(self) -> str:
        return "apply" if self.plan is not None else "remove"

    @property
    def state(self) -> str:
        if self.error:
            return "failed"
        return "removed" if self.absent else "pending"


async def _write(ctx: DeployContext, flow_id: str, changes: list[_EdgeChange]) -> None:
    kv = _kv(ctx)
    outcomes = await asyncio.gather(
        *(change_plan(kv, c.edge, flow_id, c.plan) for c in changes), return_exceptions=True
    )
    for change, outcome in zip(changes, outcomes, strict=True):
        if isinstance(outcome, BaseException):
            log.error("plan bundle of edge %s (flow %s): %s", change.edge, flow_id, outcome)
            change.error = _describe(outcome)
        elif outcome is None and change.plan is None:
            change.absent = True
    if changes and all(c.error for c in changes):
        raise ApiError(503, "unavailable", changes[0].error)


async def _record(
    conn: asyncpg.Connection,
    who: Principal | None,
    flow_id: str,
    version: int | None,
    action: str,
    message: str,
    changes: list[_EdgeChange],
) -> tuple[int, datetime]:
    by, by_id = (who.username, who.user_id) if who is not None else ("system", None)
    dep = await conn.fetchrow(
        """INSERT INTO deployments (flow_id, version, action, by_user, by_id, message) VALUES ($1, $2, $3, $4, $5, $6)
           RETURNING id, at""",
        flow_id,
        version,
        action,
        by,
        by_id,
        message,
    )
    await conn.executemany(
        """INSERT INTO deployment_edges (deployment_id, edge, flow_id, action, hash, steps, state, error)
           VALUES ($1, $2, $3, $4, $5, $6, $7, $8)""",
        [
            (
                dep["id"],
                c.edge,
                flow_id,
                c.action,
                c.plan.hash if c.plan else "",
                len(c.plan.steps) if c.plan else 0,
                c.state,
                c.error,
            )
            for c in changes
        ],
    )
    return int(dep["id"]), dep["at"]


async def _supersede(conn: asyncpg.Connection, flow_id: str, edges: list[str]) -> list[Any]:
    """Pending entries of older deployments on ``edges`` give way to the new one; returns them."""
    return list(
        await conn.fetch(
            """UPDATE deployment_edges SET state = 'superseded', updated_at = now()
               WHERE flow_id = $1 AND state = 'pending' AND edge = ANY($2::text[])
               RETURNING deployment_id, edge, action, hash, updated_at""",
            flow_id,
            edges,
        )
    )


async def _publish_superseded(conn: asyncpg.Connection, ctx: DeployContext, flow_id: str, rows: list[Any]) -> None:
    if not rows:
        return
    ids = sorted({r["deployment_id"] for r in rows})
    deployments = {
        r["id"]: r
        for r in await conn.fetch("SELECT id, version, action FROM deployments WHERE id = ANY($1::bigint[])", ids)
    }
    states: dict[int, list[str]] = {i: [] for i in ids}
    for r in await conn.fetch(
        "SELECT deployment_id, state FROM deployment_edges WHERE deployment_id = ANY($1::bigint[])", ids
    ):
        states[r["deployment_id"]].append(r["state"])
    for r in rows:
        dep = deployments[r["deployment_id"]]
        ctx.events.publish(
            DeployEvent(
                deployment_id=r["deployment_id"],
                flow_id=flow_id,
                version=dep["version"],
                action=dep["action"],
                edge=r["edge"],
                edge_action=r["action"],
                state="superseded",
                hash=r["hash"],
                error="",
                deployment_state=overall_state(dep["action"], states[r["deployment_id"]]),
                at=r["updated_at"],
            )
        )


def _after_commit(
    ctx: DeployContext,
    deployment_id: int,
    flow_id: str,
    version: int | None,
    action: str,
    at: datetime,
    changes: list[_EdgeChange],
    since: float,
) -> list[OpenEntry]:
    """Publish the initial per-edge events and hand the open entries to the tracker."""
    from backend.deploy.tracker import OpenEntry

    states = [c.state for c in changes]
    summary = overall_state(action, states)
    entries = []
    for c in changes:
        ctx.events.publish(
            DeployEvent(
                deployment_id=deployment_id,
                flow_id=flow_id,
                version=version,
                action=action,
                edge=c.edge,
                edge_action="apply" if c.plan is not None else "remove",
                state=c.state,  # type: ignore[arg-type]
                hash=c.plan.hash if c.plan else "",
                error=c.error,
                deployment_state=summary,
                at=at,
            )
        )
        if c.state == "pending" or (c.state == "failed" and c.plan is not None):
            entries.append(
                OpenEntry(
                    deployment_id=deployment_id,
                    edge=c.edge,
                    flow_id=flow_id,
                    action=c.action,
                    hash=c.plan.hash if c.plan else "",
                    state=c.state,
                    since=since,
                )
            )
    return entries


async def deploy(
    conn: asyncpg.Connection,
    ctx: DeployContext,
    who: Principal | None,
    flow_id: str,
    version: int | None,
    message: str,
    *,
    action: str = "deploy",
    address: str = "",
    only_if_changed: bool = False,
) -> Deployment | None:
    """Deploy a saved version (default: the latest). None when ``only_if_changed`` and nothing changed."""
    registry = await hub_registry(conn)
    async with conn.transaction():
        flow = await conn.fetchrow("SELECT deployed_version FROM flows WHERE id = $1 FOR UPDATE", flow_id)
        if flow is None:
            raise not_found("flow", flow_id)
        number, doc = await load_document(conn, flow_id, version)
        result = compile_flow(doc, ctx.catalog, registry)
        if not result.ok:
            raise invalid_flow(result.diagnostics, f"version {number} of flow {flow_id!r}")
        placed = {
            r["edge"]: r["hash"]
            for r in await conn.fetch("SELECT edge, hash FROM flow_placements WHERE flow_id = $1", flow_id)
        }
        plans = result.plans
        removals = sorted(set(placed) - set(plans))
        if only_if_changed and not removals and all(placed.get(e) == p.hash for e, p in plans.items()):
            return None
        changes = [_EdgeChange(e, plans[e]) for e in sorted(plans)] + [_EdgeChange(e, None) for e in removals]
        superseded = await _supersede(conn, flow_id, [c.edge for c in changes])
        since = time.monotonic()
        await _write(ctx, flow_id, changes)
        deployment_id, at = await _record(conn, who, flow_id, number, action, message, changes)
        for c in changes:
            if c.error:
                continue  # the bundle is as it was: so is the placement
            if c.plan is not None:
                await conn.execute(
                    """INSERT INTO flow_placements (flow_id, edge, version, hash, steps) VALUES ($1, $2, $3, $4, $5)
                       ON CONFLICT (flow_id, edge) DO UPDATE
                       SET version = EXCLUDED.version, hash = EXCLUDED.hash, steps = EXCLUDED.steps""",
                    flow_id,
                    c.edge,
                    number,
                    c.plan.hash,
                    len(c.plan.steps),
                )
            else:
                await conn.execute("DELETE FROM flow_placements WHERE flow_id = $1 AND edge = $2", flow_id, c.edge)
        await conn.execute(
            "UPDATE flows SET deployed_version = $2, deployed_at = $3 WHERE id = $1", flow_id, number, at
        )
        await record(
            conn,
            who,
            f"flow.{action}",
            "flow",
            flow_id,
            before={"deployed_version": flow["deployed_version"], "plans": placed},
            after={
                "deployment_id": deployment_id,
                "version": number,
                "plans": {c.edge: c.plan.hash for c in changes if c.plan is not None},
                "removed_from": removals,
                "errors": {c.edge: c.error for c in changes if c.error},
                "message": message,
            },
            address=address,
            username="system" if who is None else who.username,
        )
    await _publish_superseded(conn, ctx, flow_id, superseded)
    entries = _after_commit(ctx, deployment_id, flow_id, number, action, at, changes, since)
    await ctx.tracker.track(entries)
    return await get_deployment(conn, deployment_id)


async def undeploy(
    conn: asyncpg.Connection, ctx: DeployContext, who: Principal, flow_id: str, message: str, address: str = ""
) -> Deployment:
    """Remove the flow from every edge's bundle (those the Hub placed it on, and any other holding it)."""
    async with conn.transaction():
        flow = await conn.fetchrow("SELECT deployed_version FROM flows WHERE id = $1 FOR UPDATE", flow_id)
        if flow is None:
            raise not_found("flow", flow_id)
        placed = {
            r["edge"]: r["hash"]
            for r in await conn.fetch("SELECT edge, hash FROM flow_placements WHERE flow_id = $1", flow_id)
        }
        holding = await edges_running(_kv(ctx), flow_id)
        edges = sorted(set(placed) | holding)
        if not edges and flow["deployed_version"] is None:
            raise conflict(f"flow {flow_id!r} is not deployed")
        changes = [_EdgeChange(e, None) for e in edges]
        superseded = await _supersede(conn, flow_id, edges)
        since = time.monotonic()
        await _write(ctx, flow_id, changes)
        deployment_id, at = await _record(conn, who, flow_id, None, "undeploy", message, changes)
        done = [c.edge for c in changes if not c.error]
        await conn.execute("DELETE FROM flow_placements WHERE flow_id = $1 AND edge = ANY($2::text[])", flow_id, done)
        await conn.execute("UPDATE flows SET deployed_version = NULL, deployed_at = NULL WHERE id = $1", flow_id)
        await record(
            conn,
            who,
            "flow.undeploy",
            "flow",
            flow_id,
            before={"deployed_version": flow["deployed_version"], "plans": placed},
            after={
                "deployment_id": deployment_id,
                "removed_from": done,
                "errors": {c.edge: c.error for c in changes if c.error},
                "message": message,
            },
            address=address,
        )
    await _publish_superseded(conn, ctx, flow_id, superseded)
    entries = _after_commit(ctx, deployment_id, flow_id, None, "undeploy", at, changes, since)
    await ctx.tracker.track(entries)
    return await get_deployment(conn, deployment_id)


async def redeploy_for_device(pool: asyncpg.Pool, ctx: DeployContext, device_id: str) -> list[Deployment]:
    """Recompile every deployed flow that uses ``device_id``; redeploy those whose plans changed.

    Never raises: a flow that no longer compiles keeps running its last plan, and the failure is
    audited (``flow.redeploy_failed``, by "system") with the diagnostics.
    """
    done: list[Deployment] = []
    async with pool.acquire() as conn:
        for flow_id, version in await flows_using_device(conn, device_id):
            try:
                deployment = await deploy(
                    conn,
                    ctx,
                    None,
                    flow_id,
                    version,
                    f"device {device_id} changed",
                    action="redeploy",
                    only_if_changed=True,
                )
            except ApiError as exc:
                log.warning("flow %s not redeployed after device %s changed: %s", flow_id, device_id, exc.message)
                await record(
                    conn,
                    None,
                    "flow.redeploy_failed",
                    "flow",
                    flow_id,
                    after={"device": device_id, "version": version, "error": exc.message, **(exc.extra or {})},
                    username="system",
                )
                continue
            except Exception:
                log.exception("redeploying flow %s after device %s changed", flow_id, device_id)
                continue
            if deployment is not None:
                done.append(deployment)
    return done
