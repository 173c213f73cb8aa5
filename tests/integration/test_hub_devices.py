"""Devices against a real Hub: validated settings, roles, CSV register maps, the compiler's registry,
and connection tests / OPC UA browsing through a live edge agent against real simulators."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import msgspec
import pytest

from backend.db import create_pool
from backend.devices import registry
from proxus.registry import DeviceRecord
from runtime.simulate import modbus as modbus_sim
from runtime.simulate import opcua as opcua_sim
from tests.integration.test_hub_edges import Background, Hub, eventually, register_edge, running_edge, secured_hub

MODBUS = {
    "host": "127.0.0.1",
    "port": 5020,
    "unit_id": 1,
    "poll_interval_ms": 500,
    "registers": [
        {"tag": "voltage", "address": 0, "data_type": "float32", "unit": "V"},
        {"tag": "state", "address": 2},
    ],
}


@pytest.fixture
async def hub(
    tmp_path: Path, database_url: str, redis_url: str, redis_prefix: str, nats_server_factory: Any
) -> AsyncIterator[Hub]:
    async with secured_hub(tmp_path, database_url, redis_url, redis_prefix, nats_server_factory) as running:
        yield running


def problems(response: Any) -> dict[str, str]:
    return {d["field"]: d["message"] for d in response.json()["details"]}


async def test_devices_crud_roles_validation_and_registry(hub: Hub, database_url: str) -> None:
    client = hub.client
    changed: list[str] = []

    async def on_device_changed(device_id: str) -> None:
        changed.append(device_id)

    hub.app.state.on_device_changed = on_device_changed
    await register_edge(client, "line1")
    await register_edge(client, "line2")
    editor = await hub.login_as("eddie", "editor")
    viewer = await hub.login_as("vera", "viewer")
    body = {"name": "Main meter", "protocol": "modbus", "edge": "line1", "settings": MODBUS}
    assert (await viewer.post("/api/devices", json=body)).status_code == 403
    created = await editor.post("/api/devices", json=body)
    assert created.status_code == 201, created.text
    device = created.json()
    assert device["id"] == "main-meter" and device["edge"] == "line1" and device["protocol"] == "modbus"
    assert device["sampling_interval_ms"] == 500 and device["points"] == 2
    assert device["settings"]["registers"][0]["data_type"] == "float32"
    assert device["settings"]["port"] == 5020 and "device" not in device["settings"]
    assert changed == ["main-meter"]

    # Viewers read; they change nothing.
    assert (await viewer.get("/api/devices")).json()[0]["id"] == "main-meter"
    assert (await viewer.get("/api/devices/main-meter")).status_code == 200
    assert (await viewer.get("/api/devices", params={"edge": "line2"})).json() == []
    assert (await viewer.patch("/api/devices/main-meter", json={"name": "x"})).status_code == 403
    assert (await viewer.delete("/api/devices/main-meter")).status_code == 403
    assert (
        await viewer.post("/api/devices/main-meter/registers/csv", json={"csv": "tag,address\n"})
    ).status_code == 403

    # Errors name the field.
    bad = {**MODBUS, "registers": [{"tag": "x", "address": 70000}]}
    refused = await editor.post("/api/devices", json={**body, "name": "Bad", "settings": bad})
    assert refused.status_code == 400
    assert "settings.registers[0].address" in problems(refused)
    assert "registers[0].address" in refused.json()["message"]
    wrong_type = {**MODBUS, "registers": [{"tag": "c", "address": 1, "table": "coil", "data_type": "float32"}]}
    refused = await editor.post("/api/devices", json={**body, "name": "Bad", "settings": wrong_type})
    assert refused.status_code == 400 and "settings.registers[0].data_type" in problems(refused)
    refused = await editor.post("/api/devices", json={**body, "name": "Bad", "settings": {"port": 502}})
    assert refused.status_code == 400 and "settings.host" in problems(refused)
    refused = await editor.post("/api/devices", json={**body, "name": "Bad", "settings": {**MODBUS, "baud": 9600}})
    assert refused.status_code == 400 and "settings.baud" in problems(refused)
    refused = await editor.post("/api/devices", json={**body, "name": "Bad", "edge": "nowhere"})
    assert refused.status_code == 400 and "edge" in problems(refused)
    refused = await editor.post("/api/devices", json={**body, "name": "Bad", "protocol": "profinet"})
    assert refused.status_code == 400 and "protocol" in refused.text
    opc = {"name": "Oven", "protocol": "opcua", "edge": "line2"}
    refused = await editor.post("/api/devices", json={**opc, "settings": {"endpoint": "http://oven"}})
    assert refused.status_code == 400 and "settings.endpoint" in problems(refused)
    settings = {"endpoint": "opc.tcp://oven:4840", "credential": "missing", "publishing_interval_ms": 250}
    refused = await editor.post("/api/devices", json={**opc, "settings": settings})
    assert refused.status_code == 400 and "settings.credential" in problems(refused)
    nodes = [{"tag": "t", "node_id": "not a node id"}]
    refused = await editor.post("/api/devices", json={**opc, "settings": {**settings, "nodes": nodes}})
    assert refused.status_code == 400 and "settings.nodes[0].node_id" in problems(refused)
    assert (await editor.post("/api/devices", json={**body, "id": "main-meter"})).status_code == 409
    assert [d["id"] for d in (await viewer.get("/api/devices")).json()] == ["main-meter"]

    credential = {"id": "oven-user", "name": "Oven user", "kind": "username_password", "username": "u"}
    assert (await client.post("/api/credentials", json={**credential, "secret": "pw"})).status_code == 201
    settings["credential"] = "oven-user"
    oven = await editor.post("/api/devices", json={**opc, "id": "oven", "settings": settings})
    assert oven.status_code == 201, oven.text
    assert oven.json()["credential"] == "oven-user" and oven.json()["sampling_interval_ms"] == 250

    # Updates: move to another edge, replace the settings.
    moved = await editor.patch(
        "/api/devices/main-meter", json={"edge": "line2", "settings": {**MODBUS, "poll_interval_ms": 100}}
    )
    assert moved.status_code == 200, moved.text
    assert moved.json()["edge"] == "line2" and moved.json()["sampling_interval_ms"] == 100
    assert (await editor.patch("/api/devices/main-meter", json={"edge": "gone"})).status_code == 400
    assert changed == ["main-meter", "oven", "main-meter"]

    pool = await create_pool(database_url)
    try:
        async with pool.acquire() as conn:
            compiled = await registry(conn)
    finally:
        await pool.close()
    assert compiled.edges == frozenset({"line1", "line2"})
    meter = compiled.devices["main-meter"]
    assert isinstance(meter, DeviceRecord) and meter.edge == "line2" and meter.protocol == "modbus"
    assert meter.settings["host"] == "127.0.0.1" and meter.settings["poll_interval_ms"] == 100
    assert compiled.devices["oven"].settings["credential"] == "oven-user"
    # What the compiler inlines decodes as the node's config.
    from nodes.device.modbus_read import ModbusReadConfig

    msgspec.convert({**meter.settings, "device": "main-meter"}, ModbusReadConfig)

    audit = await client.get("/api/audit", params={"entity_type": "device", "entity_id": "main-meter"})
    assert [e["action"] for e in audit.json()] == ["device.update", "device.create"]
    assert (await editor.delete("/api/devices/oven")).status_code == 204
    assert (await viewer.get("/api/devices/oven")).status_code == 404
    assert changed[-1] == "oven"


CSV_OK = """tag,table,address,data_type,byte_order,scale,offset,unit,length,bit
voltage_l1,holding,0,float32,ABCD,1,0,V,,
current_l1,input,10,int16,,0.01,,A,,
running,coil,0,bool,,,,,,
alarm,holding,20,bit,,,,,,3
serial,holding,30,string,,,,,4,
"""


async def test_csv_register_import_reports_every_bad_row_and_saves_nothing(hub: Hub) -> None:
    client = hub.client
    await register_edge(client, "line1")
    body = {"id": "meter", "name": "Meter", "protocol": "modbus", "edge": "line1", "settings": MODBUS}
    assert (await client.post("/api/devices", json=body)).status_code == 201

    imported = await client.post(
        "/api/devices/meter/registers/csv", content=CSV_OK.encode(), headers={"Content-Type": "text/csv"}
    )
    assert imported.status_code == 200, imported.text
    registers = imported.json()["settings"]["registers"]
    assert [r["tag"] for r in registers] == ["voltage_l1", "current_l1", "running", "alarm", "serial"]
    assert registers[1] == {
        **registers[1],
        "table": "input",
        "address": 10,
        "data_type": "int16",
        "scale": 0.01,
        "unit": "A",
        "byte_order": None,
    }
    assert registers[3]["bit"] == 3 and registers[4]["length"] == 4

    appended = await client.post(
        "/api/devices/meter/registers/csv",
        params={"mode": "append"},
        json={"csv": "address,tag\n40,freq\n"},
    )
    assert appended.status_code == 200, appended.text
    assert [r["tag"] for r in appended.json()["settings"]["registers"]][-2:] == ["serial", "freq"]

    bad = (
        "tag,table,address,data_type,scale\n"  # line 1
        "ok1,holding,0,uint16,1\n"  # line 2
        "big,holding,70000,uint16,1\n"  # line 3: address out of range
        "\n"  # line 4: blank, skipped
        "f,holding,x,uint16,1\n"  # line 5: not a number
        "k,holding,5,uint99,1\n"  # line 6: unknown data type
        "c,coil,6,float32,1\n"  # line 7: a coil is one bit
        "s,holding,7,uint16,abc\n"  # line 8: scale not a number
        ",holding,8,uint16,1\n"  # line 9: no tag
    )
    refused = await client.post("/api/devices/meter/registers/csv", content=bad, headers={"Content-Type": "text/csv"})
    assert refused.status_code == 400 and refused.json()["error"] == "invalid_csv"
    rows = [(p["line"], p["column"]) for p in refused.json()["extra"]["problems"]]
    assert rows == [(3, "address"), (5, "address"), (6, "data_type"), (8, "scale"), (9, "tag")]
    assert "line 3.address" in problems(refused)
    assert "nothing was imported" in refused.json()["message"]

    # Problems across rows are tied to the row that causes them; a coil read as float32 too.
    dupes = "tag,table,address,data_type\na,holding,0,uint16\nb,coil,1,float32\na,holding,2,uint16\n"
    refused = await client.post("/api/devices/meter/registers/csv", json={"csv": dupes})
    assert refused.status_code == 400
    assert [(p["line"], p["column"]) for p in refused.json()["extra"]["problems"]] == [(3, "data_type"), (4, "tag")]
    # Appending a tag the map already has is reported on its line too.
    refused = await client.post(
        "/api/devices/meter/registers/csv", params={"mode": "append"}, json={"csv": "tag,address\nfreq,99\n"}
    )
    assert refused.status_code == 400
    assert [(p["line"], p["column"]) for p in refused.json()["extra"]["problems"]] == [(2, "tag")]

    no_header = await client.post(
        "/api/devices/meter/registers/csv", content="v,holding,0\n", headers={"Content-Type": "text/csv"}
    )
    assert no_header.status_code == 400 and "header" in no_header.json()["message"]
    bad_mode = await client.post("/api/devices/meter/registers/csv", params={"mode": "merge"}, json={"csv": CSV_OK})
    assert bad_mode.status_code == 400
    wrong_media = await client.post(
        "/api/devices/meter/registers/csv", content=b"x", headers={"Content-Type": "application/xml"}
    )
    assert wrong_media.status_code == 415

    # Nothing of the refused imports was saved.
    current = (await client.get("/api/devices/meter")).json()["settings"]["registers"]
    assert [r["tag"] for r in current] == ["voltage_l1", "current_l1", "running", "alarm", "serial", "freq"]

    opc = {
        "id": "oven",
        "name": "Oven",
        "protocol": "opcua",
        "edge": "line1",
        "settings": {"endpoint": "opc.tcp://o:4840"},
    }
    assert (await client.post("/api/devices", json=opc)).status_code == 201
    assert (await client.post("/api/devices/oven/registers/csv", json={"csv": CSV_OK})).status_code == 400


async def test_connection_tests_and_browse_go_through_the_live_edge(hub: Hub, tmp_path: Path) -> None:
    client = hub.client
    created = await register_edge(client, "line1")
    sims = Background()  # the simulators answer while the test waits on the Hub
    modbus = await sims.run(
        modbus_sim.serve({"base_port": 0, "tags": 4, "values": "known", "data_types": ["uint16", "float32"]})
    )
    opcua = await sims.run(
        opcua_sim.serve(opcua_sim.OpcUaSimConfig(update_ms=0, username="op", password="op-pw", anonymous=False))
    )
    try:
        settings = msgspec.to_builtins(modbus.read_config(0))
        settings = {k: v for k, v in settings.items() if v is not None and k != "device"}
        device = {"id": "meter", "name": "Meter", "protocol": "modbus", "edge": "line1", "settings": settings}
        assert (await client.post("/api/devices", json=device)).status_code == 201
        credential = {"id": "op", "name": "Operator", "kind": "username_password", "username": "op", "secret": "op-pw"}
        assert (await client.post("/api/credentials", json=credential)).status_code == 201
        oven_settings = {"endpoint": opcua.endpoint, "credential": "op"}
        oven = {"id": "oven", "name": "Oven", "protocol": "opcua", "edge": "line1", "settings": oven_settings}
        assert (await client.post("/api/devices", json=oven)).status_code == 201

        # The edge has never been online: a clear answer, at once.
        offline = await client.post("/api/devices/meter/test", json={"timeout_s": 2})
        assert offline.status_code == 503 and offline.json()["error"] == "edge_offline"
        assert offline.json()["message"].startswith("edge line1 is offline (never seen)")

        async with running_edge("line1", created["hub_leaf_url"], tmp_path / "edge"):

            async def answered() -> bool:
                response = await client.post("/api/devices/meter/test", json={"timeout_s": 2})
                return response.status_code == 200

            await eventually(answered, timeout=30)
            result = (await client.post("/api/devices/meter/test")).json()
            assert result["ok"] is True, result
            assert result["edge"] == "line1" and result["device"] == "meter" and result["latency_ms"] >= 0
            assert result["details"]["sample"] == {k: v for k, v in modbus.expected(0).items()}

            # Unsaved settings can be tried first; a device that does not answer is a result, not an error.
            closed = {**settings, "port": modbus.ports[0] + 1 if modbus.ports[0] < 65535 else 1}
            tried = await client.post("/api/devices/meter/test", json={"timeout_s": 1, "settings": closed})
            assert tried.status_code == 200 and tried.json()["ok"] is False and tried.json()["message"]
            invalid = await client.post("/api/devices/meter/test", json={"settings": {"host": "x", "port": 0}})
            assert invalid.status_code == 400 and "settings.port" in problems(invalid)

            tested = await client.post("/api/devices/oven/test", json={"timeout_s": 5})
            assert tested.status_code == 200 and tested.json()["ok"] is True, tested.text
            assert "user 'op'" in tested.json()["message"]
            assert tested.json()["details"]["server"]["state"] == "Running"

            root = await client.get("/api/devices/oven/browse")
            assert root.status_code == 200, root.text
            machine = next(c for c in root.json()["children"] if c["display_name"] == "Machine")
            assert machine["has_children"] is True
            inside = await client.get("/api/devices/oven/browse", params={"node_id": machine["node_id"]})
            assert inside.status_code == 200, inside.text
            variables = {c["display_name"]: c for c in inside.json()["children"]}
            assert variables["Speed"]["node_id"] == "ns=2;s=Machine/Speed"
            assert variables["Speed"]["node_class"] == "Variable" and variables["Speed"]["data_type"] == "Double"
            assert variables["Speed"]["value"] == 1500.0

            assert (await client.get("/api/devices/meter/browse")).status_code == 400  # modbus does not browse
            missing = await client.get("/api/devices/oven/browse", params={"node_id": "ns=2;s=Nope"})
            assert missing.status_code == 502 and missing.json()["error"] == "device_error"

            # A wrong password is the device's answer, through the edge.
            await client.patch("/api/credentials/op", json={"secret": "wrong"})
            denied = (await client.post("/api/devices/oven/test")).json()
            assert denied["ok"] is False and denied["message"]

        # The edge went away: the Hub says so instead of waiting.
        gone = await client.post("/api/devices/meter/test", json={"timeout_s": 2})
        assert gone.status_code == 503 and gone.json()["error"] == "edge_offline"
        assert "edge line1 is offline (last seen" in gone.json()["message"]
        assert (await client.get("/api/devices/oven/browse")).status_code == 503
    finally:
        await sims.run(modbus.stop())
        await sims.run(opcua.stop())
        sims.close()
