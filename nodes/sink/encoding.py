"""How sinks that talk to other systems (HTTP, NATS) render points and events.

One record per point: ``{"ts": "2026-11-27T17:00:00.123456Z", "series": ..., "value": ...,
"quality": "good"}``; events carry their fields with the same ``ts`` format. Rendering works on
whole columns, once per batch.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import msgspec

from nodes.host import Data
from nodes.points import QUALITY_NAMES, EventBatch

_json = msgspec.json.Encoder()
_msgpack = msgspec.msgpack.Encoder()


def iso_ts(ns: int) -> str:
    seconds, rest = divmod(ns, 1_000_000_000)
    stamp = datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%S")
    return f"{stamp}.{rest // 1000:06d}Z"


def records(data: Data) -> list[dict[str, Any]]:
    if isinstance(data, EventBatch):
        out = []
        for event in data.events:
            item = msgspec.to_builtins(event)
            item["ts"] = iso_ts(event.ts)
            out.append(item)
        return out
    return [
        {"ts": iso_ts(t), "series": s, "value": v, "quality": QUALITY_NAMES[q]}
        for t, s, v, q in zip(data.ts, data.series, data.values, data.quality, strict=True)
    ]


def encode_json(value: Any) -> bytes:
    return _json.encode(value)


def encode_ndjson(items: list[dict[str, Any]]) -> bytes:
    return b"".join(_json.encode(item) + b"\n" for item in items)


def encode_msgpack(value: Any) -> bytes:
    return _msgpack.encode(value)
