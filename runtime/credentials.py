"""The edge's credential store: fetched from the Hub on demand, kept encrypted on local disk.

Plans name credentials by id. Before a plan is applied the edge fetches the ones it lacks from
the Hub (``proxus.hub.credentials.<edge>``); they stay in memory for the nodes and are kept on
disk encrypted (Fernet, with a key file readable by this user only), so an edge restarted
without the Hub can still reach its devices. Secrets are never logged.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

import msgspec
from cryptography.fernet import Fernet, InvalidToken
from nats.aio.client import Client

from nodes.host import Credential
from proxus.credrefs import credentials_subject

log = logging.getLogger("proxus.edge.credentials")


def _write_private(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    os.replace(tmp, path)


class CredentialStore:
    def __init__(self, data_dir: Path, preset: dict[str, Credential] | None = None) -> None:
        self.path = data_dir / "credentials.enc"
        key_path = data_dir / "credentials.key"
        if not key_path.exists():
            _write_private(key_path, Fernet.generate_key())
        self._fernet = Fernet(key_path.read_bytes().strip())
        # The nodes' contexts hold this very dict: updating it in place is how they see new ones.
        self.values: dict[str, Credential] = {}
        self._load()
        self.values.update(preset or {})

    def _load(self) -> None:
        if not self.path.exists():
            return
        try:
            raw = self._fernet.decrypt(self.path.read_bytes())
            self.values.update({c.id: c for c in msgspec.json.decode(raw, type=list[Credential])})
        except (InvalidToken, msgspec.DecodeError, ValueError) as exc:
            log.error("cannot read the stored credentials (%s); they will be fetched again", exc)

    def _save(self) -> None:
        _write_private(self.path, self._fernet.encrypt(msgspec.json.encode(list(self.values.values()))))

    async def ensure(self, nc: Client | None, edge: str, ids: set[str], timeout_s: float = 5.0) -> set[str]:
        """Fetch the ids not held yet; returns those still missing (the Hub refused or is away)."""
        missing = ids - set(self.values)
        if not missing or nc is None or not nc.is_connected:
            return missing
        try:
            msg = await nc.request(credentials_subject(edge), json.dumps({"ids": sorted(missing)}).encode(), timeout_s)
            body = json.loads(msg.data)
            fetched = msgspec.convert(body.get("credentials", []), list[Credential])
        except Exception as exc:
            log.warning("could not fetch credentials %s from the Hub: %s", sorted(missing), exc)
            return missing
        if fetched:
            self.values.update({c.id: c for c in fetched})
            self._save()
            log.info("fetched credentials %s", [c.id for c in fetched])
        return missing - {c.id for c in fetched}
