"""Server-side sessions and login throttling: Redis, or process memory for a single-process Hub."""

from __future__ import annotations

import json
import secrets
import time
from typing import Any, Protocol

import redis.asyncio as aioredis


class SessionStore(Protocol):
    async def create(self, data: dict[str, Any], ttl_s: int) -> str: ...
    async def get(self, session_id: str) -> dict[str, Any] | None: ...
    async def delete(self, session_id: str) -> None: ...
    async def delete_user(self, user_id: int) -> None: ...
    async def hit(self, key: str, window_s: int) -> int: ...
    async def clear_hits(self, key: str) -> None: ...
    async def close(self) -> None: ...


def new_session_id() -> str:
    return secrets.token_urlsafe(32)


class RedisSessionStore:
    """Sessions as JSON under ``<prefix>session:<id>`` with a TTL; survives Hub restarts."""

    def __init__(self, url: str, prefix: str = "proxus:") -> None:
        self.redis = aioredis.from_url(url, decode_responses=True)
        self.prefix = prefix

    async def create(self, data: dict[str, Any], ttl_s: int) -> str:
        session_id = new_session_id()
        key = f"{self.prefix}session:{session_id}"
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.set(key, json.dumps(data), ex=ttl_s)
            pipe.sadd(f"{self.prefix}user-sessions:{data['user_id']}", session_id)
            pipe.expire(f"{self.prefix}user-sessions:{data['user_id']}", ttl_s)
            await pipe.execute()
        return session_id

    async def get(self, session_id: str) -> dict[str, Any] | None:
        raw = await self.redis.get(f"{self.prefix}session:{session_id}")
        return json.loads(raw) if raw else None

    async def delete(self, session_id: str) -> None:
        await self.redis.delete(f"{self.prefix}session:{session_id}")

    async def delete_user(self, user_id: int) -> None:
        members = await self.redis.smembers(f"{self.prefix}user-sessions:{user_id}")
        if members:
            await self.redis.delete(*[f"{self.prefix}session:{m!s}" for m in members])
        await self.redis.delete(f"{self.prefix}user-sessions:{user_id}")

    async def hit(self, key: str, window_s: int) -> int:
        full = f"{self.prefix}throttle:{key}"
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.incr(full)
            pipe.expire(full, window_s, nx=True)
            count, _ = await pipe.execute()
        return int(count)

    async def clear_hits(self, key: str) -> None:
        await self.redis.delete(f"{self.prefix}throttle:{key}")

    async def close(self) -> None:
        await self.redis.aclose()


class MemorySessionStore:
    """Sessions in this process only: lost on restart and not shared between Hub processes."""

    def __init__(self) -> None:
        self._sessions: dict[str, tuple[float, dict[str, Any]]] = {}
        self._hits: dict[str, tuple[float, int]] = {}

    async def create(self, data: dict[str, Any], ttl_s: int) -> str:
        session_id = new_session_id()
        self._sessions[session_id] = (time.monotonic() + ttl_s, data)
        return session_id

    async def get(self, session_id: str) -> dict[str, Any] | None:
        entry = self._sessions.get(session_id)
        if entry is None or entry[0] < time.monotonic():
            self._sessions.pop(session_id, None)
            return None
        return entry[1]

    async def delete(self, session_id: str) -> None:
        self._sessions.pop(session_id, None)

    async def delete_user(self, user_id: int) -> None:
        for sid in [s for s, (_, d) in self._sessions.items() if d.get("user_id") == user_id]:
            del self._sessions[sid]

    async def hit(self, key: str, window_s: int) -> int:
        now = time.monotonic()
        until, count = self._hits.get(key, (now + window_s, 0))
        if until < now:
            until, count = now + window_s, 0
        self._hits[key] = (until, count + 1)
        return count + 1

    async def clear_hits(self, key: str) -> None:
        self._hits.pop(key, None)

    async def close(self) -> None:
        pass
