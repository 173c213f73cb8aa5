"""The interpreter: runs one plan, step by step, with batches flowing through bounded paths.

Design:

* Every step is driven by a coroutine chain: a source's poll emits a batch, which is pushed
  through the synchronous operators downstream of it in the same task, until it reaches a sink.
  Nothing is queued per point; a hop between steps is one awaited call per batch.
* Backpressure: the only places a batch can wait are the outbox append of a durable sink and the
  lock of an async operator (the UDF pool). Both are awaited, so a slow branch slows the source
  feeding it — its polls are then recorded as late — and memory never grows without bound.
* Containment: an exception in a step is caught at the step, counted and reported on the
  step's health; the batch stops there and everything else keeps running.
* The runtime owns reconnection: sources and sinks raise ``NotConnected`` (or anything) and the
  step retries with exponential backoff and jitter.
* Replacement: a new plan takes over the behaviour objects of unchanged steps (same type,
  version and config), so connections and state carry over; removed sinks keep draining their
  backlog before their outbox readers are deleted.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import math
import random
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import msgspec
from nats.aio.msg import Msg

from nodes.host import (
    AsyncOperator,
    Behaviour,
    Credential,
    Data,
    Health,
    NotConnected,
    Operator,
    Outputs,
    PermanentError,
    RetryableError,
    Sink,
    Source,
)
from nodes.points import QUALITY_NAMES, EventBatch
from nodes.spec import NodeSpec
from proxus.catalog import Catalog
from proxus.plan import Plan, PlanStep
from runtime.context import DebugHandler, Publisher, StepContext, wall_clock_ns
from runtime.outbox import Outbox, OutboxReader, merge

log = logging.getLogger("proxus.runtime")

BACKOFF_INITIAL_S = 0.5
BACKOFF_MAX_S = 30.0


def backoff_delay(attempt: int, initial: float = BACKOFF_INITIAL_S, cap: float = BACKOFF_MAX_S) -> float:
    """Exponential backoff with full jitter in its upper half (so edges do not reconnect in lockstep)."""
    ceiling = min(cap, initial * float(2 ** min(attempt, 20)))
    return ceiling / 2 + random.random() * ceiling / 2


def delivery_key(msgs: list[Msg]) -> str:
    """A key that is the same for every retry of the same outbox messages."""
    ids = [
        str((m.headers or {}).get("Nats-Msg-Id") or (m.metadata.sequence.stream if m.metadata else "")) for m in msgs
    ]
    return hashlib.sha256("|".join(ids).encode()).hexdigest()[:32]


class PlanError(ValueError):
    """A plan cannot be run here (unknown node type, config no longer valid, behaviour missing)."""


@dataclass
class Host:
    """What a plan runner needs from the process hosting it."""

    edge_id: str
    data_dir: Path
    outbox: Outbox
    mode: Literal["edge", "run"] = "run"
    clock: Callable[[], int] = wall_clock_ns
    credentials: Mapping[str, Credential] = field(default_factory=dict)
    debug: DebugHandler | None = None
    publisher: Publisher | None = None
    settings: Mapping[str, str] = field(default_factory=dict)


def points_preview(data: Data, limit: int) -> list[dict[str, Any]]:
    """The first ``limit`` points (or events) of a batch as plain JSON-able dicts."""
    if isinstance(data, EventBatch):
        return [msgspec.to_builtins(e) for e in data.events[:limit]]
    n = min(limit, len(data.ts))
    return [
        {
            "ts": data.ts[i],
            "series": data.series[i],
            "value": data.values[i],
            "quality": QUALITY_NAMES[data.quality[i]] if 0 <= data.quality[i] < 3 else data.quality[i],
        }
        for i in range(n)
    ]


class Step:
    """A running plan step: behaviour, context and wiring."""

    def __init__(self, plan_step: PlanStep, spec: NodeSpec, behaviour: Behaviour, ctx: StepContext) -> None:
        self.plan_step = plan_step
        self.node_id = plan_step.node_id
        self.spec = spec
        self.behaviour = behaviour
        self.ctx = ctx
        self.metrics = ctx.metrics
        self.downstream: dict[str, list[tuple[Step, str]]] = {}
        self.tap = False  # live debug of this step's output
        self._failed = False
        self._lock: asyncio.Lock | None = asyncio.Lock() if isinstance(behaviour, AsyncOperator) else None

    # -- data path -------------------------------------------------------------------------------

    async def push(self, port: str, data: Data) -> None:
        m = self.metrics
        m.batches_in += 1
        m.points_in += len(data)
        now = self.ctx.now_ns()
        behaviour = self.behaviour
        try:
            if isinstance(behaviour, Operator):
                outputs = behaviour.process(port, data, now)
            elif isinstance(behaviour, AsyncOperator):
                assert self._lock is not None
                async with self._lock:  # keeps batches in order through the worker pool
                    outputs = await behaviour.process(port, data, now)
            else:
                raise PlanError(f"{self.spec.type_id} cannot receive data")
        except Exception as exc:
            self.fail(exc)
            return
        self.recover()
        await self.emit(outputs)

    async def emit(self, outputs: Outputs) -> None:
        for port, data in outputs:
            if not len(data):
                continue
            self.metrics.points_out += len(data)
            if self.tap:
                self.send_debug(data, port)
            for target, in_port in self.downstream.get(port, ()):
                await target.push(in_port, data)

    def send_debug(self, data: Data, port: str = "", limit: int = 100) -> None:
        self.ctx.debug(
            {
                "flow": self.ctx.flow_id,
                "node": self.node_id,
                "label": self.ctx.label,
                "port": port,
                "kind": "events" if isinstance(data, EventBatch) else "points",
                "count": len(data),
                "at": self.ctx.now_ns(),
                "points": points_preview(data, limit),
            }
        )

    # -- health ----------------------------------------------------------------------------------

    def fail(self, exc: BaseException, prefix: str = "") -> None:
        self.metrics.errors += 1
        text = f"{prefix}{type(exc).__name__}: {exc}" if str(exc) else f"{prefix}{type(exc).__name__}"
        if not self._failed:  # log the first of a run of failures (with a traceback if unexpected)
            expected = isinstance(exc, NotConnected | RetryableError | PermanentError | PlanError)
            self.ctx.log.error("%s", text, exc_info=None if expected else exc)
        self._failed = True
        self.ctx.set_health(Health.ERROR, text)

    def recover(self) -> None:
        if self._failed:
            self._failed = False
            self.ctx.set_health(Health.OK)


class SourceStep(Step):
    """Runs a source: connect with backoff, then poll on a drift-free schedule or wait for pushes."""

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        self.stopping = asyncio.Event()  # set: finish the current poll and its delivery, then end

    async def run(self) -> None:
        source = self.behaviour
        assert isinstance(source, Source)
        attempt = 0
        while not self.stopping.is_set():
            try:
                await source.connect()
                self.ctx.set_gauge("connected", 1)
                self.recover()  # clears only the runtime's own "not connected"; a source's warning stays
                attempt = 0
                if source.interval_s:
                    await self._poll(source, source.interval_s)
                    return
                else:
                    while True:
                        batch = await source.read()
                        if batch is not None:
                            await self.emit((("out", batch),))
            except asyncio.CancelledError:
                raise
            except NotConnected as exc:
                self.metrics.errors += 1
                self.ctx.set_health(Health.ERROR, f"not connected: {exc}")
                self._failed = True
            except Exception as exc:
                self.fail(exc, "not connected: ")
            self.ctx.set_gauge("connected", 0)
            self.ctx.count("reconnects")
            with contextlib.suppress(Exception):
                await source.close()
            await asyncio.sleep(backoff_delay(attempt))
            attempt += 1

    async def _poll(self, source: Source, interval: float) -> None:
        loop = asyncio.get_running_loop()
        due = loop.time()
        # A poll is late when it starts more than a tenth of its interval after its slot.
        tolerance = max(interval * 0.1, 0.002)
        while not self.stopping.is_set():
            now = loop.time()
            if now < due:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.stopping.wait(), due - now)
                if self.stopping.is_set():
                    return
                now = loop.time()
            if now - due > tolerance:
                self.ctx.count("late_polls")
            self.ctx.count("polls")
            batch = await source.read()
            if batch is not None and len(batch):
                await self.emit((("out", batch),))
            due += interval
            behind = loop.time() - due
            if behind > interval:  # skip slots we can no longer make, rather than bursting
                missed = math.floor(behind / interval)
                self.ctx.count("missed_polls", missed)
                due += missed * interval


class SinkStep(Step):
    """A sink: appends to the outbox (durable) or writes inline (debug), and drains its backlog."""

    def __init__(self, *args: Any, outbox: Outbox, route: Literal["local", "hub"], durable: bool) -> None:
        super().__init__(*args)
        self.outbox = outbox
        self.route = route
        self.durable = durable
        self.reader: OutboxReader | None = None
        self._stopping = asyncio.Event()

    async def push(self, port: str, data: Data) -> None:
        m = self.metrics
        m.batches_in += 1
        m.points_in += len(data)
        if self.tap:
            self.send_debug(data, port)
        if not self.durable:
            try:
                sink = self.behaviour
                assert isinstance(sink, Sink)
                await sink.write(data)
                m.points_out += len(data)
                self.recover()
            except Exception as exc:
                self.fail(exc)
            return
        attempt = 0
        while True:  # the outbox is local; while it is unavailable the pipeline waits (backpressure)
            try:
                await self.outbox.append(self.route, self.ctx.flow_id, self.node_id, data)
                self.ctx.count("appended", len(data))
                if attempt:
                    self.recover()
                return
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self.fail(exc, "outbox unavailable: ")
                await asyncio.sleep(backoff_delay(attempt, 0.1, 5.0))
                attempt += 1

    async def drain(self) -> None:
        """Deliver the backlog: fetch, merge, write, ack — retrying with backoff until it is taken."""
        sink = self.behaviour
        assert isinstance(sink, Sink)
        self.reader = reader = await self.outbox.reader(self.ctx.flow_id, self.node_id)
        connected = False
        attempt = 0
        # A pull returns as soon as anything is there; the timeout only bounds an idle wait (and
        # very short pulls make nats-py leave orphaned pull requests behind), so keep it at 1 s.
        fetch_wait_s = 1.0
        while not self._stopping.is_set():
            if not connected:
                try:
                    await sink.connect()
                    connected = True
                    self.ctx.set_gauge("connected", 1)
                except Exception as exc:
                    self.fail(exc, "not connected: ")
                    self.ctx.set_gauge("connected", 0)
                    await self._pause(backoff_delay(attempt))
                    attempt += 1
                    continue
            messages = await reader.fetch(max(1, min(1000, sink.max_batch_points)), fetch_wait_s)
            if not messages:
                continue
            groups = merge(messages)
            try:
                while groups:
                    data, msgs = groups[0]
                    connected, attempt = await self._deliver(sink, data, msgs, attempt)
                    groups.pop(0)
                    if not connected:
                        break
            finally:
                # Whatever was fetched and not delivered (stopped, cancelled, disconnected) goes back
                # at once, rather than after the ack wait: the next reader delivers it, in order.
                for _data, msgs in groups:
                    for msg in msgs:
                        with contextlib.suppress(Exception):
                            await msg.nak()

    async def _deliver(self, sink: Sink, data: Data, msgs: list[Msg], attempt: int) -> tuple[bool, int]:
        key = delivery_key(msgs)
        while True:
            try:
                await sink.write(data, key)
            except PermanentError as exc:
                self.ctx.count("dropped_points", len(data))
                self.fail(exc, "rejected by the destination (dropped): ")
                for msg in msgs:
                    await msg.term()
                return True, 0
            except Exception as exc:  # NotConnected, RetryableError, anything else: keep the data
                self.ctx.count("retries")
                if sink.max_attempts is not None and not isinstance(exc, NotConnected) and attempt >= sink.max_attempts:
                    self.ctx.count("dropped_points", len(data))
                    self.fail(exc, f"gave up after {attempt + 1} attempts (dropped): ")
                    for msg in msgs:
                        await msg.term()
                    return True, 0
                self.fail(exc, "delivery failed, will retry: ")
                if self._stopping.is_set():
                    for msg in msgs:
                        await msg.nak()
                    return False, attempt + 1
                # Retry this very group (same key, so a receiver can drop a duplicate a timeout
                # caused), keeping its messages ours meanwhile.
                for msg in msgs:
                    await msg.in_progress()
                await self._pause(backoff_delay(attempt))
                attempt += 1
                if isinstance(exc, NotConnected):
                    self.ctx.set_gauge("connected", 0)
                    with contextlib.suppress(Exception):
                        await sink.connect()
                        self.ctx.set_gauge("connected", 1)
                continue
            for msg in msgs:
                await msg.ack()
            self.metrics.points_out += len(data)
            self.recover()
            return True, 0

    async def _pause(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stopping.wait(), seconds)

    def stop_draining(self) -> None:
        self._stopping.set()


class PlanRunner:
    """One running plan. Build it, ``await start()``, later ``await stop()`` or replace it."""

    def __init__(self, plan: Plan, catalog: Catalog, host: Host) -> None:
        self.plan = plan
        self.catalog = catalog
        self.host = host
        self.steps: dict[str, Step] = {}
        self._tasks: list[asyncio.Task[None]] = []
        self._drainers: dict[str, asyncio.Task[None]] = {}
        self._sources: dict[str, asyncio.Task[None]] = {}
        self.started_ns = 0

    # -- construction ----------------------------------------------------------------------------

    def _context(self, step: PlanStep) -> StepContext:
        data_dir = self.host.data_dir / "nodes" / step.node_id
        return StepContext(
            node_id=step.node_id,
            label=step.label,
            edge_id=self.host.edge_id,
            flow_id=self.plan.flow_id,
            data_dir=data_dir,
            clock=self.host.clock,
            credentials=self.host.credentials,
            debug=self.host.debug,
            publisher=self.host.publisher,
            settings=self.host.settings,
        )

    def _build(self, step: PlanStep, previous: PlanRunner | None) -> Step:
        spec = self.catalog.get(step.type, step.type_version)
        if spec is None:
            raise PlanError(f"step {step.node_id}: this edge has no node type {step.type} v{step.type_version}")
        if spec.behaviour is None:
            raise PlanError(f"step {step.node_id}: node type {step.type} has no runtime behaviour")
        old = previous.steps.get(step.node_id) if previous is not None else None
        if old is not None and old.plan_step == msgspec.structs.replace(step, inputs=old.plan_step.inputs):
            behaviour, ctx = old.behaviour, old.ctx  # unchanged: keep connection, state and counters
            ctx.label = step.label or step.node_id
        else:
            try:
                config = msgspec.convert(step.config, spec.config)
            except msgspec.ValidationError as exc:
                raise PlanError(f"step {step.node_id}: invalid config: {exc}") from exc
            ctx = self._context(step)
            ctx.data_dir.mkdir(parents=True, exist_ok=True)
            behaviour = spec.behaviour(config, ctx)
        if isinstance(behaviour, Source):
            return SourceStep(step, spec, behaviour, ctx)
        if isinstance(behaviour, Sink):
            route: Literal["local", "hub"] = "hub" if behaviour.hub_delivered and self.host.mode == "edge" else "local"
            return SinkStep(
                step,
                spec,
                behaviour,
                ctx,
                outbox=self.host.outbox,
                route=route,
                durable=behaviour.durable,
            )
        return Step(step, spec, behaviour, ctx)

    def build(self, previous: PlanRunner | None = None) -> None:
        """Create (or take over) every step's behaviour and wire them; raises PlanError."""
        for plan_step in self.plan.steps:
            self.steps[plan_step.node_id] = self._build(plan_step, previous)
        for step in self.steps.values():
            for wire in step.plan_step.inputs:
                source = self.steps[wire.source]
                source.downstream.setdefault(wire.source_port, []).append((step, wire.port))

    # -- lifecycle -------------------------------------------------------------------------------

    async def start(self, previous: PlanRunner | None = None) -> None:
        """Build, stop what the previous runner ran, and run; the previous plan keeps running on error."""
        self.build(previous)
        if previous is not None:
            await previous.stop(
                keep={
                    n
                    for n, s in self.steps.items()
                    if previous.steps.get(n) is not None and previous.steps[n].behaviour is s.behaviour
                }
            )
        self.started_ns = self.host.clock()
        for step in self.steps.values():
            if isinstance(step, SourceStep):
                self._sources[step.node_id] = self._spawn(step.run(), f"source {step.node_id}")
            elif isinstance(step, SinkStep) and step.durable and step.route == "local":
                self._drainers[step.node_id] = self._spawn(step.drain(), f"sink {step.node_id}")
            interval = getattr(step.behaviour, "timer_interval_s", None)
            if interval:
                self._spawn(self._timer(step, interval), f"timer {step.node_id}")

    def _spawn(self, coro: Any, name: str) -> asyncio.Task[None]:
        task: asyncio.Task[None] = asyncio.create_task(coro, name=f"{self.plan.plan_id} {name}")
        self._tasks.append(task)
        return task

    async def _timer(self, step: Step, interval: float) -> None:
        behaviour = step.behaviour
        loop = asyncio.get_running_loop()
        due = loop.time() + interval
        while True:
            await asyncio.sleep(max(0.0, due - loop.time()))
            due += interval
            try:
                if isinstance(behaviour, AsyncOperator):
                    outputs = await behaviour.on_timer(step.ctx.now_ns())
                elif isinstance(behaviour, Operator):
                    outputs = behaviour.on_timer(step.ctx.now_ns())
                else:
                    return
            except Exception as exc:
                step.fail(exc, "timer: ")
                continue
            await step.emit(outputs)

    async def stop(self, keep: set[str] | None = None, drain_timeout_s: float = 5.0) -> None:
        """Stop sources (after their current poll is delivered), timers and drainers; close behaviours not kept."""
        keep = keep or set()
        sources = {self._sources[n] for n in self._sources}
        for step in self.steps.values():
            if isinstance(step, SourceStep):
                step.stopping.set()
        if sources:  # a poll in flight reaches the outbox unless the pipeline is stuck
            await asyncio.wait(sources, timeout=drain_timeout_s)
        for step in self.steps.values():
            if isinstance(step, SinkStep):
                step.stop_draining()
        drainers = set(self._drainers.values())
        for task in self._tasks:
            if task not in drainers:
                task.cancel()
        if drainers:
            _done, pending = await asyncio.wait(drainers, timeout=drain_timeout_s)
            for task in pending:
                task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks.clear()
        self._drainers.clear()
        self._sources.clear()
        for node_id, step in self.steps.items():
            if isinstance(step, SinkStep) and step.reader is not None:
                with contextlib.suppress(Exception):
                    await step.reader.close()
            if node_id not in keep:
                try:
                    await step.behaviour.close()
                except Exception as exc:
                    log.warning("closing %s: %s", node_id, exc)

    async def drain_and_forget(self, node_ids: set[str], timeout_s: float) -> None:
        """After replacement: deliver what removed sinks still hold, then delete their readers."""
        for node_id in node_ids:
            step = self.steps.get(node_id)
            if not isinstance(step, SinkStep) or not step.durable or step.route != "local":
                continue
            step._stopping = asyncio.Event()
            task = asyncio.create_task(step.drain())
            deadline = time.monotonic() + timeout_s
            try:
                while time.monotonic() < deadline:
                    await asyncio.sleep(0.2)
                    if step.reader is not None and await step.reader.pending() == 0:
                        break
            finally:
                step.stop_draining()
                await asyncio.wait({task}, timeout=5)
                task.cancel()
                if step.reader is not None:
                    with contextlib.suppress(Exception):
                        await step.reader.close()
                    await step.outbox.delete_reader(step.reader.durable)
                with contextlib.suppress(Exception):
                    await step.behaviour.close()

    def set_taps(self, node_ids: set[str]) -> None:
        for node_id, step in self.steps.items():
            step.tap = node_id in node_ids

    def status(self) -> dict[str, Any]:
        return {
            "plan_id": self.plan.plan_id,
            "flow_id": self.plan.flow_id,
            "hash": self.plan.hash,
            "started_ns": self.started_ns,
            "nodes": {node_id: step.metrics.as_dict() for node_id, step in self.steps.items()},
        }


def json_line(message: dict[str, Any]) -> bytes:
    return msgspec.json.encode(message) + b"\n"


__all__ = ["Host", "PlanError", "PlanRunner", "backoff_delay", "json_line", "points_preview"]
