"""Shared machinery of the window nodes: per-series event-time windows with incremental aggregates.

Both window nodes cut time into *panes* aligned to epoch multiples of ``pane_ns`` and keep one
accumulator per (series, pane). A tumbling window is one pane (pane = window); a sliding window of
``window_s`` every ``slide_s`` is ``window_s / slide_s`` consecutive panes of ``slide_s``, merged
when the window closes. Accumulators are incremental -- count, sum, mean and M2 (the sum of
squared deviations, merged with Chan's parallel formula, numerically stable where a raw sum of
squares is not), min, max, first and last (by event time) and the worst quality -- so no window
ever stores its points.

Conventions (documented on the nodes):

* A window ``[end - window, end)`` is emitted with ``ts = end`` (the historian convention: an
  aggregate is stamped when its interval is complete).
* ``stddev`` is the *sample* standard deviation (n - 1); a window with a single value has no
  sample deviation and reports 0.0 with BAD quality.
* Watermarks are per series: ``max event time of the series - allowed_lateness``. A window closes
  when its series' watermark reaches its end, or when the wall clock (``on_timer``) passes
  ``end + allowed_lateness`` (so a quiet series still flushes). Per-series watermarks keep a device
  whose clock runs ahead from making every other device's points late.
* A point whose every window is already closed is dropped and counted (``late_points``); points
  in one batch are ingested before the watermark advances, so a batch is never late to itself.
* Non-numeric values (text, booleans) are ignored and counted (``non_numeric``); they still
  advance the watermark. Quality is aggregated as the worst quality of the window's values.
"""

from __future__ import annotations

import bisect
import itertools
import math
from collections.abc import Sequence
from typing import Any

from nodes.host import NO_OUTPUT, Data, NodeContext, Operator, Outputs
from nodes.points import Batch, Value

NEVER = -(2**63)  # "no time yet": below any timestamp
MAX_EMPTY_WINDOWS = 1000  # emit_empty: gap windows emitted per series and close, at most

# Accumulator layout (a list, for speed): index constants.
N, SUM, MEAN, M2, MIN, MAX, T0, V0, T1, V1, Q = range(11)
ACC_SIZE = 11

_NUMERIC_TYPES = frozenset({int, float})
_BAD = 2

# (series, pane start, times, values, qualities, times known to be in order)
_Group = tuple[str, int, list[int], list[Any], list[int], bool]


def _group_stats(
    vals: list[Any], tss: list[int], qs: list[int], in_order: bool, need_minmax: bool, need_var: bool
) -> list[Any]:
    """The accumulator of one group of numeric values, their times and qualities; ``in_order``:
    the times are known to be non-decreasing. Unrequested statistics are left at zero."""
    n = len(vals)
    total = sum(vals)
    if in_order:
        t0, t1, i0, i1 = tss[0], tss[-1], 0, n - 1
    else:
        t0 = min(tss)
        t1 = max(tss)
        i0 = tss.index(t0)
        i1 = n - 1 - tss[::-1].index(t1)
    if need_var:
        mean = total / n
        m2 = sum([(d := v - mean) * d for v in vals])
    else:
        mean = m2 = 0.0
    if need_minmax:
        lo, hi = min(vals), max(vals)
    else:
        lo = hi = 0
    return [n, total, mean, m2, lo, hi, t0, vals[i0], t1, vals[i1], max(qs)]


def _merge(acc: list[Any], other: Sequence[Any], need_var: bool) -> None:
    """Merge accumulator ``other`` into ``acc`` (earliest first / latest last wins; on equal
    times the one merged earlier keeps ``first`` and the one merged later gives ``last``)."""
    na, nb = acc[N], other[N]
    n = na + nb
    if need_var:
        delta = other[MEAN] - acc[MEAN]
        acc[M2] = acc[M2] + other[M2] + delta * delta * na * nb / n
        acc[MEAN] = acc[MEAN] + delta * nb / n
    acc[N] = n
    acc[SUM] = acc[SUM] + other[SUM]
    if other[MIN] < acc[MIN]:
        acc[MIN] = other[MIN]
    if other[MAX] > acc[MAX]:
        acc[MAX] = other[MAX]
    if other[T0] < acc[T0]:
        acc[T0], acc[V0] = other[T0], other[V0]
    if other[T1] >= acc[T1]:
        acc[T1], acc[V1] = other[T1], other[V1]
    if other[Q] > acc[Q]:
        acc[Q] = other[Q]


