"""/api/alerts, /api/alert-rules, /api/alert-channels: viewers read; editors manage and acknowledge.

Channels are managed by editors (like rules): a channel holds no secret -- an auth header comes
from a stored credential, which only admins create -- and its URL and headers are checked for
embedded secrets.
"""

from __future__ import annotations

from typing import Annotated, Literal

from litestar import Controller, delete, get, patch, post
from litestar.datastructures import State
from litestar.params import JSONBody, PathParameter, QueryParameter

from backend.alerts import service
from backend.alerts.schemas import (
    Ack,
    Alert,
    AlertDetail,
    Channel,
    ChannelCreate,
    ChannelTest,
    ChannelUpdate,
    Notification,
    Rule,
    RuleCreate,
    RuleUpdate,
    Severity,
)
from backend.auth.guards import editor, viewer
from backend.deps import Address, Caller, Db

Id = Annotated[int, PathParameter(ge=1, le=2**62)]


class AlertController(Controller):
    path = "/api/alerts"
    tags = ["alerts"]
    guards = [viewer]

    @get("/", summary="List alerts, newest first")
    async def list_alerts(
        self,
        db: Db,
        alert_state: Annotated[
            Literal["active", "cleared", "all"], QueryParameter(name="state", description="active, cleared or all")
        ] = "active",
        acknowledged: Annotated[bool | None, QueryParameter(description="Only (un)acknowledged ones")] = None,
        severity: Annotated[Severity | None, QueryParameter()] = None,
        rule_id: Annotated[int | None, QueryParameter(ge=1, le=2**62)] = None,
        limit: Annotated[int, QueryParameter(ge=1, le=1000)] = 100,
        before_id: Annotated[int | None, QueryParameter(ge=1, le=2**62, description="Page: alerts older than this")] = (
            None
        ),
    ) -> list[Alert]:
        return await service.list_alerts(
            db,
            state=alert_state,
            acknowledged=acknowledged,
            severity=severity,
            rule_id=rule_id,
            limit=limit,
            before_id=before_id,
        )

    @get("/{alert_id:int}", summary="An alert with its history and notifications")
    async def get_alert(self, db: Db, alert_id: Id) -> AlertDetail:
        return await service.alert_detail(db, alert_id)

    @post("/{alert_id:int}/ack", summary="Acknowledge an alert", guards=[editor], status_code=200)
    async def acknowledge(
        self, db: Db, principal: Caller, address: Address, alert_id: Id, data: JSONBody[Ack | None] = None
    ) -> Alert:
        return await service.acknowledge(db, principal, alert_id, data.comment if data else "", address)


class AlertRuleController(Controller):
    path = "/api/alert-rules"
    tags = ["alerts"]
    guards = [viewer]

    @get("/", summary="List alert rules")
    async def list_rules(self, db: Db) -> list[Rule]:
        return await service.list_rules(db)

    @get("/{rule_id:int}", summary="Get an alert rule")
    async def get_rule(self, db: Db, rule_id: Id) -> Rule:
        return await service.get_rule(db, rule_id)

    @post("/", summary="Create an alert rule", guards=[editor])
    async def create_rule(self, db: Db, principal: Caller, address: Address, data: JSONBody[RuleCreate]) -> Rule:
        return await service.create_rule(db, principal, data, address)

    @patch("/{rule_id:int}", summary="Change an alert rule (disabling it clears its alerts)", guards=[editor])
    async def update_rule(
        self, db: Db, principal: Caller, address: Address, rule_id: Id, data: JSONBody[RuleUpdate]
    ) -> Rule:
        return await service.update_rule(db, principal, rule_id, data, address)

    @delete("/{rule_id:int}", summary="Delete an alert rule (its active alerts are cleared)", guards=[editor])
    async def delete_rule(self, db: Db, principal: Caller, address: Address, rule_id: Id) -> None:
        await service.delete_rule(db, principal, rule_id, address)


class AlertChannelController(Controller):
    path = "/api/alert-channels"
    tags = ["alerts"]
    guards = [viewer]

    @get("/", summary="List notification channels")
    async def list_channels(self, db: Db) -> list[Channel]:
        return await service.list_channels(db)

    @get("/{channel_id:int}", summary="Get a notification channel")
    async def get_channel(self, db: Db, channel_id: Id) -> Channel:
        return await service.get_channel(db, channel_id)

    @post("/", summary="Create a notification channel (webhook)", guards=[editor])
    async def create_channel(
        self, db: Db, principal: Caller, address: Address, data: JSONBody[ChannelCreate]
    ) -> Channel:
        return await service.create_channel(db, principal, data, address)

    @patch("/{channel_id:int}", summary="Change a notification channel", guards=[editor])
    async def update_channel(
        self, db: Db, principal: Caller, address: Address, channel_id: Id, data: JSONBody[ChannelUpdate]
    ) -> Channel:
        return await service.update_channel(db, principal, channel_id, data, address)

    @delete("/{channel_id:int}", summary="Delete a notification channel and its queued notifications", guards=[editor])
    async def delete_channel(self, db: Db, principal: Caller, address: Address, channel_id: Id) -> None:
        await service.delete_channel(db, principal, channel_id, address)

    @post("/{channel_id:int}/test", summary="Send a test message now (one attempt)", guards=[editor], status_code=200)
    async def test_channel(
        self, db: Db, state: State, principal: Caller, address: Address, channel_id: Id
    ) -> ChannelTest:
        result: ChannelTest = await state.alert_engine.test_channel(db, principal, channel_id, address)
        return result

    @get("/{channel_id:int}/notifications", summary="Recent notifications of a channel with every attempt")
    async def notifications(
        self, db: Db, channel_id: Id, limit: Annotated[int, QueryParameter(ge=1, le=1000)] = 100
    ) -> list[Notification]:
        return await service.channel_notifications(db, channel_id, limit)
