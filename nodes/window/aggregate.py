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
from collections.abc import Iterable, Sequence
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


# Per-series record layout (a list, for speed).
MAX_TS, CLOSED, EMITTED, PANES = range(4)


def _stride(series: list[str]) -> int:
    """0 when the batch holds one series; the period w when it repeats one sequence of series
    (``series[i] == series[i % w]``: polls of the same tags one after the other); else its length."""
    n = len(series)
    if series.count(series[0]) == n:
        return 0
    try:
        w = series.index(series[0], 1)
    except ValueError:
        return n
    return w if series[w:] == series[: n - w] else n


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
        self._need_first = "first" in self._aggregates
        self._need_last = "last" in self._aggregates
        self._emit_empty = emit_empty
        # Output series suffixes: the series key itself with one aggregate, <series>/<agg> otherwise.
        self._suffixes = ("",) if len(self._aggregates) == 1 else tuple("/" + a for a in self._aggregates)
        # series -> [max event time, closed until (a window end), last emitted window end,
        #            {pane start: accumulator}]
        self._series: dict[str, list[Any]] = {}
        self._open: dict[tuple[str, int], list[Any]] = {}  # (series, pane start) -> accumulator
        self._closed_counts: dict[int, int] = {}  # CLOSED value -> how many series have it
        self._timer_closed = NEVER  # windows ending at or before this are closed by the wall clock
        self.timer_interval_s = min(1.0, max(0.01, slide_s / 2))

    # -- ingestion ---------------------------------------------------------------------------

    def process(self, port: str, data: Data, now_ns: int) -> Outputs:
        if not isinstance(data, Batch) or not data.ts:
            return NO_OUTPUT
        ts, series = data.ts, data.series
        n = len(ts)
        candidates: Iterable[str] = ()  # series whose windows may close now
        stride = _stride(series)
        if stride == 0 or n >= 16 * stride or n >= 32 * len(set(series)):
            late, non_numeric = self._ingest_groups(data, stride)  # updates the series' latest times
            candidates = dict.fromkeys(series)
        else:  # few points per series (a poll of many tags): one pass, point by point
            late, non_numeric = self._ingest_points(data)
            # Skip the per-series work unless some series may close a window: the common case.
            if max(ts) >= min(self._closed_counts, default=NEVER) + self._pane + self._lateness:
                candidates = self._latest_times(ts, series)
        if late:
            self._context.count("late_points", late)
        if non_numeric:
            self._context.count("non_numeric", non_numeric)
        out = _Output()
        lateness, pane, timer_closed = self._lateness, self._pane, self._timer_closed
        records = self._series
        for s in candidates:
            rec = records.get(s)
            if rec is None:
                continue
            watermark = rec[MAX_TS] - lateness
            closed = watermark - watermark % pane  # the last pane-aligned end <= watermark
            if closed <= rec[CLOSED]:
                continue
            start = max(rec[CLOSED], timer_closed)  # windows ending at or before this are already closed
            if closed > start:
                self._close(s, rec, start, closed, out)
            else:
                self._set_closed(rec, closed)
        return out.outputs()

    def _latest_times(self, ts: list[int], series: list[str]) -> dict[str, int]:
        """Record each series' latest event time of the batch; returns them."""
        if sorted(ts) == ts:
            latest = dict(zip(series, ts, strict=True))  # in time order: the last time is the latest
        else:
            latest = {}
            for s, t in zip(series, ts, strict=True):
                if t > latest.get(s, NEVER):
                    latest[s] = t
        records = self._series
        for s, t in latest.items():
            rec = records.get(s)
            if rec is not None and t > rec[MAX_TS]:
                rec[MAX_TS] = t
        return latest

    def _record(self, s: str) -> list[Any]:
        rec = self._series.get(s)
        if rec is None:
            rec = self._series[s] = [NEVER, NEVER, NEVER, {}]
            self._closed_counts[NEVER] = self._closed_counts.get(NEVER, 0) + 1
        return rec

    def _set_closed(self, rec: list[Any], closed: int) -> None:
        counts = self._closed_counts
        old = rec[CLOSED]
        left = counts[old] - 1
        if left:
            counts[old] = left
        else:
            del counts[old]
        counts[closed] = counts.get(closed, 0) + 1
        rec[CLOSED] = closed

    def _open_pane(self, s: str, p: int, acc: list[Any]) -> bool:
        """Open a pane with accumulator ``acc``, unless every window holding it has closed
        (then returns False: its points are late)."""
        rec = self._series.get(s)
        if rec is None:
            rec = self._record(s)
        if p + self._window <= max(rec[CLOSED], self._timer_closed):
            return False
        rec[PANES][p] = acc
        self._open[(s, p)] = acc
        return True

    def _ingest_points(self, data: Batch) -> tuple[int, int]:
        """Incremental per-point accumulation (Welford for the variance)."""
        ts, series, values, quality = data.ts, data.series, data.values, data.quality
        need_var, need_minmax = self._need_var, self._need_minmax
        need_first, need_last = self._need_first, self._need_last
        non_numeric = 0
        if not _NUMERIC_TYPES.issuperset(map(type, values)):
            keep = [i for i, v in enumerate(values) if v.__class__ in _NUMERIC_TYPES]
            non_numeric = len(ts) - len(keep)
            ts, series = [ts[i] for i in keep], [series[i] for i in keep]
            values, quality = [values[i] for i in keep], [quality[i] for i in keep]
            self._latest_times(data.ts, data.series)  # non-numeric points still advance time
        pane = self._pane
        starts = [t - t % pane for t in ts]
        get = self._open.get
        late = 0
        v: Any
        for key, v, t, q in zip(zip(series, starts, strict=True), values, ts, quality, strict=True):
            acc = get(key)
            if acc is None:
                if not self._open_pane(key[0], key[1], [1, v, v, 0.0, v, v, t, v, t, v, q]):
                    late += 1
                continue
            acc[N] += 1
            acc[SUM] += v
            if need_var:
                mean = acc[MEAN]
                d = v - mean
                mean += d / acc[N]
                acc[MEAN] = mean
                acc[M2] += d * (v - mean)
            if need_minmax:
                if v < acc[MIN]:
                    acc[MIN] = v
                elif v > acc[MAX]:
                    acc[MAX] = v
            if need_first and t < acc[T0]:
                acc[T0], acc[V0] = t, v
            if need_last and t >= acc[T1]:
                acc[T1], acc[V1] = t, v
            if q > acc[Q]:
                acc[Q] = q
        return late, non_numeric

    def _ingest_groups(self, data: Batch, stride: int) -> tuple[int, int]:
        """Accumulation per (series, pane) group, each group's statistics computed by C builtins."""
        need_var, need_minmax = self._need_var, self._need_minmax
        window, timer_closed = self._window, self._timer_closed
        late = non_numeric = 0
        for s, p, tss, vals, qs, in_order in self._groups(data, stride):
            rec = self._record(s)
            tmax = tss[-1] if in_order else max(tss)
            if tmax > rec[MAX_TS]:
                rec[MAX_TS] = tmax
            acc = rec[PANES].get(p)
            if acc is None and p + window <= max(rec[CLOSED], timer_closed):
                late += len(tss)  # every window holding this pane has closed
                continue
            if not _NUMERIC_TYPES.issuperset(map(type, vals)):
                keep = [i for i, v in enumerate(vals) if v.__class__ in _NUMERIC_TYPES]
                non_numeric += len(vals) - len(keep)
                if not keep:
                    continue
                vals = [vals[i] for i in keep]
                tss = [tss[i] for i in keep]
                qs = [qs[i] for i in keep]
            stats = _group_stats(vals, tss, qs, in_order, need_minmax, need_var)
            if acc is None:
                self._open_pane(s, p, stats)
            else:
                _merge(acc, stats, need_var)
        return late, non_numeric

    def _groups(self, data: Batch, stride: int) -> list[_Group]:
        """The batch's points grouped by (series, pane): (series, pane start, times, values,
        qualities, times-in-order). A batch of one series, of runs of one series (a device's
        poll, series after series) or of a repeating sequence of series (poll after poll of the
        same tags) is cut with slices; other layouts go through one dict pass."""
        ts, series, values, quality = data.ts, data.series, data.values, data.quality
        n = len(ts)
        groups: list[_Group] = []
        if stride == 0:
            self._split(series[0], ts, values, quality, groups)
            return groups
        if stride < n:
            for j in range(stride):
                self._split(series[j], ts[j::stride], values[j::stride], quality[j::stride], groups)
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
        emit_empty = self._emit_empty
        for s, rec in self._series.items():
            if closed > rec[CLOSED]:
                if rec[PANES] or emit_empty:
                    self._close(s, rec, rec[CLOSED], closed, out)
                else:  # nothing to emit; keeps the per-batch "may anything close?" test tight
                    self._set_closed(rec, closed)
        return out.outputs()

    def _close(self, s: str, rec: list[Any], start: int, closed: int, out: _Output) -> None:
        """Emit the windows of ``s`` ending in (start, closed] and mark those ending up to ``closed`` closed."""
        self._set_closed(rec, closed)
        panes: dict[int, list[Any]] = rec[PANES]
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
        origin = rec[EMITTED] if rec[EMITTED] != NEVER else (ends[0] if ends else NEVER)
        if self._emit_empty and origin != NEVER:
            first = max(origin, start) + pane
            if first <= closed:
                first = max(first, closed - (MAX_EMPTY_WINDOWS - 1) * pane)
                ends = sorted(set(ends).union(range(first, closed + 1, pane)))
        need_var = self._need_var
        for e in ends:
            if k == 1:
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
                rec[EMITTED] = e
            elif self._emit_empty:
                self._emit_nothing(s, e, out)
                rec[EMITTED] = e
        if panes:
            for p in [p for p in panes if p + window <= closed]:
                del panes[p]
                del self._open[(s, p)]

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
            "series": [[s, rec[MAX_TS], rec[CLOSED], rec[EMITTED]] for s, rec in self._series.items()],
            "panes": [[s, p, *acc] for s, rec in self._series.items() for p, acc in rec[PANES].items()],
        }

    def restore(self, state: Any) -> None:
        if not isinstance(state, dict):
            return
        self._timer_closed = int(state.get("timer_closed", NEVER))
        self._series = {}
        self._open = {}
        self._closed_counts = {}
        for row in state.get("series", ()):
            rec = self._record(row[0])
            rec[MAX_TS] = int(row[1])
            self._set_closed(rec, int(row[2]))
            rec[EMITTED] = int(row[3])
        for row in state.get("panes", ()):
            s, p = row[0], int(row[1])
            acc = list(row[2 : 2 + ACC_SIZE])
            self._record(s)[PANES][p] = acc
            self._open[(s, p)] = acc


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