class WindowOperator(Operator):
    """Event-time windows per series; subclasses only choose the window and slide lengths."""

    def __init__(
        self,
        context: NodeContext,
        *,
        window_s: float,
        slide_s: float,
        aggregates: Sequence[str],
        allowed_lateness_s: float,
        emit_empty: bool,
    ) -> None:
        self._context = context
        pane = max(1, round(slide_s * 1e9))
        self._pane = pane
        self._k = max(1, round(window_s / slide_s))  # panes per window
        self._window = self._k * pane
        self._lateness = round(allowed_lateness_s * 1e9)
        self._aggregates = tuple(aggregates)
        self._need_var = "stddev" in self._aggregates
        self._need_minmax = "min" in self._aggregates or "max" in self._aggregates
        self._emit_empty = emit_empty
        # Output series suffixes: the series key itself with one aggregate, <series>/<agg> otherwise.
        self._suffixes = ("",) if len(self._aggregates) == 1 else tuple("/" + a for a in self._aggregates)
        self._panes: dict[str, dict[int, list[Any]]] = {}  # series -> pane start -> accumulator
        # series -> [max event time, closed until (window end), last emitted window end]
        self._series: dict[str, list[int]] = {}
        self._timer_closed = NEVER  # windows ending at or before this are closed by the wall clock
        self.timer_interval_s = min(1.0, max(0.01, slide_s / 2))

    # -- ingestion ---------------------------------------------------------------------------

    def process(self, port: str, data: Data, now_ns: int) -> Outputs:
        if not isinstance(data, Batch) or not data.ts:
            return NO_OUTPUT
        states = self._series
        panes_by_series = self._panes
        need_var, need_minmax = self._need_var, self._need_minmax
        window = self._window
        timer_closed = self._timer_closed
        touched: dict[str, int] = {}  # series -> latest event time in this batch
        late = 0
        non_numeric = 0
        for s, p, tss, vals, qs, in_order in self._groups(data):
            st = states.get(s)
            if st is None:
                st = states[s] = [NEVER, NEVER, NEVER]
            if p + window <= (st[1] if st[1] > timer_closed else timer_closed):
                late += len(tss)  # every window holding this pane has closed
                continue
            tmax = tss[-1] if in_order else max(tss)
            if tmax > touched.get(s, NEVER):
                touched[s] = tmax
            if not _NUMERIC_TYPES.issuperset(map(type, vals)):
                keep = [i for i, v in enumerate(vals) if v.__class__ in _NUMERIC_TYPES]
                non_numeric += len(vals) - len(keep)
                if not keep:
                    continue
                vals = [vals[i] for i in keep]
                tss = [tss[i] for i in keep]
                qs = [qs[i] for i in keep]
            stats = _group_stats(vals, tss, qs, in_order, need_minmax, need_var)
            panes = panes_by_series.get(s)
            if panes is None:
                panes = panes_by_series[s] = {}
            acc = panes.get(p)
            if acc is None:
                panes[p] = stats
            else:
                _merge(acc, stats, need_var)
        if late:
            self._context.count("late_points", late)
        if non_numeric:
            self._context.count("non_numeric", non_numeric)
        out = _Output()
        lateness, pane = self._lateness, self._pane
        for s, tmax in touched.items():
            st = states[s]
            if tmax > st[0]:
                st[0] = tmax
            watermark = st[0] - lateness
            closed = watermark - watermark % pane  # the last pane-aligned end <= watermark
            start = max(st[1], timer_closed)  # windows ending at or before this are already closed
            if closed > start:
                self._close(s, st, start, closed, out)
            elif closed > st[1]:
                st[1] = closed
        return out.outputs()

    def _groups(self, data: Batch) -> list[_Group]:
        """The batch's points grouped by (series, pane): (series, pane start, times, values,
        qualities, times-in-order). Runs of one series are cut with slices (the common layout:
        a device's poll, series after series), interleaved series go through one dict pass."""
        ts, series, values, quality = data.ts, data.series, data.values, data.quality
        n = len(ts)
        groups: list[_Group] = []
        if series.count(series[0]) == n:
            self._split(series[0], ts, values, quality, groups)
            return groups
        limit = n // 16 + 1
        runs = [(s, len(list(g))) for s, g in itertools.islice(itertools.groupby(series), limit + 1)]
        if len(runs) <= limit:
            a = 0
            for s, length in runs:
                b = a + length
                self._split(s, ts[a:b], values[a:b], quality[a:b], groups)
                a = b
            return groups
        by_series: dict[str, list[int]] = {}
        for i, s in enumerate(series):
            indices = by_series.get(s)
            if indices is None:
                by_series[s] = [i]
            else:
                indices.append(i)
        for s, idx in by_series.items():
            self._split(s, [ts[i] for i in idx], [values[i] for i in idx], [quality[i] for i in idx], groups)
        return groups

    def _split(self, s: str, tss: list[int], vals: list[Any], qs: list[int], groups: list[_Group]) -> None:
        """Cut one series' points into panes."""
        pane = self._pane
        n = len(tss)
        first, last = tss[0], tss[-1]
        p = first - first % pane
        ordered = n == 1 or sorted(tss) == tss
        if ordered and last - last % pane == p:
            groups.append((s, p, tss, vals, qs, True))  # one pane, in order (the usual poll)
            return
        if ordered:
            i = 0
            while i < n:
                t = tss[i]
                p = t - t % pane
                j = bisect.bisect_left(tss, p + pane, i)
                groups.append((s, p, tss[i:j], vals[i:j], qs[i:j], True))
                i = j
            return
        by_pane: dict[int, list[int]] = {}
        for i, t in enumerate(tss):
            p = t - t % pane
            indices = by_pane.get(p)
            if indices is None:
                by_pane[p] = [i]
            else:
                indices.append(i)
        for p, idx in by_pane.items():
            groups.append((s, p, [tss[i] for i in idx], [vals[i] for i in idx], [qs[i] for i in idx], False))

    # -- closing -----------------------------------------------------------------------------

    def on_timer(self, now_ns: int) -> Outputs:
        limit = now_ns - self._lateness
        closed = limit - limit % self._pane  # windows ending at or before this are closed
        if closed <= self._timer_closed:
            return NO_OUTPUT
        self._timer_closed = closed
        out = _Output()
        names = list(self._series) if self._emit_empty else list(self._panes)
        for s in names:
            st = self._series[s]
            if closed > st[1]:
                self._close(s, st, st[1], closed, out)
        return out.outputs()

    def _close(self, s: str, st: list[int], start: int, closed: int, out: _Output) -> None:
        """Emit the windows of ``s`` ending in (start, closed] and mark those ending up to ``closed`` closed."""
        st[1] = closed
        panes = self._panes.get(s)
        pane, window, k = self._pane, self._window, self._k
        ends: list[int] = []
        if panes:
            if k == 1:
                ends = sorted(p + pane for p in panes if start < p + pane <= closed)
            else:
                found: set[int] = set()
                for p in panes:
                    for j in range(1, k + 1):
                        e = p + j * pane
                        if e > closed:
                            break
                        if e > start:
                            found.add(e)
                ends = sorted(found)
        # emit_empty: every window after the series' first one, data or not (the latest
        # MAX_EMPTY_WINDOWS of a long gap).
        origin = st[2] if st[2] != NEVER else (ends[0] if ends else NEVER)
        if self._emit_empty and origin != NEVER:
            first = max(origin, start) + pane
            if first <= closed:
                first = max(first, closed - (MAX_EMPTY_WINDOWS - 1) * pane)
                ends = sorted(set(ends).union(range(first, closed + 1, pane)))
        need_var = self._need_var
        for e in ends:
            if panes is None:
                acc = None
            elif k == 1:
                acc = panes.get(e - pane)
            else:
                acc = None
                for p in range(e - window, e, pane):
                    part = panes.get(p)
                    if part is None:
                        continue
                    if acc is None:
                        acc = list(part)
                    else:
                        _merge(acc, part, need_var)
            if acc is not None:
                self._emit(s, e, acc, out)
                st[2] = e
            elif self._emit_empty:
                self._emit_nothing(s, e, out)
                st[2] = e
        if panes:
            for p in [p for p in panes if p + window <= closed]:
                del panes[p]
            if not panes:
                del self._panes[s]

    def _emit(self, s: str, end: int, acc: list[Any], out: _Output) -> None:
        n = acc[N]
        q = acc[Q]
        for agg, suffix in zip(self._aggregates, self._suffixes, strict=True):
            value: Value
            quality = q
            if agg == "avg":
                value = acc[SUM] / n
            elif agg == "min":
                value = acc[MIN]
            elif agg == "max":
                value = acc[MAX]
            elif agg == "sum":
                value = acc[SUM]
            elif agg == "count":
                value = n
            elif agg == "first":
                value = acc[V0]
            elif agg == "last":
                value = acc[V1]
            elif n >= 2:  # stddev, sample
                value = math.sqrt(max(0.0, acc[M2] / (n - 1)))
            else:
                value, quality = 0.0, _BAD
            out.add(end, s + suffix, value, quality)

    def _emit_nothing(self, s: str, end: int, out: _Output) -> None:
        for agg, suffix in zip(self._aggregates, self._suffixes, strict=True):
            if agg == "count":
                out.add(end, s + suffix, 0, 0)
            else:
                out.add(end, s + suffix, 0.0, _BAD)

    # -- state -------------------------------------------------------------------------------

    def snapshot(self) -> Any:
        return {
            "timer_closed": self._timer_closed,
            "series": [[s, *st] for s, st in self._series.items()],
            "panes": [[s, p, *acc] for s, panes in self._panes.items() for p, acc in panes.items()],
        }

    def restore(self, state: Any) -> None:
        if not isinstance(state, dict):
            return
        self._timer_closed = int(state.get("timer_closed", NEVER))
        self._series = {row[0]: [int(row[1]), int(row[2]), int(row[3])] for row in state.get("series", ())}
        self._panes = {}
        for row in state.get("panes", ()):
            s, p, acc = row[0], int(row[1]), list(row[2 : 2 + ACC_SIZE])
            self._panes.setdefault(s, {})[p] = acc
            self._series.setdefault(s, [NEVER, NEVER, NEVER])


class _Output:
    """Column lists of the points a call emits."""

    __slots__ = ("quality", "series", "ts", "values")

    def __init__(self) -> None:
        self.ts: list[int] = []
        self.series: list[str] = []
        self.values: list[Value] = []
        self.quality: list[int] = []

    def add(self, ts: int, series: str, value: Value, quality: int) -> None:
        self.ts.append(ts)
        self.series.append(series)
        self.values.append(value)
        self.quality.append(quality)

    def outputs(self) -> Outputs:
        if not self.ts:
            return NO_OUTPUT
        return (("out", Batch(self.ts, self.series, self.values, self.quality)),)
