"""Small TCP helpers shared by the service launchers: free ports, readiness waits, reachability."""

from __future__ import annotations

import socket
import time
from urllib.parse import urlsplit

__all__ = ["DEFAULT_PORTS", "free_port", "host_port", "is_reachable", "wait_for_port"]

#: Default ports by URL scheme, used when a URL names no port.
DEFAULT_PORTS: dict[str, int] = {
    "nats": 4222,
    "tls": 4222,
    "nats-leaf": 7422,
    "redis": 6379,
    "rediss": 6379,
    "postgres": 5432,
    "postgresql": 5432,
    "http": 80,
    "https": 443,
}


def free_port(host: str = "127.0.0.1") -> int:
    """Return a TCP port that is free on ``host`` right now.

    The port is found by binding to port 0 and closing the socket again, so another process may grab it
    before the caller binds it; launchers retry or fail loudly in that (rare) case.
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


def _can_connect(host: str, port: int, timeout: float) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def wait_for_port(host: str, port: int, timeout: float = 10.0) -> None:
    """Block until ``host:port`` accepts TCP connections; raise ``TimeoutError`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        if _can_connect(host, port, timeout=0.5):
            return
        if time.monotonic() >= deadline:
            raise TimeoutError(f"{host}:{port} did not accept connections within {timeout:.1f}s")
        time.sleep(0.05)


def host_port(url: str) -> tuple[str, int]:
    """Return ``(host, port)`` of a ``nats://``, ``redis://``, ``postgresql://`` (...) URL.

    Only the first host of a multi-host URL is used; a missing host means ``127.0.0.1`` and a missing port
    means the scheme's default port.
    """
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    netloc = parts.netloc.rsplit("@", 1)[-1].split(",", 1)[0]
    host = "127.0.0.1"
    port: int | None = None
    if netloc.startswith("["):  # IPv6 literal
        end = netloc.find("]")
        host = netloc[1:end] if end > 0 else host
        rest = netloc[end + 1 :] if end > 0 else ""
        if rest.startswith(":") and rest[1:].isdigit():
            port = int(rest[1:])
    elif netloc:
        name, _, port_text = netloc.partition(":")
        host = name or host
        if port_text.isdigit():
            port = int(port_text)
    if port is None:
        if scheme not in DEFAULT_PORTS:
            raise ValueError(f"cannot tell the port of {url!r}: no port and unknown scheme {scheme!r}")
        port = DEFAULT_PORTS[scheme]
    return host, port


def is_reachable(url: str, timeout: float = 0.5) -> bool:
    """True when a TCP connection to the host and port of ``url`` succeeds within ``timeout`` seconds.

    This proves only that something listens there, not that it speaks the expected protocol or accepts
    our credentials.
    """
    try:
        host, port = host_port(url)
    except ValueError:
        return False
    return _can_connect(host, port, timeout)
