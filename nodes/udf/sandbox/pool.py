"""The runtime side of the UDF sandbox: a pool of worker processes, driven with asyncio.

Each of ``workers`` slots holds one worker process (see ``worker.py``), started with
:func:`asyncio.create_subprocess_exec` as a fresh ``python -I -S`` interpreter with an empty
environment, an empty temporary working directory and a new session. All I/O is asynchronous, so
a busy, stuck or dying worker never blocks the event loop or other steps.

* One request per batch. A call takes the lowest-numbered idle slot (so with sequential calls one
  worker, and one state, does all the work); concurrent calls use the other slots and their
  results are returned in call order.
* A per-batch timeout (``timeout_s`` plus a small transfer allowance) kills the worker: the batch
  is dropped and the slot restarts at once from its last state snapshot.
* A worker that dies (signal, MemoryError it could not survive, RLIMIT_CPU, protocol garbage) is
  restarted with backoff (0 s, then 0.25 s doubling to 10 s while it keeps failing; reset by a
  good batch); calls during the backoff are dropped as ``unavailable``.
* A worker whose code is refused or fails to load (deterministic) makes the pool ``broken``:
  :meth:`WorkerPool.start` raises :class:`UdfStartError`, later calls report the same message.
* Every response is read with a byte limit (``output too large`` above it) and decoded into the
  strict types of ``protocol.py``; the columns must have equal length and at most
  ``10 x points in + 10,000`` points.

State: the worker keeps the ``state`` dict between calls. The pool holds a snapshot per slot (plain
JSON-like data), refreshed by piggybacking on a call at most every ``state_sync_s`` seconds (one
round trip less than asking separately; encoding a small dict costs microseconds), before a
planned restart, and on :meth:`WorkerPool.sync_state` / :meth:`WorkerPool.close`.
:meth:`WorkerPool.snapshot` returns these (so it may be up to ``state_sync_s`` old unless synced);
a restarted worker resumes from its slot's snapshot, so a crash or timeout loses at most the
changes since the last sync. Each slot has its own state: with ``workers > 1`` and concurrent
calls, batches spread over workers that do not share state.

CPU: RLIMIT_CPU in the worker is cumulative, so it is a backstop (``cpu_budget_s``), and the pool
recycles a worker (state synced first) once it has used 80% of it minus the longest timeout.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import pwd
import shutil
import signal
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final, Literal

import msgspec

from nodes.points import Batch
from nodes.udf.sandbox import protocol
from nodes.udf.sandbox.protocol import (
    HEADER,
    MAX_RESPONSE_BYTES,
    Error,
    Failed,
    GetState,
    Init,
    Process,
    Ready,
    Response,
    Result,
    StateReply,
)

__all__ = ["Outcome", "PoolSettings", "UdfStartError", "WorkerPool"]

_ROOT: Final = str(Path(__file__).resolve().parents[3])  # the directory holding the `nodes` package
_SITE: Final = str(Path(msgspec.__file__).resolve().parents[1])  # where msgspec is installed
# The worker's entry point: isolated mode ignores PYTHONPATH and the script directory, so the two
# directories it needs come as arguments.
_BOOTSTRAP: Final = "import sys; sys.path[0:0] = sys.argv[1:3]; from nodes.udf.sandbox.worker import main; main()"
TRANSFER_ALLOWANCE_S: Final = 0.05  # added to timeout_s for pipes and (de)coding
TRANSFER_PER_POINT_S: Final = 2e-6
_BACKOFF_FIRST_S: Final = 0.25
_BACKOFF_MAX_S: Final = 10.0
_CLOSE_GRACE_S: Final = 1.0

OutcomeKind = Literal["ok", "timeout", "crash", "exception", "violation", "output", "memory", "unavailable", "broken"]


class UdfStartError(Exception):
    """The code was refused or failed to load in the worker (a deterministic, permanent failure)."""


class _WorkerDied(Exception):
    """The worker exited, closed its pipes or broke the protocol."""


class _OutputTooLarge(_WorkerDied):
    """A reply frame over the byte limit (the worker checks first: only a subverted worker sends one)."""


_STOPPED: Final = "the worker stopped"


class _NotReady(Exception):
    """The slot has no worker and cannot start one right now (backoff, or broken)."""

    def __init__(self, kind: OutcomeKind, message: str) -> None:
        super().__init__(message)
        self.kind: OutcomeKind = kind


@dataclass(frozen=True, kw_only=True)
class PoolSettings:
    code: str
    timeout_s: float = 1.0
    memory_mb: int = 256
    workers: int = 1
    state_init: dict[str, Any] = field(default_factory=dict)
    cpu_budget_s: int = 600
    start_timeout_s: float = 20.0
    state_sync_s: float = 1.0
    max_output_bytes: int = MAX_RESPONSE_BYTES
    # False only in tests that exercise the worker's runtime layers without the AST policy.
    check_policy: bool = True


@dataclass
class Outcome:
    """What became of one batch: ``batch`` is the output, or None when the batch was dropped."""

    batch: Batch | None
    kind: OutcomeKind = "ok"
    message: str = ""
    line: int | None = None
    log: list[str] = field(default_factory=list)
    warning: str = ""  # the batch went through, but something needs attention (state not saved)
    restarted: bool = False  # the worker was killed and will be restarted


def _unprivileged_ids() -> tuple[int, int]:
    """The user the worker drops to when the runtime is root (nobody), else (-1, -1)."""
    if os.geteuid() != 0:
        return -1, -1
    try:
        entry = pwd.getpwnam("nobody")
        return entry.pw_uid, entry.pw_gid
    except KeyError:
        return 65534, 65534


def _exit_text(code: int | None) -> str:
    if code is None:
        return "no exit status"
    if code < 0:
        with contextlib.suppress(ValueError):
            return f"killed by {signal.Signals(-code).name}"
        return f"killed by signal {-code}"
    return f"exit status {code}"


class _WorkerProcess:
    """One running worker and its pipes."""

    def __init__(self, proc: asyncio.subprocess.Process, workdir: str) -> None:
        self.proc = proc
        self.workdir = workdir
        self.stderr_tail = b""
        self._stderr_task = asyncio.create_task(self._drain_stderr())
        self.cpu_s = 0.0

    async def _drain_stderr(self) -> None:
        stream = self.proc.stderr
        assert stream is not None
        with contextlib.suppress(Exception):
            while chunk := await stream.read(4096):
                self.stderr_tail = (self.stderr_tail + chunk)[-2000:]

    @property
    def alive(self) -> bool:
        return self.proc.returncode is None

    async def send(self, data: bytes) -> None:
        stdin = self.proc.stdin
        assert stdin is not None
        try:
            stdin.write(data)
            await stdin.drain()
        except (BrokenPipeError, ConnectionResetError, RuntimeError) as e:
            raise _WorkerDied(f"the worker closed its input ({e.__class__.__name__})") from None

    async def receive(self, max_bytes: int) -> bytes:
        stdout = self.proc.stdout
        assert stdout is not None
        try:
            (length,) = HEADER.unpack(await stdout.readexactly(HEADER.size))
            if length > max_bytes:
                raise _OutputTooLarge(f"output too large: {length / 2**20:.1f} MiB (limit {max_bytes // 2**20} MiB)")
            return await stdout.readexactly(length)
        except asyncio.IncompleteReadError:
            raise _WorkerDied(_STOPPED) from None

    def kill(self) -> None:
        # os.kill, not Popen.kill: Popen polls first, and polling a worker that has just exited
        # would reap it behind asyncio's child watcher (which then reports exit status 255).
        if self.proc.returncode is None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(self.proc.pid, signal.SIGKILL)

    async def reap(self, grace_s: float = _CLOSE_GRACE_S) -> str:
        """Wait for the exit (killing after ``grace_s``), release everything; the exit as text."""
        try:
            await asyncio.wait_for(self.proc.wait(), grace_s)
        except TimeoutError:
            self.kill()
            await self.proc.wait()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stderr_task, 1.0)
        self._stderr_task.cancel()
        stdin = self.proc.stdin
        if stdin is not None:
            stdin.close()
        shutil.rmtree(self.workdir, ignore_errors=True)
        text = _exit_text(self.proc.returncode)
        last = self.stderr_tail.decode("utf-8", "replace").strip().splitlines()
        if last:
            text += f": {last[-1][:300]}"
        return text

    async def close(self) -> None:
        stdin = self.proc.stdin
        if stdin is not None and self.alive:
            with contextlib.suppress(Exception):
                stdin.close()  # the worker exits on end of input
        await self.reap()


@dataclass
class _Slot:
    index: int
    state: dict[str, Any]  # the last good snapshot
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    worker: _WorkerProcess | None = None
    starting: asyncio.Task[_WorkerProcess] | None = None
    restore_pending: bool = False  # send ``state`` to the running worker with the next call
    synced_at: float = float("-inf")
    failures: int = 0  # consecutive crashes, for the backoff
    not_before: float = 0.0


class WorkerPool:
    """``workers`` sandboxed worker processes running one piece of UDF code."""

    def __init__(self, settings: PoolSettings) -> None:
        self.settings = settings
        self._slots = [_Slot(i, dict(settings.state_init)) for i in range(settings.workers)]
        self._idle: asyncio.PriorityQueue[int] | None = None
        self._tail: asyncio.Future[None] | None = None
        self._broken = ""
        self._closed = False
        self._encoder = msgspec.msgpack.Encoder()
        self._decoder: msgspec.msgpack.Decoder[Response] = msgspec.msgpack.Decoder(Response)
        self._uid, self._gid = _unprivileged_ids()
        self.restarts = 0
        self.baseline_mb = 0.0

    # -- lifecycle -------------------------------------------------------------------------------

    @property
    def broken(self) -> str:
        """Why the code cannot run (refused or failed to load), or ""."""
        return self._broken

    async def start(self) -> None:
        """Start every worker; raises :class:`UdfStartError` if the code is refused or fails to load."""
        results = await asyncio.gather(*(self._ensure(slot) for slot in self._slots), return_exceptions=True)
        for result in results:
            if isinstance(result, _NotReady) and result.kind == "broken":
                raise UdfStartError(str(result))
        for result in results:
            if isinstance(result, BaseException):
                raise UdfStartError(str(result)) from result

    async def close(self) -> None:
        """Save the workers' state (best effort), then stop them."""
        if self._closed:
            return
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.sync_state(), 2.0)
        self._closed = True
        for slot in self._slots:
            if slot.starting is not None:
                slot.starting.cancel()
                with contextlib.suppress(BaseException):
                    await slot.starting
                slot.starting = None
            if slot.worker is not None:
                worker, slot.worker = slot.worker, None
                await worker.close()

    def snapshot(self) -> list[dict[str, Any]]:
        """The last saved state of each slot (plain data)."""
        return [dict(slot.state) for slot in self._slots]

    def restore(self, states: Sequence[dict[str, Any]]) -> None:
        """Take over states from :meth:`snapshot`; a running worker gets its state with its next call."""
        for slot in self._slots:
            if slot.index < len(states) and isinstance(states[slot.index], dict):
                slot.state = dict(states[slot.index])
                slot.restore_pending = slot.worker is not None

    async def sync_state(self) -> None:
        """Fetch the current state from every idle, running worker."""
        for slot in self._slots:
            if slot.worker is None or slot.lock.locked() or slot.restore_pending:
                continue
            async with slot.lock:
                worker = slot.worker
                if worker is None:
                    continue
                try:
                    reply = await asyncio.wait_for(self._request(worker, GetState()), self.settings.timeout_s + 1)
                except (TimeoutError, _WorkerDied):
                    await self._discard(slot, crashed=True)
                    continue
                if isinstance(reply, StateReply) and reply.state is not None:
                    slot.state = reply.state
                    slot.synced_at = asyncio.get_running_loop().time()

    # -- starting workers ------------------------------------------------------------------------

    async def _spawn(self, slot: _Slot) -> _WorkerProcess:
        s = self.settings
        workdir = tempfile.mkdtemp(prefix="proxus-udf-")
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-I",
            "-S",
            "-B",
            "-c",
            _BOOTSTRAP,
            _ROOT,
            _SITE,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env={},
            cwd=workdir,
            start_new_session=True,
            close_fds=True,
        )
        worker = _WorkerProcess(proc, workdir)
        init = Init(
            code=s.code,
            state=slot.state,
            memory_mb=s.memory_mb,
            cpu_budget_s=s.cpu_budget_s,
            max_output_bytes=s.max_output_bytes,
            uid=self._uid,
            gid=self._gid,
            check_policy=s.check_policy,
        )
        try:
            reply = await asyncio.wait_for(self._request(worker, init), s.start_timeout_s)
        except TimeoutError:
            worker.kill()
            exit_text = await worker.reap()
            raise _WorkerDied(f"the worker did not start within {s.start_timeout_s:g} s ({exit_text})") from None
        except _WorkerDied as e:
            worker.kill()
            exit_text = await worker.reap()
            raise _WorkerDied(f"the worker failed to start: {e} ({exit_text})") from None
        except BaseException:
            worker.kill()
            await worker.reap()
            raise
        if isinstance(reply, Failed):
            await worker.reap()
            problems = "; ".join(
                (f"line {p.line}: " if p.line is not None else "") + p.message for p in reply.problems[:5]
            )
            what = {"policy": "the code was refused", "load": "the code failed to load", "setup": "sandbox failure"}
            raise _NotReady("broken", f"{what[reply.stage]}: {problems}")
        if not isinstance(reply, Ready):
            worker.kill()
            await worker.reap()
            raise _WorkerDied(f"unexpected reply to init: {type(reply).__name__}")
        self.baseline_mb = reply.baseline_mb
        slot.synced_at = asyncio.get_running_loop().time()
        slot.restore_pending = False
        return worker

    async def _start(self, slot: _Slot) -> _WorkerProcess:
        delay = slot.not_before - asyncio.get_running_loop().time()
        if delay > 0:
            await asyncio.sleep(delay)
        try:
            worker = await self._spawn(slot)
        except _NotReady as e:
            self._broken = str(e)
            raise
        except _WorkerDied:
            self._note_failure(slot)
            raise
        slot.worker = worker
        return worker

    def _note_failure(self, slot: _Slot) -> None:
        slot.failures += 1
        delay = 0.0 if slot.failures <= 1 else min(_BACKOFF_FIRST_S * 2 ** (slot.failures - 2), _BACKOFF_MAX_S)
        slot.not_before = asyncio.get_running_loop().time() + delay

    def _schedule_start(self, slot: _Slot) -> asyncio.Task[_WorkerProcess]:
        if slot.starting is None or slot.starting.done():
            slot.starting = asyncio.create_task(self._start(slot), name=f"udf-worker-{slot.index}")
            slot.starting.add_done_callback(lambda t: t.cancelled() or t.exception())  # retrieved
        return slot.starting

    async def _ensure(self, slot: _Slot) -> _WorkerProcess:
        if self._closed:
            raise _NotReady("unavailable", "the node is closed")
        if self._broken:
            raise _NotReady("broken", self._broken)
        if slot.worker is not None:
            return slot.worker
        task = self._schedule_start(slot)
        wait = slot.not_before - asyncio.get_running_loop().time()
        if not task.done() and wait > 0:
            raise _NotReady("unavailable", f"the worker is restarting after repeated failures (in {wait:.1f} s)")
        try:
            return await asyncio.shield(task)
        except _WorkerDied as e:
            raise _NotReady("unavailable", str(e)) from None
        finally:
            if task.done():
                slot.starting = None

    async def _discard(self, slot: _Slot, *, crashed: bool) -> str:
        """Kill the slot's worker and schedule a fresh one; the exit as text."""
        worker, slot.worker = slot.worker, None
        text = ""
        if worker is not None:
            worker.kill()
            text = await worker.reap()
        self.restarts += 1
        if crashed:
            self._note_failure(slot)
        if not self._closed and not self._broken:
            self._schedule_start(slot)
        return text

    # -- calls ----------------------------------------------------------------------------------

    async def _request(self, worker: _WorkerProcess, message: msgspec.Struct) -> Response:
        await worker.send(protocol.frame(message, self._encoder))
        return await self._reply(worker)

    async def _reply(self, worker: _WorkerProcess) -> Response:
        body = await worker.receive(self.settings.max_output_bytes)
        try:
            return self._decoder.decode(body)
        except msgspec.ValidationError as e:
            # Well-formed but wrong types: what process returned does not fit a batch.
            return Error(kind="output", type="ValidationError", message=f"process returned invalid data: {e}", cpu_s=0)
        except msgspec.DecodeError as e:
            raise _WorkerDied(f"the worker sent an unreadable reply ({e})") from None

    async def run(self, batch: Batch) -> Outcome:
        """Run the code on one batch; never raises for failures of the code or the worker."""
        if self._idle is None:
            self._idle = asyncio.PriorityQueue()
            for slot in self._slots:
                self._idle.put_nowait(slot.index)
        loop = asyncio.get_running_loop()
        previous, done = self._tail, loop.create_future()
        self._tail = done
        try:
            index = await self._idle.get()
            try:
                slot = self._slots[index]
                async with slot.lock:
                    outcome = await self._run_on(slot, batch)
            finally:
                self._idle.put_nowait(index)
            if previous is not None and not previous.done():
                await asyncio.shield(previous)  # results leave in call order
            return outcome
        finally:
            done.set_result(None)

    async def _run_on(self, slot: _Slot, batch: Batch) -> Outcome:
        s = self.settings
        try:
            worker = await self._ensure(slot)
        except _NotReady as e:
            return Outcome(None, e.kind, str(e))
        loop = asyncio.get_running_loop()
        n = len(batch.ts)
        recycle = worker.cpu_s > max(s.cpu_budget_s * 0.8 - 2 * s.timeout_s, s.cpu_budget_s * 0.5)
        request = Process(
            ts=batch.ts,
            series=batch.series,
            values=batch.values,
            quality=batch.quality,
            max_points=10 * n + 10_000,
            want_state=recycle or loop.time() - slot.synced_at >= s.state_sync_s,
            replace_state=slot.state if slot.restore_pending else None,
        )
        slot.restore_pending = False
        timeout = s.timeout_s + TRANSFER_ALLOWANCE_S + TRANSFER_PER_POINT_S * n
        try:
            reply = await asyncio.wait_for(self._request(worker, request), timeout)
        except TimeoutError:
            await self._discard(slot, crashed=False)
            return Outcome(
                None, "timeout", f"timed out after {round(s.timeout_s * 1000)} ms (batch dropped)", restarted=True
            )
        except _OutputTooLarge as e:  # the frame is not read: the pipe is out of step
            await self._discard(slot, crashed=False)
            return Outcome(None, "output", str(e), restarted=True)
        except _WorkerDied as e:
            exit_text = await self._discard(slot, crashed=True)
            message = f"the worker crashed ({exit_text})" if str(e) == _STOPPED else f"{e}; the worker was restarted"
            return Outcome(None, "crash", message, restarted=True)
        except BaseException:
            await self._discard(slot, crashed=False)  # cancelled mid-call: the pipe is out of step
            raise
        if isinstance(reply, Result):
            return await self._result(slot, worker, reply, n, recycle)
        if isinstance(reply, Error):
            worker.cpu_s = reply.cpu_s or worker.cpu_s
            message = f"{reply.type}: {reply.message}" if reply.kind == "exception" else reply.message
            return Outcome(None, reply.kind, message, reply.line, list(reply.log))
        await self._discard(slot, crashed=True)
        return Outcome(None, "crash", f"the worker sent {type(reply).__name__} to a batch", restarted=True)

    async def _result(self, slot: _Slot, worker: _WorkerProcess, reply: Result, n_in: int, recycle: bool) -> Outcome:
        worker.cpu_s = reply.cpu_s
        slot.failures = 0
        warning = ""
        if reply.state is not None:
            slot.state = reply.state
            slot.synced_at = asyncio.get_running_loop().time()
        elif reply.state_error:
            warning = reply.state_error
            slot.synced_at = asyncio.get_running_loop().time()  # do not retry on every batch
        if recycle:
            await self._discard(slot, crashed=False)
        n = len(reply.ts)
        if not (len(reply.series) == len(reply.values) == len(reply.quality) == n):
            return Outcome(None, "output", "process returned columns of different lengths", log=list(reply.log))
        limit = 10 * n_in + 10_000
        if n > limit:
            return Outcome(None, "output", f"output too large: {n} points (limit {limit})", log=list(reply.log))
        return Outcome(Batch(reply.ts, reply.series, reply.values, reply.quality), log=list(reply.log), warning=warning)
