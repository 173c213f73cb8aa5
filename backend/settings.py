"""Hub settings, read from the environment (``PROXUS_*``); embedded defaults where unset."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

DEFAULT_FRONTEND_DIR = Path(__file__).resolve().parents[1] / "frontend" / "dist"


def _env(name: str, default: str | None = None) -> str | None:
    value = os.environ.get(name)
    return value if value not in (None, "") else default


@dataclass(frozen=True)
class Settings:
    data_dir: Path = field(default_factory=lambda: Path(_env("PROXUS_DATA_DIR", ".proxus/hub") or ".proxus/hub"))
    # None: an embedded PostgreSQL under data_dir/postgres is started.
    database_url: str | None = field(default_factory=lambda: _env("PROXUS_DATABASE_URL"))
    # None: sessions live in process memory (single-process Hub only; documented).
    redis_url: str | None = field(default_factory=lambda: _env("PROXUS_REDIS_URL"))
    redis_prefix: str = field(default_factory=lambda: _env("PROXUS_REDIS_PREFIX", "proxus:") or "proxus:")
    # None: an embedded NATS hub server (JetStream domain "hub", a leaf-node port) is started.
    nats_url: str | None = field(default_factory=lambda: _env("PROXUS_NATS_URL"))
    nats_user: str | None = field(default_factory=lambda: _env("PROXUS_NATS_USER"))
    nats_password: str | None = field(default_factory=lambda: _env("PROXUS_NATS_PASSWORD"))
    # How edges reach the hub's leaf-node port (shown when an edge is registered).
    leaf_url: str | None = field(default_factory=lambda: _env("PROXUS_LEAF_URL"))
    hub_domain: str = field(default_factory=lambda: _env("PROXUS_HUB_DOMAIN", "hub") or "hub")
    host: str = field(default_factory=lambda: _env("PROXUS_HOST", "127.0.0.1") or "127.0.0.1")
    port: int = field(default_factory=lambda: int(_env("PROXUS_PORT", "8080") or "8080"))
    # Key for credentials at rest: base64 urlsafe 32 bytes (Fernet); else a key file under data_dir.
    secret_key: str | None = field(default_factory=lambda: _env("PROXUS_SECRET_KEY"))
    secret_key_file: Path | None = field(
        default_factory=lambda: Path(p) if (p := _env("PROXUS_SECRET_KEY_FILE")) else None
    )
    session_ttl_s: int = field(default_factory=lambda: int(_env("PROXUS_SESSION_TTL_S", str(8 * 3600)) or 28800))
    secure_cookies: bool = field(default_factory=lambda: _env("PROXUS_SECURE_COOKIES", "0") == "1")
    login_attempts: int = 5  # failed logins per user and address ...
    login_window_s: int = 300  # ... within this window before 429
    offline_after_s: float = field(default_factory=lambda: float(_env("PROXUS_OFFLINE_AFTER_S", "15") or 15))
    # The web app's production build; by default the one built in this checkout.
    frontend_dir: Path | None = field(
        default_factory=lambda: Path(p) if (p := _env("PROXUS_FRONTEND_DIR")) else DEFAULT_FRONTEND_DIR
    )
