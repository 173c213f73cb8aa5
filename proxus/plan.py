"""The plan: what the compiler emits and an edge runs.

A plan is immutable, plain, serialisable data (cf. Dagster's execution plan): the steps of one
flow's part on one edge, in topological order, each with its resolved config and input wiring.
Run state lives elsewhere, in the runtime. The same flow compiles to byte-identical plans, so the
content hash tells an edge whether it already runs what the Hub wants.
"""

from __future__ import annotations

import hashlib
from typing import Any, Literal

import msgspec

PLAN_FORMAT: Literal["proxus.plan"] = "proxus.plan"
PLAN_SCHEMA_VERSION = 1

# Sorted keys make the encoding canonical: equal plans encode to equal bytes.
_canonical = msgspec.json.Encoder(order="sorted")


class Wire(msgspec.Struct, frozen=True, order=True, forbid_unknown_fields=True):
    """An input of a step: ``port`` receives what ``source``'s ``source_port`` emits."""

    port: str
    source: str
    source_port: str


class PlanStep(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """One node of the flow, ready to run."""

    node_id: str
    type: str
    type_version: int
    label: str
    stateful: bool
    config: dict[str, Any]
    inputs: tuple[Wire, ...] = ()


class Plan(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """One flow's part on one edge."""

    format: Literal["proxus.plan"] = PLAN_FORMAT
    schema_version: int = PLAN_SCHEMA_VERSION
    plan_id: str
    flow_id: str
    flow_name: str
    flow_version: int
    edge: str
    hash: str = ""
    steps: tuple[PlanStep, ...] = ()

    def with_hash(self) -> Plan:
        return msgspec.structs.replace(self, hash=content_hash(self))

    def encode(self) -> bytes:
        """Canonical JSON: what travels to the edge and what the hash covers."""
        return _canonical.encode(self)


def content_hash(plan: Plan) -> str:
    """SHA-256 over the canonical encoding of everything but the hash itself."""
    body = _canonical.encode(msgspec.structs.replace(plan, hash=""))
    return "sha256:" + hashlib.sha256(body).hexdigest()


def decode_plan(data: bytes) -> Plan:
    """Decode and verify a plan; raises ValueError when it is malformed or its hash is wrong."""
    try:
        plan = msgspec.json.decode(data, type=Plan)
    except msgspec.DecodeError as exc:
        raise ValueError(f"malformed plan: {exc}") from exc
    if plan.hash != content_hash(plan):
        raise ValueError(f"plan {plan.plan_id}: content does not match its hash {plan.hash}")
    return plan


PLANS_BUCKET = "plans"
BUNDLE_FORMAT: Literal["proxus.plans"] = "proxus.plans"


class PlanBundle(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Everything one edge should run: the value of its key in the hub's plans KV bucket.

    One key per edge lets an edge read its whole desired state with a single direct get (which
    per-edge permissions can scope), and a replaced edge gets it at once.
    """

    format: Literal["proxus.plans"] = BUNDLE_FORMAT
    edge: str
    plans: dict[str, Plan] = {}  # by flow id

    def encode(self) -> bytes:
        return _canonical.encode(self)


def decode_bundle(data: bytes) -> PlanBundle:
    """Decode a bundle and verify every plan's hash; raises ValueError naming what is wrong."""
    try:
        bundle = msgspec.json.decode(data, type=PlanBundle)
    except msgspec.DecodeError as exc:
        raise ValueError(f"malformed plan bundle: {exc}") from exc
    for flow_id, plan in bundle.plans.items():
        if plan.flow_id != flow_id:
            raise ValueError(f"plan bundle: entry {flow_id!r} holds the plan of flow {plan.flow_id!r}")
        if plan.hash != content_hash(plan):
            raise ValueError(f"plan {plan.plan_id}: content does not match its hash {plan.hash}")
    return bundle
