"""Ships decrypted credentials to edges on request, over the NATS link (TLS outside one machine).

An edge asks on ``proxus.hub.credentials.<edge>`` — its NATS permissions allow only its own
subject, so the subject names the asker — with ``{"ids": [...]}``. It gets the credentials its
devices use or that the plans deployed to it name, and nothing else.
"""

from __future__ import annotations

import json
import logging
from typing import Any

import msgspec
from litestar import Litestar
from nats.aio.msg import Msg

from backend.credentials.service import credentials_for_edge
from proxus.credrefs import CREDENTIALS_SUBJECT, credential_refs
from proxus.plan import decode_bundle

log = logging.getLogger("proxus.hub.credentials")


async def _allowed_plan_refs(app: Litestar, edge: str) -> set[str]:
    try:
        entry = await app.state.nats.plans.get(edge)
    except Exception:  # no bundle for this edge yet
        return set()
    if entry.value is None:
        return set()
    try:
        return credential_refs(decode_bundle(entry.value).plans.values())
    except ValueError:
        return set()


async def start(app: Litestar) -> None:
    async def answer(msg: Msg) -> None:
        edge = msg.subject[len(CREDENTIALS_SUBJECT) + 1 :]
        reply: dict[str, Any]
        try:
            wanted = {str(i) for i in json.loads(msg.data or b"{}").get("ids", [])}
            allowed = await _allowed_plan_refs(app, edge)
            async with app.state.pool.acquire() as conn:
                creds = await credentials_for_edge(conn, app.state.box, edge, sorted(wanted & allowed))
            given = [c for c in creds if c.id in wanted]
            reply = {"credentials": msgspec.to_builtins(given), "missing": sorted(wanted - {c.id for c in given})}
            log.info("edge %s fetched credentials %s", edge, [c.id for c in given])  # ids only, never secrets
        except Exception as exc:
            log.warning("credentials request from %s failed: %s", edge, exc)
            reply = {"credentials": [], "missing": [], "error": "the Hub could not answer"}
        if msg.reply:
            await msg.respond(msgspec.json.encode(reply))

    await app.state.nats.client.subscribe(f"{CREDENTIALS_SUBJECT}.*", cb=answer)
