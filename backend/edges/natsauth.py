"""NATS authorization of the hub server: the hub service user and one leaf user per registered edge.

``HubNatsAuth(data_dir)`` keeps the hub service user's password (generated once, in a 0600 JSON
file) and renders ``auth.conf`` for the hub's nats-server: an ``APP`` account (JetStream enabled)
with the hub service user (full access) and one user per edge (bcrypt password hash, leaf-node
connections only, permissions scoped to the edge's own subjects), a ``SYS`` account and
``system_account``. The embedded server includes it (``extra_config=auth.include_directive(server.dir)``);
:meth:`HubNatsAuth.apply` rewrites it from the ``edges`` table and reloads that server, so a
registered edge can connect at once and a removed one is disconnected and cannot come back.

Edge permissions (after ``shared/reference/nats-edge-permissions.md``; tested in
``tests/integration/test_hub_edges.py``). On the hub, a leaf user's ``publish`` list is what the
leaf may send into the hub account; its ``subscribe`` list is what the hub delivers to the leaf.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import secrets
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import asyncpg  # type: ignore[import-untyped, unused-ignore]
import bcrypt
import nats

from proxus.plan import PLANS_BUCKET
from proxus.services.nats import NatsServer

log = logging.getLogger("proxus.hub.natsauth")

APP_ACCOUNT = "APP"
SYS_ACCOUNT = "SYS"
HUB_INBOX_PREFIX = "_INBOX_hub"  # backend.hubnats.HubNats connects with this inbox prefix
BCRYPT_ROUNDS = 11


def hash_password(password: str, rounds: int = BCRYPT_ROUNDS) -> str:
    """A bcrypt hash in the ``$2a$`` form nats-server accepts as a password."""
    return bcrypt.hashpw(password.encode(), bcrypt.gensalt(rounds=rounds, prefix=b"2a")).decode()


def check_password(password: str, password_hash: str) -> bool:
    try:
        return bcrypt.checkpw(password.encode(), password_hash.encode())
    except ValueError:
        return False


def new_password() -> str:
    """A random password that is safe inside a URL (``nats-leaf://user:password@host``)."""
    return secrets.token_urlsafe(24)


def edge_permissions(edge: str, hub_domain: str = "hub") -> dict[str, dict[str, list[str]]]:
    """What edge ``edge``'s leaf connection may send into, and receive from, the hub account."""
    kv = f"KV_{PLANS_BUCKET}"
    return {
        "publish": {
            "allow": [
                f"status.{edge}",  # heartbeats and plan reports
                f"$JS.{hub_domain}.API.STREAM.INFO.{kv}",  # js.key_value()
                f"$JS.{hub_domain}.API.DIRECT.GET.{kv}.$KV.{PLANS_BUCKET}.{edge}",  # kv.get of its own key
                f"$JS.{hub_domain}.API.CONSUMER.CREATE.{kv}.*.$KV.{PLANS_BUCKET}.{edge}",  # its named watcher
                f"$JS.FC.{kv}.>",  # watcher flow control
                f"$JS.FC.{hub_domain}.*.{kv}.>",
                "$JSC.R.>",  # replies to the hub's source consumer create
                f"deliver.{edge}.>",  # deliveries of its sourced outbox
                f"{HUB_INBOX_PREFIX}.>",  # replies to the hub service's requests
                f"proxus.debug.{edge}.>",  # live debug taps
                f"proxus.hub.credentials.{edge}",  # fetch the credentials its plans use
            ]
        },
        "subscribe": {
            "allow": [
                f"_INBOX_{edge}.>",  # replies to the edge's own clients
                f"$JS.{edge}.API.>",  # hub -> edge JetStream API (sourcing its outbox)
                f"$JS.FC.OUT_{edge}.>",  # sourcing flow control
                f"$JS.FC.{edge}.*.OUT_{edge}.>",
                f"proxus.edge.{edge}.req.>",  # requests from the hub (test connection, browse)
            ]
        },
    }


def _q(value: str) -> str:
    """A quoted NATS config string (JSON string syntax; quoted, so '$' is never a variable)."""
    return json.dumps(value)


def _render_value(value: Any, indent: str) -> str:
    if isinstance(value, str):
        return _q(value)
    if isinstance(value, list):
        inner = indent + "  "
        return "[\n" + "".join(f"{inner}{_render_value(v, inner)}\n" for v in value) + indent + "]"
    if isinstance(value, dict):
        inner = indent + "  "
        body = "".join(f"{inner}{k}: {_render_value(v, inner)}\n" for k, v in value.items())
        return "{\n" + body + indent + "}"
    raise TypeError(f"cannot render {value!r}")


def write_private(path: Path, text: str) -> None:
    """Atomically replace ``path`` with ``text``, readable by the owner only."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        raise


# The instance each running Hub uses, by resolved directory: code that only knows the settings
# (``ensure_local_edge``) finds the managed server (for reloads) and the lock through it.
_ACTIVE: dict[Path, HubNatsAuth] = {}


class HubNatsAuth:
    """The hub server's ``auth.conf`` and the hub service user's credentials.

    ``conf_path`` is ``<data_dir>/auth.conf``; pass :meth:`include_directive` as the server's
    ``extra_config`` and :attr:`hub_user` / :attr:`hub_password` to the Hub's NATS connection.
    ``server`` is the embedded server to reload on changes (None: an external NATS, where
    :meth:`apply` only writes the file).
    """

    hub_user = "hub"
    sys_user = "sys"

    def __init__(self, data_dir: str | Path, *, hub_domain: str = "hub", server: NatsServer | None = None) -> None:
        self.dir = Path(data_dir)
        self.hub_domain = hub_domain
        self.server = server
        self._lock = asyncio.Lock()
        self._secrets: dict[str, str] | None = None

    @classmethod
    def for_dir(cls, data_dir: str | Path, *, hub_domain: str = "hub") -> HubNatsAuth:
        """The active instance for ``data_dir`` (the one a running Hub uses), else a new one."""
        return _ACTIVE.get(Path(data_dir).resolve()) or cls(data_dir, hub_domain=hub_domain)

    def activate(self, server: NatsServer | None) -> None:
        """Make this the instance for its directory, managing ``server`` (None: an external NATS)."""
        self.server = server
        _ACTIVE[self.dir.resolve()] = self

    def deactivate(self) -> None:
        if _ACTIVE.get(self.dir.resolve()) is self:
            del _ACTIVE[self.dir.resolve()]

    @property
    def conf_path(self) -> Path:
        return self.dir / "auth.conf"

    @property
    def secrets_path(self) -> Path:
        return self.dir / "hub-nats.json"

    def include_directive(self, server_dir: str | Path | None = None) -> str:
        """The line to append to the hub server's config (``extra_config``).

        nats-server resolves includes relative to the including file, so pass the directory of the
        server's config (``NatsServer.dir``) unless ``auth.conf`` lives beside it (``include "auth.conf"``).
        """
        base = Path(server_dir).resolve() if server_dir is not None else self.dir.resolve()
        return f"include {_q(os.path.relpath(self.conf_path.resolve(), base))}"

    # -- the hub's own users ---------------------------------------------------------------------

    def _load_secrets(self) -> dict[str, str]:
        if self._secrets is None:
            try:
                loaded = json.loads(self.secrets_path.read_text())
            except FileNotFoundError:
                loaded = {}
            changed = False
            for user in ("hub", "sys"):
                if not loaded.get(f"{user}_password"):
                    loaded[f"{user}_password"] = new_password()
                    loaded.pop(f"{user}_hash", None)
                    changed = True
                if not loaded.get(f"{user}_hash"):
                    loaded[f"{user}_hash"] = hash_password(loaded[f"{user}_password"])
                    changed = True
            if changed:
                write_private(self.secrets_path, json.dumps(loaded, indent=2) + "\n")
            self._secrets = {k: str(v) for k, v in loaded.items()}
        return self._secrets

    @property
    def hub_password(self) -> str:
        return self._load_secrets()["hub_password"]

    @property
    def sys_password(self) -> str:
        return self._load_secrets()["sys_password"]

    # -- rendering -------------------------------------------------------------------------------

    def render(self, edges: Sequence[tuple[str, str]]) -> str:
        """auth.conf for these ``(edge id, bcrypt password hash)`` pairs (no plaintext passwords)."""
        secrets_ = self._load_secrets()
        users: list[dict[str, Any]] = [{"user": self.hub_user, "password": secrets_["hub_hash"]}]
        for edge, password_hash in sorted(edges):
            users.append(
                {
                    "user": edge,
                    "password": password_hash,
                    "allowed_connection_types": ["LEAFNODE"],
                    "permissions": edge_permissions(edge, self.hub_domain),
                }
            )
        accounts = {
            APP_ACCOUNT: {"jetstream": "enabled", "users": users},
            SYS_ACCOUNT: {"users": [{"user": self.sys_user, "password": secrets_["sys_hash"]}]},
        }
        body = _render_value(accounts, "")
        # jetstream: enabled must be a bare word, not a string.
        body = body.replace('jetstream: "enabled"', "jetstream: enabled")
        return (
            "# Written by the Proxus Hub (backend/edges/natsauth.py); changes are overwritten.\n"
            f"accounts: {body}\n"
            f"system_account: {_q(SYS_ACCOUNT)}\n"
        )

    def write(self, edges: Sequence[tuple[str, str]]) -> bool:
        """Write auth.conf (0600) for ``edges``; True when its content changed."""
        text = self.render(edges)
        try:
            if self.conf_path.read_text() == text:
                return False
        except FileNotFoundError:
            pass
        write_private(self.conf_path, text)
        return True

    async def prepare(self, database_url: str) -> None:
        """Before the hub server starts: write auth.conf with the hub user and the edges the database
        already knows (none on a first start, before migrations; the last file is kept when the
        database cannot be read)."""
        edges: list[tuple[str, str]] | None = None
        try:
            conn = await asyncpg.connect(database_url)
            try:
                if await conn.fetchval("SELECT to_regclass('edges')") is not None:
                    rows = await conn.fetch("SELECT id, nats_password_hash FROM edges ORDER BY id")
                    edges = [(r["id"], r["nats_password_hash"]) for r in rows]
                else:
                    edges = []
            finally:
                await conn.close()
        except (OSError, asyncpg.PostgresError) as exc:
            log.warning("cannot read the registered edges (%s); keeping the last auth.conf", exc)
        if edges is None:
            await asyncio.to_thread(self.ensure)
        else:
            await asyncio.to_thread(self.write, edges)

    def ensure(self) -> None:
        """Write an auth.conf with the hub user only when there is none yet (before the server starts)."""
        if not self.conf_path.exists():
            self.write([])

    async def apply(
        self, conn: asyncpg.Connection, server: NatsServer | None = None, *, revoked: Iterable[str] = ()
    ) -> bool:
        """Rewrite auth.conf from the edges table and reload the embedded server when it changed.

        A reload does not end the connections of users that are gone or whose password changed, so
        the leaf connections of the ``revoked`` edges (and any leaf whose server name is not a
        registered edge id) are then disconnected through the system account; they cannot come back.
        Returns True when a managed server runs the current users (the change is in force); False when
        there is no managed server (an external NATS: its admin must apply the users). Raises
        RuntimeError when the server refuses the new config.
        """
        server = server or self.server
        revoked = set(revoked)
        async with self._lock:
            rows = await conn.fetch("SELECT id, nats_password_hash FROM edges ORDER BY id")
            edges = [(r["id"], r["nats_password_hash"]) for r in rows]
            changed = await asyncio.to_thread(self.write, edges)
            if server is None or not server.running:
                return False
            if changed:
                await asyncio.to_thread(server.reload)
                log.info("hub NATS reloaded with %d edge user(s)", len(edges))
            if revoked:
                await self.disconnect_leafs(server, keep={e for e, _ in edges} - revoked)
            return True

    async def disconnect_leafs(self, server: NatsServer, keep: set[str]) -> list[str]:
        """Close the leaf connections of servers not named in ``keep`` (edge agents name their leaf
        server after the edge id); returns the names of the leafs disconnected."""
        leafz = await asyncio.to_thread(server.monitor, "leafz")
        targets = [
            (int(leaf["id"]), str(leaf.get("name", "")))
            for leaf in leafz.get("leafs", [])
            if leaf.get("name") not in keep
        ]
        if not targets:
            return []
        server_id = (await asyncio.to_thread(server.monitor, "varz"))["server_id"]
        nc = await nats.connect(
            server.url, user=self.sys_user, password=self.sys_password, allow_reconnect=False, connect_timeout=5
        )
        try:
            for cid, name in targets:
                await nc.request(f"$SYS.REQ.SERVER.{server_id}.KICK", json.dumps({"cid": cid}).encode(), timeout=5)
                log.info("disconnected leaf %s (lid %d): its credentials were revoked", name, cid)
        finally:
            await nc.close()
        return [name for _, name in targets]

    def edge_user_config(self, edge: str, password_hash: str) -> str:
        """The user entry for an edge, for admins who run their own NATS (add it to account APP)."""
        user = {
            "user": edge,
            "password": password_hash,
            "allowed_connection_types": ["LEAFNODE"],
            "permissions": edge_permissions(edge, self.hub_domain),
        }
        return _render_value(user, "")
