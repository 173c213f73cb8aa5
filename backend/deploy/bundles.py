"""Compare-and-set changes to an edge's plan bundle (one key per edge in the hub's ``plans`` KV bucket).

Several flows share an edge's key, and several Hubs (or deploys) may change it at once: every
change reads the bundle and its revision, changes this flow's entry only, and writes with
``update(last=revision)`` (``create`` when the key is absent or deleted), retrying on a conflict.
"""

from __future__ import annotations

import asyncio
import logging
import random

import msgspec
from nats.js.errors import KeyNotFoundError, KeyWrongLastSequenceError, NoKeysError
from nats.js.kv import KeyValue

from proxus.plan import Plan, PlanBundle, content_hash, decode_bundle

log = logging.getLogger("proxus.hub.deploy")

MAX_ATTEMPTS = 25


class BundleError(Exception):
    """The edge's bundle could not be changed."""


def _read(edge: str, data: bytes | None) -> PlanBundle:
    """The bundle in ``data``; a damaged one keeps only the plans that still verify."""
    if not data:
        return PlanBundle(edge=edge)
    try:
        return decode_bundle(data)
    except ValueError as exc:
        log.error("plan bundle of edge %s is damaged (%s); keeping the plans that verify", edge, exc)
    try:
        loose = msgspec.json.decode(data, type=PlanBundle)
    except msgspec.DecodeError:
        return PlanBundle(edge=edge)
    good = {k: p for k, p in loose.plans.items() if p.flow_id == k and p.hash == content_hash(p)}
    return PlanBundle(edge=edge, plans=good)


async def change_plan(kv: KeyValue, edge: str, flow_id: str, plan: Plan | None) -> int | None:
    """Put ``plan`` as ``flow_id``'s entry in ``edge``'s bundle (``None``: remove the entry).

    Returns the new revision, or None when there was nothing to change (removing an absent flow).
    Always writes when putting, even an unchanged plan: a new revision makes the edge retry a
    plan that failed before.
    """
    for attempt in range(MAX_ATTEMPTS):
        revision: int | None
        try:
            entry = await kv.get(edge)
            revision = entry.revision
            bundle = _read(edge, entry.value)
        except KeyNotFoundError:  # absent, or deleted (KeyDeletedError is a KeyNotFoundError)
            revision, bundle = None, PlanBundle(edge=edge)
        plans = dict(bundle.plans)
        if plan is None:
            if flow_id not in plans:
                return None
            del plans[flow_id]
        else:
            plans[flow_id] = plan
        value = PlanBundle(edge=edge, plans=plans).encode()
        try:
            if revision is None:
                return int(await kv.create(edge, value))
            return int(await kv.update(edge, value, last=revision))
        except KeyWrongLastSequenceError:
            # Someone else changed the key between our read and write: read again.
            await asyncio.sleep(random.uniform(0, 0.005 * (attempt + 1)))
    raise BundleError(f"the plan bundle of edge {edge!r} kept changing; gave up after {MAX_ATTEMPTS} attempts")


async def edges_running(kv: KeyValue, flow_id: str) -> set[str]:
    """Every edge whose bundle holds ``flow_id`` (a scan of the bucket: for undeploy)."""
    try:
        keys = await kv.keys()
    except NoKeysError:  # the bucket is empty
        return set()

    async def holds(edge: str) -> bool:
        try:
            entry = await kv.get(edge)
        except KeyNotFoundError:
            return False
        return flow_id in _read(edge, entry.value).plans

    found = await asyncio.gather(*(holds(k) for k in keys))
    return {k for k, yes in zip(keys, found, strict=True) if yes}
