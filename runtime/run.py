"""``proxus run FLOW_OR_PLAN``: run a flow or plan locally, with no Hub.

The dry run a user does before deploying, and what tests and benchmarks use. It starts a private
NATS server (for the outbox, exactly as on an edge) unless ``--nats`` names one, runs every plan
the flow compiles to, prints debug sink messages as JSON lines on stdout, and a per-node summary
on stderr when it ends (after ``--duration`` seconds, or on Ctrl-C).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import signal
import sys
import time
from pathlib import Path
from typing import Any

import msgspec
import nats

from nodes.host import Credential
from proxus.catalog import Catalog
from proxus.compiler import validate_flow
from proxus.plan import Plan, decode_plan
from runtime.interpreter import Host, PlanError, PlanRunner, json_line
from runtime.local_nats import private_nats
from runtime.outbox import Outbox


class RunError(Exception):
    """The input cannot be run; the message says why."""


def load_plans(path: Path, catalog: Catalog) -> list[Plan]:
    """Plans from a flow document (compiled here) or a plan file."""
    data = path.read_bytes()
    try:
        head = msgspec.json.decode(data)
    except msgspec.DecodeError as exc:
        raise RunError(f"{path}: not JSON: {exc}") from exc
    if isinstance(head, dict) and head.get("format") == "proxus.plan":
        try:
            return [decode_plan(data)]
        except ValueError as exc:
            raise RunError(f"{path}: {exc}") from exc
    _doc, result = validate_flow(data, catalog)
    for d in result.diagnostics:
        print(d.render(), file=sys.stderr)
    if not result.ok:
        raise RunError(f"{path}: the flow has errors; nothing was run")
    return list(result.plans.values())


def load_credentials(path: str | None) -> dict[str, Credential]:
    if not path:
        return {}
    raw = msgspec.json.decode(Path(path).read_bytes(), type=list[Credential])
    return {c.id: c for c in raw}


def _stdout_debug(message: dict[str, Any]) -> None:
    sys.stdout.buffer.write(json_line(message))
    sys.stdout.buffer.flush()


async def run_plans(
    plans: list[Plan],
    catalog: Catalog,
    *,
    duration_s: float | None,
    nats_url: str | None = None,
    data_dir: Path | None = None,
    credentials: dict[str, Credential] | None = None,
    taps: set[str] | None = None,
    settings: dict[str, str] | None = None,
) -> list[PlanRunner]:
    """Run plans until ``duration_s`` elapses (or forever); returns the stopped runners."""
    async with contextlib.AsyncExitStack() as stack:
        if nats_url:
            nc = await nats.connect(nats_url, max_reconnect_attempts=-1)
            stack.push_async_callback(nc.drain)
        else:
            nc = await stack.enter_async_context(private_nats(data_dir / "nats" if data_dir else None))
        outbox = Outbox(nc.jetstream(), edge="local")
        await outbox.ensure()
        base = data_dir or Path(os.environ.get("PROXUS_DATA_DIR", ".proxus")) / "run"

        async def publish(subject: str, payload: bytes, headers: dict[str, str] | None = None) -> None:
            await nc.publish(subject, payload, headers=headers)

        host = Host(
            edge_id="local",
            data_dir=base,
            outbox=outbox,
            mode="run",
            credentials=credentials or {},
            debug=_stdout_debug,
            publisher=publish,
            settings=settings or {},
        )
        runners = [PlanRunner(plan, catalog, host) for plan in plans]
        started: list[PlanRunner] = []
        try:
            for runner in runners:
                await runner.start()
                runner.set_taps(taps or set())
                started.append(runner)
            stop = asyncio.Event()
            loop = asyncio.get_running_loop()
            for sig in (signal.SIGINT, signal.SIGTERM):
                with contextlib.suppress(NotImplementedError, RuntimeError):
                    loop.add_signal_handler(sig, stop.set)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), duration_s)
        finally:
            for runner in started:
                await runner.stop()
        return started


def summary(runners: list[PlanRunner], elapsed_s: float) -> str:
    lines = [f"ran {len(runners)} plan(s) for {elapsed_s:.1f} s"]
    for runner in runners:
        lines.append(f"plan {runner.plan.plan_id} {runner.plan.hash[:19]}")
        for node_id, step in runner.steps.items():
            m = step.metrics
            extra = " ".join(f"{k}={v}" for k, v in sorted(m.counters.items()))
            health = m.health.value + (f" ({m.message})" if m.message else "")
            lines.append(
                f"  {node_id:<24} in {m.points_in:>9}  out {m.points_out:>9}  errors {m.errors:>5}  {health}"
                + (f"  {extra}" if extra else "")
            )
    return "\n".join(lines)


def add_cli(subparsers: Any) -> None:
    p = subparsers.add_parser("run", help="run a flow or plan locally, without a Hub (a dry run)")
    p.add_argument("file", metavar="FLOW_OR_PLAN", help="flow document or compiled plan (JSON)")
    p.add_argument("--duration", type=float, metavar="S", help="stop after S seconds (default: until Ctrl-C)")
    p.add_argument("--nats", metavar="URL", help="use this NATS server for the outbox instead of a private one")
    p.add_argument("--tap", action="append", default=[], metavar="NODE", help="also print NODE's output")
    p.add_argument("--credentials", metavar="FILE", help="credentials as a JSON list (id, kind, username, secret)")
    p.add_argument("--data-dir", metavar="DIR", help="where node state and the private NATS store live")
    p.set_defaults(handler=cmd_run)


def cmd_run(args: argparse.Namespace, catalog: Catalog) -> int:
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("asyncua").setLevel(logging.WARNING)  # its INFO is per publish/notification
    try:
        plans = load_plans(Path(args.file), catalog)
        credentials = load_credentials(args.credentials)
    except (RunError, OSError, msgspec.DecodeError, msgspec.ValidationError) as exc:
        print(f"proxus run: {exc}", file=sys.stderr)
        return 1
    historian = os.environ.get("PROXUS_HISTORIAN_URL") or os.environ.get("PROXUS_DATABASE_URL")
    t0 = time.monotonic()
    try:
        runners = asyncio.run(
            run_plans(
                plans,
                catalog,
                duration_s=args.duration,
                nats_url=args.nats,
                data_dir=Path(args.data_dir) if args.data_dir else None,
                credentials=credentials,
                taps=set(args.tap),
                settings={"historian_url": historian} if historian else {},
            )
        )
    except PlanError as exc:
        print(f"proxus run: {exc}", file=sys.stderr)
        return 1
    print(summary(runners, time.monotonic() - t0), file=sys.stderr)
    return 0
