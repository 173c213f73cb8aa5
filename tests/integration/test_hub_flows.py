"""Flows against a real Hub (PostgreSQL, Redis, NATS hub): versions and concurrency, diff, rollback,
import with every problem reported, export round trip, validate/compile diagnostics, and roles."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import asyncpg  # type: ignore[import-untyped, unused-ignore]
import pytest

from backend.settings import Settings
from tests.integration.hub_support import ADMIN, Client, add_user, hub_settings, running_hub, setup_admin

Headers = dict[str, str]


@pytest.fixture
def settings(
    tmp_path: Path, database_url: str, nats_server_factory: Any, redis_url: str, redis_prefix: str
) -> Settings:
    hub = nats_server_factory.hub()
    return hub_settings(tmp_path, database_url, hub.url, redis_url, redis_prefix)


# -- helpers (also used by test_hub_deploy) -------------------------------------------------------------


def sim_flow(
    flow_id: str = "line1", *, edge: str | None = "e1", factor: float = 2.0, name: str = "Line 1"
) -> dict[str, Any]:
    """simulator → scale → debug, placed on ``edge`` through metadata.default_edge."""
    doc: dict[str, Any] = {
        "format": "proxus.flow",
        "schema_version": 1,
        "id": flow_id,
        "name": name,
        "nodes": [
            {
                "id": "sim",
                "type": "simulator",
                "label": "Press 4",
                "position": {"x": 0, "y": 0},
                "config": {"rate_hz": 20, "tags": [{"tag": "t1", "signal": "sine"}, {"tag": "t2", "signal": "ramp"}]},
            },
            {
                "id": "scale",
                "type": "transform.scale",
                "label": "x2",
                "position": {"x": 200, "y": 0},
                "config": {"factor": factor},
            },
            {"id": "debug", "type": "sink.debug", "label": "Debug", "position": {"x": 400, "y": 0}, "config": {}},
        ],
        "edges": [
            {"id": "w1", "source": "sim", "target": "scale"},
            {"id": "w2", "source": "scale", "target": "debug"},
        ],
    }
    if edge is not None:
        doc["metadata"] = {"default_edge": edge}
    return doc


async def token_headers(client: Client, username: str, password: str = "password-123") -> Headers:
    """Sign in as ``username`` and make an API token: requests with these headers act as them."""
    await client.login(username, password)
    response = await client.post("/api/tokens", json={"name": "tests"})
    assert response.status_code == 201, response.text
    return {"Authorization": f"Bearer {response.json()['secret']}"}


async def team(client: Client, edges: tuple[str, ...] = ("e1",)) -> dict[str, Headers]:
    """admin, two editors (alice, bob) and a viewer (vic), each as request headers; ``edges`` registered."""
    await setup_admin(client)
    for name, role in (("alice", "editor"), ("bob", "editor"), ("vic", "viewer")):
        await add_user(client, name, role)
    people = {"admin": await token_headers(client, *ADMIN)}
    for name in ("alice", "bob", "vic"):
        people[name] = await token_headers(client, name)
    for edge in edges:
        await register_edge(client, people["admin"], edge)
    return people


async def register_edge(client: Client, admin: Headers, edge: str) -> dict[str, Any]:
    response = await client.post("/api/edges", json={"id": edge, "name": edge}, headers=admin)
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


async def create(client: Client, who: Headers, document: dict[str, Any], message: str = "") -> dict[str, Any]:
    response = await client.post("/api/flows", json={"document": document, "message": message}, headers=who)
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


async def save(
    client: Client, who: Headers, flow_id: str, document: dict[str, Any], base: int, message: str = ""
) -> Any:
    return await client.put(
        f"/api/flows/{flow_id}", json={"document": document, "base_version": base, "message": message}, headers=who
    )


# -- versions and concurrency ---------------------------------------------------------------------------


async def test_create_from_a_name_then_versions_with_authors_and_messages(settings: Settings) -> None:
    async with running_hub(settings) as client:
        people = await team(client)
        alice = people["alice"]
        created = await client.post(
            "/api/flows", json={"name": "Line 3 energy", "default_edge": "e1", "message": "start"}, headers=alice
        )
        assert created.status_code == 201, created.text
        flow = created.json()
        flow_id = flow["id"]
        assert flow_id.startswith("line-3-energy")
        assert flow["latest_version"] == 1 and flow["created_by"] == "alice" and flow["message"] == "start"
        doc = flow["document"]
        assert doc["id"] == flow_id and doc["version"] == 1 and doc["nodes"] == []
        assert doc["metadata"]["default_edge"] == "e1"

        # A second flow with the same name gets its own id.
        again = await client.post("/api/flows", json={"name": "Line 3 energy"}, headers=alice)
        assert again.status_code == 201 and again.json()["id"] != flow_id

        full = sim_flow(flow_id, name="Line 3 energy")
        saved = await save(client, alice, flow_id, full, base=1, message="add the simulator")
        assert saved.status_code == 200, saved.text
        info = saved.json()
        assert (
            info["version"] == 2 and info["author"] == "alice" and info["node_count"] == 3 and info["wire_count"] == 2
        )

        latest = (await client.get(f"/api/flows/{flow_id}", headers=people["vic"])).json()
        assert latest["latest_version"] == 2 and latest["document"]["version"] == 2
        assert [n["id"] for n in latest["document"]["nodes"]] == ["sim", "scale", "debug"]
        assert latest["updated_by"] == "alice" and latest["message"] == "add the simulator"

        versions = (await client.get(f"/api/flows/{flow_id}/versions", headers=people["vic"])).json()
        assert [(v["version"], v["author"], v["message"], v["node_count"], v["wire_count"]) for v in versions] == [
            (2, "alice", "add the simulator", 3, 2),
            (1, "alice", "start", 0, 0),
        ]
        one = (await client.get(f"/api/flows/{flow_id}/versions/1", headers=people["vic"])).json()
        assert one["info"]["version"] == 1 and one["document"]["nodes"] == []

        listed = (await client.get("/api/flows", params={"q": "line 3"}, headers=people["vic"])).json()
        assert {f["id"] for f in listed} == {flow_id, again.json()["id"]}
        assert next(f for f in listed if f["id"] == flow_id)["node_count"] == 3

        # The document's id must be the flow's.
        wrong = await save(client, alice, flow_id, sim_flow("other"), base=2)
        assert wrong.status_code == 400 and wrong.json()["details"][0]["field"] == "document.id"
        # A version from the future is not a base.
        future = await save(client, alice, flow_id, full, base=9)
        assert future.status_code == 400
        # The audit log has every save.
        audit = (
            await client.get(
                "/api/audit", params={"entity_type": "flow", "entity_id": flow_id}, headers=people["admin"]
            )
        ).json()
        assert [a["action"] for a in audit] == ["flow.update", "flow.create"]
        assert audit[0]["after"]["version"] == 2 and audit[0]["before"]["version"] == 1


async def test_two_editors_saving_from_the_same_version_the_second_gets_409_with_the_diff(
    settings: Settings,
) -> None:
    async with running_hub(settings) as client:
        people = await team(client)
        await create(client, people["alice"], sim_flow("shared"))

        # Both load version 1.
        base = (await client.get("/api/flows/shared", headers=people["alice"])).json()
        assert base["latest_version"] == 1
        alice_doc = copy.deepcopy(base["document"])
        bob_doc = copy.deepcopy(base["document"])

        alice_doc["nodes"][1]["config"]["factor"] = 10.0
        alice_doc["nodes"].append({"id": "debug2", "type": "sink.debug", "config": {}})
        alice_doc["edges"].append({"id": "w3", "source": "scale", "target": "debug2"})
        first = await save(client, people["alice"], "shared", alice_doc, base=1, message="factor 10, second debug")
        assert first.status_code == 200 and first.json()["version"] == 2

        bob_doc["nodes"][0]["label"] = "Bob's label"
        second = await save(client, people["bob"], "shared", bob_doc, base=1, message="relabel")
        assert second.status_code == 409, second.text
        body = second.json()
        assert body["error"] == "conflict"
        extra = body["extra"]
        assert extra["latest_version"] == 2 and extra["author"] == "alice"
        assert extra["message"] == "factor 10, second debug"
        diff = extra["diff"]
        assert diff["from_version"] == 1 and diff["to_version"] == 2
        assert [n["id"] for n in diff["added_nodes"]] == ["debug2"]
        assert [(c["id"], c["fields"], c["config_paths"]) for c in diff["changed_nodes"]] == [
            ("scale", ["config"], ["$.factor"])
        ]
        assert [(w["source"], w["target"]) for w in diff["added_wires"]] == [("scale", "debug2")]
        # Nothing of bob's was saved; based on the latest it goes through.
        assert (await client.get("/api/flows/shared/versions")).json()[0]["version"] == 2
        merged = copy.deepcopy(alice_doc)
        merged["nodes"][0]["label"] = "Bob's label"
        third = await save(client, people["bob"], "shared", merged, base=2, message="relabel")
        assert third.status_code == 200 and third.json()["version"] == 3 and third.json()["author"] == "bob"


async def test_diff_reports_nodes_fields_config_paths_and_wires(settings: Settings) -> None:
    async with running_hub(settings) as client:
        people = await team(client)
        alice = people["alice"]
        doc = sim_flow("d1")
        await create(client, alice, doc)
        new = copy.deepcopy(doc)
        nodes = {n["id"]: n for n in new["nodes"]}
        nodes["sim"]["config"]["tags"][1]["signal"] = "counter"  # deep config change
        nodes["sim"]["config"]["rate_hz"] = 5
        nodes["scale"]["label"] = "x3"
        nodes["scale"]["config"]["offset"] = 1.5  # added field
        nodes["debug"]["position"] = {"x": 500, "y": 80}
        new["nodes"].append({"id": "filter", "type": "transform.filter", "config": {}})
        new["edges"] = [
            {"id": "w1", "source": "sim", "target": "scale"},
            {"id": "wf", "source": "scale", "target": "filter"},
            {"id": "w4", "source": "filter", "target": "debug"},
        ]
        new["name"] = "renamed"
        assert (await save(client, alice, "d1", new, base=1)).status_code == 200
        gone = copy.deepcopy(new)
        gone["nodes"] = [n for n in gone["nodes"] if n["id"] != "filter"]
        gone["edges"] = [{"id": "w1", "source": "sim", "target": "scale"}]
        assert (await save(client, alice, "d1", gone, base=2)).status_code == 200

        response = await client.get("/api/flows/d1/diff", params={"from": 1, "to": 2}, headers=people["vic"])
        assert response.status_code == 200, response.text
        diff = response.json()
        changed = {c["id"]: c for c in diff["changed_nodes"]}
        assert changed["sim"]["fields"] == ["config"]
        assert changed["sim"]["config_paths"] == ["$.rate_hz", "$.tags[1].signal"]
        assert changed["scale"]["fields"] == ["label", "config"]
        assert changed["scale"]["config_paths"] == ["$.offset"]
        assert changed["debug"]["fields"] == ["position"] and changed["debug"]["config_paths"] == []
        assert [n["id"] for n in diff["added_nodes"]] == ["filter"] and diff["removed_nodes"] == []
        assert sorted((w["source"], w["target"]) for w in diff["added_wires"]) == [
            ("filter", "debug"),
            ("scale", "filter"),
        ]
        assert [(w["id"], w["source"], w["target"]) for w in diff["removed_wires"]] == [("w2", "scale", "debug")]
        assert diff["other"] == ["name"] and diff["identical"] is False

        back = (await client.get("/api/flows/d1/diff", params={"from": 2, "to": 3})).json()
        assert [n["id"] for n in back["removed_nodes"]] == ["filter"]
        assert len(back["removed_wires"]) == 2 and back["added_wires"] == []

        same = (await client.get("/api/flows/d1/diff", params={"from": 3, "to": 3})).json()
        assert same["identical"] is True
        assert (await client.get("/api/flows/d1/diff", params={"from": 1, "to": 9})).status_code == 404
        assert (await client.get("/api/flows/d1/diff", params={"from": 0, "to": 1})).status_code == 400


async def test_rollback_creates_a_new_version_equal_to_the_old_one(settings: Settings) -> None:
    async with running_hub(settings) as client:
        people = await team(client)
        alice = people["alice"]
        await create(client, alice, sim_flow("rb", factor=2.0))
        assert (await save(client, alice, "rb", sim_flow("rb", factor=3.0), base=1)).status_code == 200
        assert (await save(client, alice, "rb", sim_flow("rb", factor=4.0), base=2)).status_code == 200

        stale = await client.post("/api/flows/rb/rollback", json={"version": 1, "base_version": 2}, headers=alice)
        assert stale.status_code == 409
        response = await client.post("/api/flows/rb/rollback", json={"version": 1}, headers=people["bob"])
        assert response.status_code == 201, response.text
        info = response.json()
        assert info["version"] == 4 and info["author"] == "bob" and info["message"] == "rollback to version 1"
        latest = (await client.get("/api/flows/rb")).json()
        assert latest["document"]["version"] == 4
        assert latest["document"]["nodes"][1]["config"]["factor"] == 2.0
        assert (await client.get("/api/flows/rb/diff", params={"from": 1, "to": 4})).json()["identical"] is True
        assert (await client.post("/api/flows/rb/rollback", json={"version": 9}, headers=alice)).status_code == 404


# -- import / export --------------------------------------------------------------------------------------


async def test_import_reports_every_problem_with_node_ids_and_paths_and_saves_nothing(settings: Settings) -> None:
    async with running_hub(settings) as client:
        people = await team(client)
        alice = people["alice"]
        bad = sim_flow("bad")
        bad["nodes"][1]["config"]["factor"] = "ten"  # wrong type in a config
        bad["nodes"][1]["config"]["unknown_field"] = 1  # unknown config field
        bad["nodes"].append({"id": "mystery", "type": "transform.scael", "config": {}})  # misspelt type
        bad["nodes"].append({"id": "sim", "type": "sink.debug", "config": {}})  # duplicate id
        bad["edges"].append({"id": "w9", "source": "scale", "target": "nowhere"})  # dangling wire
        response = await client.post(
            "/api/flows/import", content=json.dumps(bad), headers={**alice, "Content-Type": "application/json"}
        )
        assert response.status_code == 400, response.text
        body = response.json()
        assert body["error"] == "invalid_flow"
        diagnostics = body["extra"]["diagnostics"]
        by_code = {d["code"]: d for d in diagnostics}
        assert by_code["duplicate_node_id"]["node_id"] == "sim"
        assert by_code["duplicate_node_id"]["path"] == "$.nodes[4].id"
        assert by_code["unknown_type"]["node_id"] == "mystery"
        assert by_code["unknown_type"]["path"] == "$.nodes[3].type"
        assert "transform.scale" in by_code["unknown_type"]["hint"]
        assert by_code["dangling_edge"]["path"] == "$.edges[2]"
        configs = [d for d in diagnostics if d["code"] == "invalid_config"]
        assert {d["node_id"] for d in configs} == {"scale"}
        assert {d["path"] for d in configs} >= {"$.nodes[1].config.factor"}
        # every error is also in details, field = JSON path
        assert {(d["field"], d.get("node_id")) for d in body["details"]} >= {
            ("$.nodes[3].type", "mystery"),
            ("$.nodes[1].config.factor", "scale"),
        }
        assert (await client.get("/api/flows", headers=alice)).json() == []

        # Not JSON: the line and column of the mistake.
        broken = b'{\n  "format": "proxus.flow",\n  "nodes": [,]\n}'
        response = await client.post(
            "/api/flows/import", content=broken, headers={**alice, "Content-Type": "application/json"}
        )
        assert response.status_code == 400
        (problem,) = response.json()["extra"]["diagnostics"]
        assert problem["code"] == "invalid_json" and problem["line"] == 3

        # Not a flow.
        response = await client.post("/api/flows/import", json={"format": "proxus.template"}, headers=alice)
        assert response.status_code == 400
        assert response.json()["extra"]["diagnostics"][0]["code"] == "wrong_format"

        # Shape problems: all of them, with paths.
        shapeless = sim_flow("shape")
        shapeless["nodes"][0]["position"] = {"x": "left"}
        shapeless["nodes"][2]["id"] = "has space"
        response = await client.post("/api/flows/import", json=shapeless, headers=alice)
        assert response.status_code == 400
        paths = {d["path"] for d in response.json()["extra"]["diagnostics"]}
        assert {"$.nodes[0].position.x", "$.nodes[2].id"} <= paths
        assert (await client.get("/api/flows", headers=alice)).json() == []


async def test_import_dry_run_conflicts_and_export_round_trip(settings: Settings) -> None:
    async with running_hub(settings) as client:
        people = await team(client)
        alice = people["alice"]
        doc = sim_flow("rt")
        dry = await client.post("/api/flows/import", params={"dry_run": True}, json=doc, headers=alice)
        assert dry.status_code == 200, dry.text
        assert dry.json()["dry_run"] is True and dry.json()["version"] is None
        assert [p["edge"] for p in dry.json()["plans"]] == ["e1"]
        assert (await client.get("/api/flows", headers=alice)).json() == []

        imported = await client.post("/api/flows/import", json=doc, headers=alice)
        assert imported.status_code == 201, imported.text
        assert imported.json()["created"] is True and imported.json()["version"] == 1

        exported = await client.get("/api/flows/rt/export", headers=people["vic"])
        assert exported.status_code == 200
        assert exported.headers["content-disposition"] == 'attachment; filename="rt-v1.flow.json"'
        file_doc = json.loads(exported.content)
        assert file_doc["id"] == "rt" and file_doc["version"] == 1
        assert [n.get("config", {}) for n in file_doc["nodes"]] == [n["config"] for n in doc["nodes"]]

        again = await client.post("/api/flows/import", content=exported.content, headers=alice)
        assert again.status_code == 409
        as_version = await client.post(
            "/api/flows/import", params={"on_conflict": "new_version"}, content=exported.content, headers=alice
        )
        assert as_version.status_code == 201 and as_version.json()["version"] == 2
        assert as_version.json()["created"] is False
        assert (await client.get("/api/flows/rt/diff", params={"from": 1, "to": 2})).json()["identical"] is True
        copied = await client.post(
            "/api/flows/import", params={"on_conflict": "copy"}, content=exported.content, headers=alice
        )
        assert copied.status_code == 201 and copied.json()["flow_id"].startswith("rt-copy")
        copy_doc = (await client.get(f"/api/flows/{copied.json()['flow_id']}")).json()["document"]
        assert copy_doc["id"] == copied.json()["flow_id"]
        assert copy_doc["nodes"] == file_doc["nodes"] and copy_doc["edges"] == file_doc["edges"]

        # Export of an older version, and the round trip of the file through import is exact.
        old = await client.get("/api/flows/rt/export", params={"version": 1})
        assert json.loads(old.content)["version"] == 1
        assert (await client.delete("/api/flows/rt", headers=alice)).status_code == 204
        back = await client.post("/api/flows/import", content=old.content, headers=alice)
        assert back.status_code == 201
        round_trip = (await client.get("/api/flows/rt/export")).content
        assert json.loads(round_trip) == json.loads(old.content)


# -- validate / compile ------------------------------------------------------------------------------------


async def test_validate_and_compile_give_diagnostics_tied_to_nodes(settings: Settings) -> None:
    async with running_hub(settings) as client:
        people = await team(client)
        alice, vic = people["alice"], people["vic"]
        await create(client, alice, sim_flow("vc"))

        ok = await client.post("/api/flows/vc/validate", json={}, headers=vic)
        assert ok.status_code == 200, ok.text
        assert ok.json()["ok"] is True and ok.json()["version"] == 1 and ok.json()["errors"] == 0
        compiled = await client.post("/api/flows/vc/compile", headers=vic)
        assert compiled.status_code == 200, compiled.text
        (plan,) = compiled.json()["plans"]
        assert plan["edge"] == "e1" and plan["steps"] == 3 and plan["hash"].startswith("sha256:")
        assert plan["plan_id"] == "vc@e1" and plan["plan"] is None
        full = await client.post("/api/flows/vc/compile", params={"include_plans": True}, json={}, headers=vic)
        assert [s["node_id"] for s in full.json()["plans"][0]["plan"]["steps"]] == ["sim", "scale", "debug"]

        # A draft with a cycle saves (drafts may be unfinished) but validation names every node on it.
        cyclic = sim_flow("vc")
        cyclic["nodes"].append({"id": "filter", "type": "transform.filter", "config": {}})
        cyclic["edges"] += [
            {"id": "w3", "source": "scale", "target": "filter"},
            {"id": "w4", "source": "filter", "target": "scale"},
        ]
        assert (await save(client, alice, "vc", cyclic, base=1, message="loop")).status_code == 200
        report = (await client.post("/api/flows/vc/validate", json={}, headers=vic)).json()
        assert report["ok"] is False and report["version"] == 2
        cycle = [d for d in report["diagnostics"] if d["code"] == "cycle"]
        assert {d["node_id"] for d in cycle} == {"scale", "filter"}
        assert all("scale" in d["message"] and "filter" in d["message"] for d in cycle)
        assert {d["path"] for d in cycle} == {"$.nodes[1]", "$.nodes[3]"}
        failed = (await client.post("/api/flows/vc/compile", json={}, headers=vic)).json()
        assert (
            failed["ok"] is False and failed["plans"] == [] and any(d["code"] == "cycle" for d in failed["diagnostics"])
        )

        # An older version, and a posted (unsaved) document.
        assert (await client.post("/api/flows/vc/validate", json={"version": 1}, headers=vic)).json()["ok"] is True
        posted = sim_flow("vc")
        posted["nodes"][1]["config"]["factor"] = "x"
        report = (await client.post("/api/flows/vc/validate", json={"document": posted}, headers=vic)).json()
        assert report["ok"] is False and report["version"] is None
        assert [(d["node_id"], d["path"]) for d in report["diagnostics"] if d["severity"] == "error"] == [
            ("scale", "$.nodes[1].config.factor")
        ]
        wrong_id = (await client.post("/api/flows/vc/validate", json={"document": sim_flow("zz")})).json()
        assert [d["code"] for d in wrong_id["diagnostics"]] == ["wrong_flow_id"]
        assert (await client.post("/api/flows/nope/validate", json={}, headers=vic)).status_code == 404


# -- roles --------------------------------------------------------------------------------------------------


async def test_roles_viewer_reads_editor_writes(settings: Settings) -> None:
    async with running_hub(settings) as client:
        people = await team(client)
        vic, alice = people["vic"], people["alice"]
        await create(client, alice, sim_flow("auth"))
        doc = sim_flow("auth")
        reads = [
            ("GET", "/api/flows", None),
            ("GET", "/api/flows/auth", None),
            ("GET", "/api/flows/auth/versions", None),
            ("GET", "/api/flows/auth/versions/1", None),
            ("GET", "/api/flows/auth/diff?from=1&to=1", None),
            ("GET", "/api/flows/auth/export", None),
            ("POST", "/api/flows/auth/validate", {}),
            ("POST", "/api/flows/auth/compile", {}),
            ("GET", "/api/deployments", None),
        ]
        writes = [
            ("POST", "/api/flows", {"name": "x"}),
            ("PUT", "/api/flows/auth", {"document": doc, "base_version": 1}),
            ("DELETE", "/api/flows/auth", None),
            ("POST", "/api/flows/auth/rollback", {"version": 1}),
            ("POST", "/api/flows/import", sim_flow("other")),
            ("POST", "/api/flows/auth/deploy", {}),
            ("POST", "/api/flows/auth/undeploy", {}),
        ]
        for method, url, body in reads:
            response = await client.request(method, url, json=body, headers=vic)
            assert response.status_code == 200, (method, url, response.text)
        for method, url, body in writes:
            response = await client.request(method, url, json=body, headers=vic)
            assert response.status_code == 403, (method, url, response.text)
        # Nobody signed in: 401 everywhere.
        anonymous = Client(app=client.app, base_url="http://hub.test")
        for method, url, body in reads[:2] + writes[:1]:
            response = await anonymous.request(method, url, json=body)
            assert response.status_code == 401, (method, url)
        # Nothing a viewer did changed anything.
        assert (await client.get("/api/flows/auth", headers=vic)).json()["latest_version"] == 1
        assert (await client.get("/api/flows/auth/export", headers=alice)).status_code == 200
        assert (await client.delete("/api/flows/auth", headers=alice)).status_code == 204
        assert (await client.get("/api/flows/auth", headers=vic)).status_code == 404


async def test_versions_are_immutable_rows_with_the_full_document(settings: Settings, database_url: str) -> None:
    async with running_hub(settings) as client:
        people = await team(client)
        await create(client, people["alice"], sim_flow("imm"))
        assert (await save(client, people["alice"], "imm", sim_flow("imm", factor=5), base=1)).status_code == 200
    conn = await asyncpg.connect(database_url)
    try:
        rows = await conn.fetch("SELECT version, document FROM flow_versions WHERE flow_id = 'imm' ORDER BY version")
    finally:
        await conn.close()
    docs = [json.loads(r["document"]) for r in rows]
    assert [d["version"] for d in docs] == [1, 2] and all(d["id"] == "imm" for d in docs)
    assert [d["nodes"][1]["config"]["factor"] for d in docs] == [2.0, 5]
