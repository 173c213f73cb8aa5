"""The credentials domain: stored device passwords, API tokens and headers, encrypted at rest.

Other domains use :func:`credentials_for_edge` (the decrypted credentials an edge needs, for the
deploy domain to ship) and :func:`credential_ids` (to validate references).
"""

import asyncio

from litestar import Litestar

from backend.credentials import responder
from backend.credentials.controllers import CredentialController
from backend.credentials.service import credential_ids, credentials_for_edge

CONTROLLERS: list[object] = [CredentialController]


async def start(app: Litestar, tasks: list[asyncio.Task[None]]) -> None:
    await responder.start(app)


__all__ = ["CONTROLLERS", "credential_ids", "credentials_for_edge", "start"]
