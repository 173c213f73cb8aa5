"""Each example flow runs with `proxus run` (the real CLI, a subprocess) against the simulators."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import asyncpg  # type: ignore[import-untyped, unused-ignore]

from runtime.simulate import modbus, opcua
from tests.integration.runtime_support import http_endpoint, wait_for

EXAMPLES = Path(__file__).parents[2] / "examples"


def example(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((EXAMPLES / name).read_text())
    return data


def node(doc: dict[str, Any], node_id: str) -> dict[str, Any]:
    return next(n for n in doc["nodes"] if n["id"] == node_id)


def start_run(
    flow: Path | dict[str, Any], tmp_path: Path, *args: str, env: dict[str, str] | None = None
) -> subprocess.Popen[bytes]:
    if isinstance(flow, dict):
        path = tmp_path / "flow.json"
        path.write_text(json.dumps(flow))
    else:
        path = flow
    cmd = [sys.executable, "-m", "proxus.cli", "run", str(path), "--data-dir", str(tmp_path / "run"), *args]
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env={**os.environ, **(env or {})})


def json_lines(output: bytes) -> list[dict[str, Any]]:
    return [json.loads(line) for line in output.splitlines() if line.startswith(b"{")]


async def test_simulator_udf_debug_prints_deviation_flags(tmp_path: Path) -> None:
    proc = start_run(EXAMPLES / "simulator-udf-debug.json", tmp_path, "--duration", "4")
    out, err = await asyncio.to_thread(proc.communicate, timeout=120)
    assert proc.returncode == 0, err.decode()
    messages = [m for m in json_lines(out) if m["node"] == "debug"]
    points = [p for m in messages for p in m["points"]]
    assert points, err.decode()
    assert {p["series"] for p in points} <= {"line1/temperature/deviates", "line1/pressure/deviates"}
    assert all(isinstance(p["value"], bool) for p in points)
    assert b"deviation" in err  # the per-node summary on stderr


async def test_modbus_energy_meter_averages_into_the_historian(tmp_path: Path, database_url: str) -> None:
    sim = await modbus.serve({"profile": "energy_meter", "base_port": 0, "values": "live", "update_ms": 100})
    try:
        doc = example("modbus-energy-meter.json")
        meter = node(doc, "meter")["config"]
        meter["port"] = sim.ports[0]
        meter["poll_interval_ms"] = 200
        node(doc, "avg_1m")["config"].update(window_s=1, allowed_lateness_s=0.2)  # a minute is too long here
        node(doc, "historian")["config"]["flush_interval_ms"] = 100
        proc = start_run(
            doc, tmp_path, "--duration", "5", "--tap", "avg_1m", env={"PROXUS_HISTORIAN_URL": database_url}
        )
        out, err = await asyncio.to_thread(proc.communicate, timeout=120)
    finally:
        await sim.stop()
    assert proc.returncode == 0, err.decode()
    averages = {p["series"]: p["value"] for m in json_lines(out) if m["node"] == "avg_1m" for p in m["points"]}
    assert 228 <= averages["Energy meter/voltage_l1"] <= 232
    assert 4.8 <= averages["Energy meter/power_active_w"] <= 9.0  # W scaled to kW
    assert 999 <= averages["Energy meter/energy_import_wh"] <= 1100  # Wh scaled to kWh
    conn = await asyncpg.connect(database_url)
    try:
        rows = await conn.fetch("SELECT series, value FROM proxus_points ORDER BY ts")
    finally:
        await conn.close()
    stored = {r["series"] for r in rows}
    assert "Energy meter/voltage_l1" in stored and "Energy meter/current_l1" in stored
    assert all(228 <= r["value"] <= 232 for r in rows if r["series"].endswith("voltage_l1"))


async def test_opcua_alarm_raises_and_clears_through_the_webhook(tmp_path: Path) -> None:
    sim = await opcua.serve(opcua.OpcUaSimConfig(update_ms=0))  # values change only when we write them
    try:
        await sim.write("Temperature", 70.0)
        doc = example("opcua-machine-alarm.json")
        node(doc, "machine")["config"]["endpoint"] = sim.endpoint
        node(doc, "overheat")["config"]["on_delay_s"] = 0.3
        with http_endpoint() as webhook:
            node(doc, "webhook")["config"]["url"] = webhook.url
            node(doc, "webhook")["config"]["flush_interval_ms"] = 50
            proc = start_run(doc, tmp_path, "--duration", "60")
            try:

                def events() -> list[dict[str, Any]]:
                    return [e for body in list(webhook.bodies) for e in json.loads(body)]

                await asyncio.sleep(2)
                await sim.write("Temperature", 85.0)
                await asyncio.sleep(0.5)
                await sim.write("Temperature", 86.0)  # a second sample after the on-delay
                await wait_for(lambda: any(e["state"] == "raise" for e in events()), timeout=30)
                await sim.write("Temperature", 60.0)
                await wait_for(lambda: any(e["state"] == "clear" for e in events()), timeout=30)
            finally:
                proc.send_signal(signal.SIGINT)
                _out, err = await asyncio.to_thread(proc.communicate, timeout=60)
        raise_event = next(e for e in events() if e["state"] == "raise")
        assert raise_event["alarm"] == "machine_overheat" and raise_event["severity"] == "critical"
        assert raise_event["series"].endswith("/temperature") and raise_event["value"] >= 85
        assert proc.returncode == 0, err.decode()
    finally:
        await sim.stop()
