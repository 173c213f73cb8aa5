"""The data nodes exchange: batches of points and batches of alarm events.

A point is (timestamp, series key, value, quality). Nodes never pass single points around: a
poll of 125 registers is one :class:`Batch`, stored column-wise so that a transform is a list
comprehension over one column rather than an object allocation per point.

Timestamps are integer nanoseconds since the Unix epoch, UTC. A series key is the point's
identity in the historian: ``device/tag`` by default, or the unified-namespace path
(``enterprise/site/area/line/cell/device/tag``) once a rename node has mapped it.
"""

from __future__ import annotations

import enum
from typing import Literal

import msgspec

Value = float | int | bool | str


class Quality(enum.IntEnum):
    """OPC UA-style quality, reduced to the three classes every historian understands."""

    GOOD = 0
    UNCERTAIN = 1
    BAD = 2


QUALITY_NAMES: tuple[str, str, str] = ("good", "uncertain", "bad")


class Batch(msgspec.Struct, gc=False):
    """A column-wise batch of points; all four lists have the same length."""

    ts: list[int]
    series: list[str]
    values: list[Value]
    quality: list[int]

    def __len__(self) -> int:
        return len(self.ts)

    @classmethod
    def empty(cls) -> Batch:
        return cls([], [], [], [])

    def take(self, indices: list[int]) -> Batch:
        """The points at ``indices``, in that order."""
        ts, series, values, quality = self.ts, self.series, self.values, self.quality
        return Batch(
            [ts[i] for i in indices],
            [series[i] for i in indices],
            [values[i] for i in indices],
            [quality[i] for i in indices],
        )

    def extend(self, other: Batch) -> None:
        self.ts.extend(other.ts)
        self.series.extend(other.series)
        self.values.extend(other.values)
        self.quality.extend(other.quality)


class Event(msgspec.Struct, frozen=True, kw_only=True):
    """An alarm transition emitted by an analytics node."""

    ts: int
    series: str
    alarm: str
    state: Literal["raise", "clear"]
    severity: Literal["info", "warning", "critical"] = "warning"
    value: Value | None = None
    message: str = ""


class EventBatch(msgspec.Struct):
    events: list[Event]

    def __len__(self) -> int:
        return len(self.events)


def series_key(device: str, tag: str) -> str:
    """The default series key of a device's tag."""
    return f"{device}/{tag}"
