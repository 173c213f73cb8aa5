"""Shared alarm machinery of the analytics nodes: a per-series raise/clear state machine.

The caller evaluates its condition for each point and tells the machine, per point, which limit
(if any) is violated (``side``: a non-zero int chosen by the caller, e.g. +1 high, -1 low) and
whether the active alarm's clear condition holds (the caller applies the hysteresis, since only it
knows the limits). The machine applies the delays:

* raise: the violation must hold on every point for ``on_delay`` of *event time* (the point's
  timestamp minus the timestamp of the first violating point); a non-violating point, or a
  violation of another limit, restarts the wait. With no delay the first violating point raises.
* clear: likewise, the clear condition must hold for ``off_delay`` of event time.
* After a clear, the same point may start (or, without delay, raise) a new alarm, e.g. a value
  that falls from above the high limit to below the low one.
* :meth:`AlarmMachine.expire` (the nodes' ``on_timer``) fires a pending raise or clear whose
  delay has passed on the wall clock since the point that started it *arrived*, with no point
  contradicting it since: report-by-exception sources (a deadband upstream) may send nothing
  more while a value stays out of limits. The event is stamped ``start + delay`` in event time.
  Measuring the wait from arrival (not from the point's own timestamp) keeps a device whose clock
  lags from having short spikes alarmed before the points that end them arrive.

Points are taken in batch order; values of BAD quality are ignored by the nodes before they get
here (a failed read says nothing about the process).
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from typing import Any, Literal

from nodes.points import Event

State = Literal["raise", "clear"]
# A transition: (series, event time, "raise" | "clear", side, value)
Transition = tuple[str, int, State, int, float]

# Per-series state layout (a list, for speed).
ACTIVE, SIDE, PENDING_TS, PENDING_ARRIVAL, PENDING_SIDE, VALUE = range(6)
NONE = -1  # no pending transition (PENDING_TS)


class AlarmMachine:
    """Hysteresis-agnostic raise/clear state with on/off delays, per series."""

    __slots__ = ("off_delay", "on_delay", "states")

    def __init__(self, on_delay_ns: int = 0, off_delay_ns: int = 0) -> None:
        self.on_delay = on_delay_ns
        self.off_delay = off_delay_ns
        # series -> [active (0/1), active side, pending since (event ns) or NONE, pending arrival
        #            (wall ns), pending side, last value]
        self.states: dict[str, list[Any]] = {}

    def state(self, series: str) -> list[Any]:
        st = self.states.get(series)
        if st is None:
            st = self.states[series] = [0, 0, NONE, 0, 0, 0.0]
        return st

    def step(
        self, series: str, st: list[Any], ts: int, value: float, side: int, clear: bool, now_ns: int
    ) -> list[Transition]:
        """Feed one point: ``side`` the violated limit (0: none), ``clear`` whether the active
        alarm's clear condition holds. Returns the transitions it causes (usually none)."""
        st[VALUE] = value
        out: list[Transition] = []
        if st[ACTIVE]:
            if not clear:
                st[PENDING_TS] = NONE
                return out
            if st[PENDING_TS] == NONE:
                st[PENDING_TS], st[PENDING_ARRIVAL], st[PENDING_SIDE] = ts, now_ns, st[SIDE]
            if ts - st[PENDING_TS] < self.off_delay:
                return out
            out.append((series, ts, "clear", st[SIDE], value))
            st[ACTIVE], st[PENDING_TS] = 0, NONE
        if not side:
            st[PENDING_TS] = NONE
            return out
        if st[PENDING_TS] == NONE or st[PENDING_SIDE] != side:
            st[PENDING_TS], st[PENDING_ARRIVAL], st[PENDING_SIDE] = ts, now_ns, side
        if ts - st[PENDING_TS] >= self.on_delay:
            out.append((series, ts, "raise", side, value))
            st[ACTIVE], st[SIDE], st[PENDING_TS] = 1, side, NONE
        return out

    def expire(self, now_ns: int) -> list[Transition]:
        """Pending transitions whose delay has passed on the wall clock (see the module doc)."""
        out: list[Transition] = []
        for series, st in self.states.items():
            if st[PENDING_TS] == NONE:
                continue
            delay = self.off_delay if st[ACTIVE] else self.on_delay
            if now_ns - st[PENDING_ARRIVAL] < delay:
                continue
            ts = st[PENDING_TS] + delay
            if st[ACTIVE]:
                out.append((series, ts, "clear", st[SIDE], st[VALUE]))
                st[ACTIVE] = 0
            else:
                out.append((series, ts, "raise", st[PENDING_SIDE], st[VALUE]))
                st[ACTIVE], st[SIDE] = 1, st[PENDING_SIDE]
            st[PENDING_TS] = NONE
        return out

    def snapshot(self) -> list[list[Any]]:
        return [[series, *st] for series, st in self.states.items()]

    def restore(self, rows: Any) -> None:
        if isinstance(rows, list):
            self.states = {row[0]: list(row[1:7]) for row in rows if isinstance(row, list) and len(row) >= 7}


def series_groups(series: list[str]) -> list[tuple[str, Sequence[int]]]:
    """The batch indices of each series, in batch order within a series: ranges for runs of one
    series (the usual layout of a poll), one dict pass when series are interleaved."""
    n = len(series)
    if not n:
        return []
    if series.count(series[0]) == n:
        return [(series[0], range(n))]
    limit = n // 16 + 1
    runs = [(s, len(list(g))) for s, g in itertools.islice(itertools.groupby(series), limit + 1)]
    if len(runs) <= limit:
        groups: list[tuple[str, Sequence[int]]] = []
        a = 0
        for s, length in runs:
            groups.append((s, range(a, a + length)))
            a += length
        return groups
    by_series: dict[str, list[int]] = {}
    for i, s in enumerate(series):
        indices = by_series.get(s)
        if indices is None:
            by_series[s] = [i]
        else:
            indices.append(i)
    return list(by_series.items())


def timer_interval(*delays_s: float) -> float | None:
    """How often a node with these delays needs ``on_timer``: None without delays."""
    positive = [d for d in delays_s if d > 0]
    if not positive:
        return None
    return min(1.0, max(0.05, min(positive) / 4))


def make_event(
    transition: Transition,
    *,
    alarm: str,
    severity: Literal["info", "warning", "critical"],
    message: str,
) -> Event:
    series, ts, state, _side, value = transition
    return Event(ts=ts, series=series, alarm=alarm, state=state, severity=severity, value=value, message=message)
