"""Launch a throw-away ``redis-server`` (no persistence) bound to 127.0.0.1 on a free port."""

from __future__ import annotations

import asyncio
import atexit
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path
from types import TracebackType
from typing import IO, Self

from proxus.services.ports import free_port

__all__ = ["LocalRedis", "find_redis_server"]


_LIVE: set[LocalRedis] = set()


@atexit.register
def _stop_all_at_exit() -> None:
    for server in list(_LIVE):
        server.stop()


def find_redis_server() -> Path:
    """``redis-server`` from ``PATH``; a ``RuntimeError`` with the install command when missing."""
    found = shutil.which("redis-server")
    if not found:
        raise RuntimeError("redis-server is not on PATH: install it with `apt-get install -y redis-server`")
    return Path(found)


class LocalRedis:
    """A ``redis-server`` child process: ``--save "" --appendonly no --dir <dir>``, 127.0.0.1 only.

    ``start()`` returns once the server answers ``PING``; ``stop()`` sends SIGTERM (SIGKILL after
    ``stop_timeout``).  The log goes to ``<dir>/redis.log``.  Use as a (async) context manager.
    """

    def __init__(
        self,
        directory: str | Path,
        port: int | None = None,
        *,
        extra_args: list[str] | None = None,
        binary: str | Path | None = None,
        start_timeout: float = 15.0,
        stop_timeout: float = 10.0,
    ) -> None:
        self.dir = Path(directory).resolve()
        self.host = "127.0.0.1"
        self._fixed_port = port
        self.port = port or 0
        self.extra_args = list(extra_args or [])
        self.binary = Path(binary) if binary is not None else find_redis_server()
        self.start_timeout = start_timeout
        self.stop_timeout = stop_timeout
        self._proc: subprocess.Popen[bytes] | None = None
        self._log_file: IO[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://{self.host}:{self.port}/0"

    @property
    def log_path(self) -> Path:
        return self.dir / "redis.log"

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def log_tail(self, lines: int = 40) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def _ping(self) -> bool:
        try:
            with socket.create_connection((self.host, self.port), timeout=0.5) as sock:
                sock.sendall(b"PING\r\n")
                return sock.recv(64).startswith(b"+PONG")
        except OSError:
            return False

    def start(self) -> Self:
        if self.running:
            return self
        self.dir.mkdir(parents=True, exist_ok=True)
        attempts = 1 if self._fixed_port else 3
        for attempt in range(attempts):
            self.port = self._fixed_port or free_port(self.host)
            try:
                self._spawn_and_wait()
                return self
            except RuntimeError:
                in_use = "address already in use" in self.log_tail(10).lower()
                self.stop()
                if not (in_use and attempt + 1 < attempts):
                    raise
            except BaseException:
                self.stop()
                raise
        raise AssertionError("unreachable")  # pragma: no cover

    def _spawn_and_wait(self) -> None:
        cmd = [
            str(self.binary),
            "--port",
            str(self.port),
            "--bind",
            self.host,
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            str(self.dir),
            "--daemonize",
            "no",
            "--logfile",
            "",
            *self.extra_args,
        ]
        self._log_file = self.log_path.open("ab")
        self._proc = subprocess.Popen(
            cmd,
            stdin=subprocess.DEVNULL,
            stdout=self._log_file,
            stderr=subprocess.STDOUT,
            cwd=self.dir,
            start_new_session=True,
        )
        _LIVE.add(self)
        deadline = time.monotonic() + self.start_timeout
        while not self._ping():
            if self._proc.poll() is not None:
                raise RuntimeError(
                    f"redis-server exited with code {self._proc.returncode}; log {self.log_path}:\n{self.log_tail()}"
                )
            if time.monotonic() >= deadline:
                raise RuntimeError(f"redis-server not ready in {self.start_timeout:.0f}s:\n{self.log_tail()}")
            time.sleep(0.05)

    def stop(self) -> None:
        """SIGTERM, then SIGKILL if it lingers; idempotent."""
        proc, self._proc = self._proc, None
        if proc is not None:
            if proc.poll() is None:
                try:
                    proc.send_signal(signal.SIGTERM)
                    proc.wait(timeout=self.stop_timeout)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait(timeout=self.stop_timeout)
                except ProcessLookupError:
                    pass
            else:
                proc.wait()
        if self._log_file is not None:
            self._log_file.close()
            self._log_file = None
        _LIVE.discard(self)

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
        state = f"pid={self.pid}" if self.running else "stopped"
        return f"LocalRedis(url={self.url!r}, {state})"
