"""The credentials domain: stored device passwords, API tokens and headers, encrypted at rest.

Other domains use :func:`credentials_for_edge` (the decrypted credentials an edge needs, for the
deploy domain to ship) and :func:`credential_ids` (to validate references).
"""

from backend.credentials.controllers import CredentialController
from backend.credentials.service import credential_ids, credentials_for_edge

CONTROLLERS: list[object] = [CredentialController]

__all__ = ["CONTROLLERS", "credential_ids", "credentials_for_edge"]
