"""Templates against a real Hub (PostgreSQL, NATS, Redis) and the real node catalog.

Built-in templates instantiate with their defaults into flows that compile cleanly; templates are
saved from a flow or a selection with parameters mapped to JSON paths; values are type-checked;
instantiation creates flow version 1 through the flows domain; export → import round-trips and a
broken file is refused with every problem and its JSON path.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import asyncpg  # type: ignore[import-untyped, unused-ignore]
import pytest

from backend.settings import Settings
from backend.templates import placeholders as ph
from backend.templates.schemas import Instantiate
from backend.templates.service import build, load_builtins
from proxus.catalog import Catalog
from proxus.compiler import validate_flow
from tests.integration.hub_support import ADMIN, add_user, hub_settings, running_hub, setup_admin

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
BUILTIN_IDS = {
    "builtin-modbus-meter-historian",
    "builtin-opcua-threshold-webhook",
    "builtin-demo-line-dashboard",
    "builtin-http-forwarder",
    "builtin-udf-example",
    "builtin-oee",
}


@pytest.fixture(scope="module")
def catalog() -> Catalog:
    return Catalog.load()


@pytest.fixture
def settings(
    tmp_path: Path, database_url: str, nats_server_factory: Any, redis_url: str, redis_prefix: str
) -> Settings:
    hub = nats_server_factory.hub()
    return hub_settings(tmp_path, database_url, hub.url, redis_url, redis_prefix)


def example(name: str) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads((EXAMPLES / f"{name}.json").read_text())
    return loaded


# -- without a Hub: the shipped templates and placeholder rules ------------------------------------


def test_every_builtin_template_compiles_with_its_defaults(catalog: Catalog) -> None:
    builtins = load_builtins(catalog)
    assert set(builtins) >= BUILTIN_IDS, sorted(builtins)
    for template in builtins.values():
        assert template.builtin and template.id.startswith("builtin-")
        document, _dashboard, _ = build(template, Instantiate(name=f"From {template.name}"), catalog, None)
        doc, result = validate_flow(document, catalog)
        assert doc is not None, template.id
        assert result.diagnostics == [], (template.id, [d.render() for d in result.diagnostics])
        assert result.plans, template.id
        # the preview is the document's nodes and wires
        assert [n.id for n in template.preview.nodes] == [n["id"] for n in template.document["nodes"]]
        assert len(template.preview.edges) == len(template.document["edges"])
    assert builtins["builtin-demo-line-dashboard"].dashboard is not None
    oee = builtins["builtin-oee"].document
    assert {n["type"] for n in oee["nodes"]} >= {"transform.expression", "window.tumbling", "simulator"}
    udf = builtins["builtin-udf-example"].document
    assert [n["type"] for n in udf["nodes"]] == ["simulator", "udf.python", "sink.debug"]


def test_placeholders_are_typed_when_whole_and_text_inside_strings() -> None:
    doc = {
        "a": "{{port}}",
        "b": "{{ line }}/temperature",
        "c": ["{{flag}}", "x{{flag}}"],
        "d": "{{host}}",
        "e": "{{x}} and {{ not a placeholder }} {{",
    }
    out = ph.substitute(doc, {"port": 502, "line": "l1", "flag": True, "host": None, "x": 1.5})
    assert out == {"a": 502, "b": "l1/temperature", "c": [True, "xtrue"], "e": "1.5 and {{ not a placeholder }} {{"}
    assert "d" not in out  # an optional parameter left empty removes the key: the node default applies
    found = {(o.name, o.path, o.whole) for o in ph.find(doc)}
    assert ("port", "$.a", True) in found and ("line", "$.b", False) in found and ("flag", "$.c[0]", True) in found
    assert ph.parse_path('$.nodes[2].config.headers["X-Api"]') == ("nodes", 2, "config", "headers", "X-Api")


# -- against a Hub -------------------------------------------------------------------------------


async def test_browse_export_import_and_delete(settings: Settings) -> None:
    async with running_hub(settings) as client:
        await setup_admin(client)
        await add_user(client, "vera", "viewer")
        listed = (await client.get("/api/templates")).json()
        assert {t["id"] for t in listed} >= BUILTIN_IDS
        demo = next(t for t in listed if t["id"] == "builtin-demo-line-dashboard")
        assert demo["builtin"] and demo["has_dashboard"] and demo["preview"]["nodes"]
        assert "document" not in demo
        assert {t["id"] for t in (await client.get("/api/templates", params={"category": "analytics"})).json()} == {
            "builtin-oee"
        }

        full = (await client.get("/api/templates/builtin-oee")).json()
        assert full["document"]["nodes"] and any(p["name"] == "ideal_rate" for p in full["parameters"])
        assert (await client.get("/api/templates/nope")).status_code == 404

        exported = await client.get("/api/templates/builtin-oee/export")
        assert exported.status_code == 200
        assert "attachment" in exported.headers["content-disposition"]
        file = exported.json()
        assert file["format"] == "proxus.template" and file["id"] == "builtin-oee"

        imported = await client.post("/api/templates/import", content=exported.content)
        assert imported.status_code == 201, imported.text
        copy = imported.json()["template"]
        assert copy["id"].startswith("tpl-") and not copy["builtin"] and copy["name"] == file["name"]
        assert imported.json()["diagnostics"] == []
        assert copy["id"] in {t["id"] for t in (await client.get("/api/templates")).json()}

        assert (await client.delete("/api/templates/builtin-oee")).status_code == 409

        # viewers browse and export, but neither create, import, instantiate nor delete
        await client.login("vera", "password-123")
        assert (await client.get(f"/api/templates/{copy['id']}")).status_code == 200
        assert (await client.get(f"/api/templates/{copy['id']}/export")).status_code == 200
        assert (await client.post("/api/templates/import", content=exported.content)).status_code == 403
        assert (await client.delete(f"/api/templates/{copy['id']}")).status_code == 403
        denied = await client.post(f"/api/templates/{copy['id']}/instantiate", json={"name": "x"})
        assert denied.status_code == 403

        await client.login(*ADMIN)
        assert (await client.delete(f"/api/templates/{copy['id']}")).status_code == 204
        assert (await client.get(f"/api/templates/{copy['id']}")).status_code == 404
        audit = (await client.get("/api/audit", params={"entity_type": "template"})).json()
        assert {"template.import", "template.delete"} <= {a["action"] for a in audit}


async def test_import_reports_every_problem_with_its_path(settings: Settings) -> None:
    async with running_hub(settings) as client:
        await setup_admin(client)
        not_json = await client.post("/api/templates/import", content=b"{ nope")
        assert not_json.status_code == 400 and not_json.json()["error"] == "invalid_import"

        flow = await client.post("/api/templates/import", content=json.dumps(example("modbus-energy-meter")))
        assert flow.status_code == 400
        assert flow.json()["details"][0]["field"] == "$.format"

        broken = {
            "format": "proxus.template",
            "schema_version": 1,
            "name": "Broken",
            "parameters": [
                {"name": "limit", "kind": "number", "default": "high"},
                {"name": "mode", "kind": "enum"},
                {"name": "unused", "kind": "string", "default": "x"},
            ],
            "document": {
                "format": "proxus.flow",
                "schema_version": 1,
                "id": "x",
                "name": "x",
                "nodes": [
                    {"id": "sim", "type": "simulator", "config": {"device_name": "{{who}}", "rate_hz": "{{limit}}"}},
                    {"id": "dbg", "type": "sink.debug", "config": {"label": "{{mode}}"}},
                ],
                "edges": [{"id": "w", "source": "sim", "target": "dbg", "target_port": "{{mode}}"}],
            },
        }
        response = await client.post("/api/templates/import", content=json.dumps(broken))
        assert response.status_code == 400, response.text
        fields = {d["field"] for d in response.json()["details"]}
        assert {
            "$.parameters[0].default",  # "high" is not a number
            "$.parameters[1].options",  # an enum without options
            "$.parameters[2].name",  # no {{unused}} anywhere
            "$.document.nodes[0].config.device_name",  # {{who}} has no parameter
        } <= fields, fields
        # wires are structure: they may not vary
        structural = {d["field"] for d in response.json()["details"] if "structure" in d["message"]}
        assert structural == {"$.document.edges[0].target_port"}

        shape = {"format": "proxus.template", "schema_version": 1, "name": "", "document": [], "extra": 1}
        response = await client.post("/api/templates/import", content=json.dumps(shape))
        assert response.status_code == 400
        fields = {d["field"] for d in response.json()["details"]}
        assert {"$", "$.name", "$.document"} <= fields, fields  # unknown 'extra', empty name, not an object
        assert (await client.get("/api/templates")).json()[-1]["builtin"]  # nothing was stored


async def test_save_a_selection_with_parameters_mapped_to_paths(settings: Settings, catalog: Catalog) -> None:
    flow = example("opcua-machine-alarm")
    async with running_hub(settings) as client:
        await setup_admin(client)
        body = {
            "name": "Overheat alarm",
            "description": "threshold and webhook",
            "category": "alarms",
            "document": flow,
            "node_ids": ["only_temp", "overheat", "webhook"],
            "parameters": [
                {"name": "limit", "label": "High limit", "kind": "number", "targets": ["$.nodes[2].config.high"]},
                {
                    "name": "url",
                    "kind": "string",
                    "default": "https://hooks.example.com/a",
                    "targets": ["$.nodes[3].config.url"],
                },
                {
                    "name": "severity",
                    "kind": "enum",
                    "options": ["warning", "critical"],
                    "targets": ["$.nodes[2].config.severity"],
                },
            ],
        }
        saved = await client.post("/api/templates", json=body)
        assert saved.status_code == 201, saved.text
        template = saved.json()["template"]
        nodes = {n["id"]: n for n in template["document"]["nodes"]}
        assert set(nodes) == {"only_temp", "overheat", "webhook"}  # the selection only
        assert [e["id"] for e in template["document"]["edges"]] == ["only_temp-overheat", "overheat-webhook"]
        assert nodes["overheat"]["config"]["high"] == "{{limit}}"
        assert nodes["webhook"]["config"]["url"] == "{{url}}"
        params = {p["name"]: p for p in template["parameters"]}
        assert params["limit"]["default"] == 80  # taken from the value it replaces
        assert params["severity"]["default"] == "critical"
        assert params["url"]["default"] == "https://hooks.example.com/a"
        # a selection without its device does not compile on its own (a snippet), but can be saved
        assert "missing_input" in {d["code"] for d in saved.json()["diagnostics"]}
        assert all(d["path"].startswith("$.document.") for d in saved.json()["diagnostics"])

        problems = {
            **body,
            "parameters": [
                {"name": "limit", "kind": "integer", "targets": ["$.nodes[2].config.high", "$.nodes[9].config.x"]},
                {"name": "nid", "kind": "string", "targets": ["$.nodes[0].id"]},
                {"name": "cfg", "kind": "string", "targets": ["$.nodes[1].config"]},
                {"name": "bad", "kind": "string", "targets": ["nodes.0"]},
            ],
            "node_ids": ["overheat", "ghost"],
        }
        refused = await client.post("/api/templates", json=problems)
        assert refused.status_code == 400
        fields = {d["field"] for d in refused.json()["details"]}
        assert {
            "$.parameters[0].targets[1]",  # no node 9
            "$.parameters[1].targets[0]",  # ids are structure
            "$.parameters[2].targets[0]",  # a whole object
            "$.parameters[3].targets[0]",  # not a path
            "$.node_ids[1]",  # no such node
        } <= fields, fields

        placeholders_without_parameters = {
            "name": "Dangling",
            "document": {"nodes": [{"id": "s", "type": "simulator", "config": {"device_name": "{{line}}"}}]},
        }
        refused = await client.post("/api/templates", json=placeholders_without_parameters)
        assert refused.status_code == 400
        assert refused.json()["details"][0]["field"] == "$.document.nodes[0].config.device_name"

        bad_dashboard = {
            "name": "With a dashboard",
            "document": {"nodes": [{"id": "s", "type": "simulator", "config": {"device_name": "{{line}}"}}]},
            "parameters": [{"name": "line", "default": "l1"}],
            "dashboard": {"panels": [{"title": "T", "kind": "pie", "series": ["{{line}}/t"]}]},
        }
        refused = await client.post("/api/templates", json=bad_dashboard)
        assert refused.status_code == 400
        assert refused.json()["details"][0]["field"] == "$.dashboard.panels[0].kind"
        bad_dashboard["dashboard"]["panels"][0]["kind"] = "line"
        assert (await client.post("/api/templates", json=bad_dashboard)).status_code == 201

        listed = (await client.get("/api/templates", params={"q": "overheat"})).json()
        assert [t["id"] for t in listed] == [template["id"]]


async def test_instantiate_type_checks_creates_version_1_and_refuses_broken_flows(
    settings: Settings, database_url: str
) -> None:
    async with running_hub(settings) as client:
        await setup_admin(client)
        url = "/api/templates/builtin-demo-line-dashboard/instantiate"
        # with no edge registered the flow's sources have nowhere to run
        nowhere = await client.post(url, json={"name": "Line 2", "dry_run": True})
        assert nowhere.status_code == 400
        assert nowhere.json()["extra"]["diagnostics"][0]["code"] == "unknown_edge"
        assert (await client.post("/api/edges", json={"id": "plant-1"})).status_code == 201

        wrong = await client.post(url, json={"name": "Line 2", "values": {"rate_hz": "fast"}})
        assert wrong.status_code == 400
        assert wrong.json()["details"][0]["field"] == "values.rate_hz"
        assert "rate_hz" in wrong.json()["message"]
        too_big = await client.post(url, json={"name": "Line 2", "values": {"rate_hz": 1000}})
        assert too_big.status_code == 400 and "at most 100" in too_big.json()["message"]
        unknown = await client.post(url, json={"name": "Line 2", "values": {"colour": "red"}})
        assert unknown.status_code == 400 and unknown.json()["details"][0]["field"] == "values.colour"
        required = await client.post(url, json={"name": "Line 2", "values": {"line": None}})
        assert required.status_code == 400 and required.json()["details"][0]["field"] == "values.line"

        unknown_edge = await client.post(url, json={"name": "Line 2", "values": {"edge": "plant-9"}})
        assert unknown_edge.status_code == 400 and unknown_edge.json()["details"][0]["field"] == "values.edge"

        dry = await client.post(url, json={"name": "Line 2", "values": {"line": "line2"}, "dry_run": True})
        assert dry.status_code == 200, dry.text
        assert dry.json()["created"] is False
        assert dry.json()["document"]["nodes"][0]["config"]["device_name"] == "line2"
        assert dry.json()["document"]["metadata"]["default_edge"] == "plant-1"  # the Hub's only edge
        assert (await client.get("/api/flows/" + dry.json()["flow_id"])).status_code == 404

        made = await client.post(
            url, json={"name": "Line 2", "flow_id": "line-2", "values": {"line": "line2", "rate_hz": 2}}
        )
        assert made.status_code == 201, made.text
        result = made.json()
        assert result["flow_id"] == "line-2" and result["version"] == 1 and result["diagnostics"] == []
        dashboard = result["dashboard"]
        assert dashboard["created"] is True and dashboard["definition"]["panels"][0]["series"] == ["line2/temperature"]
        made_dashboard = (await client.get(f"/api/dashboards/{dashboard['id']}")).json()
        assert made_dashboard["name"] == "line2 overview" and made_dashboard["flow_id"] == "line-2"
        assert [p["series"] for p in made_dashboard["panels"]][:2] == [["line2/temperature"], ["line2/speed"]]

        flow = (await client.get("/api/flows/line-2")).json()
        assert flow["latest_version"] == 1 and flow["name"] == "Line 2"
        config = flow["document"]["nodes"][0]["config"]
        assert config["device_name"] == "line2" and config["rate_hz"] == 2
        assert config["tags"][0]["offset"] == 60  # a whole-string placeholder became a number

        again = await client.post(url, json={"name": "Line 2", "flow_id": "line-2"})
        assert again.status_code == 409

        # a value that makes the flow invalid: 400 with the compiler's diagnostics, nothing created
        broken = await client.post(
            "/api/templates/builtin-http-forwarder/instantiate",
            json={"name": "Bad forwarder", "flow_id": "bad-forwarder", "values": {"url": "ftp://example.com/x"}},
        )
        assert broken.status_code == 400, broken.text
        body = broken.json()
        assert body["error"] == "invalid_flow"
        assert body["details"][0]["field"] == "$.nodes[2].config.url"
        assert body["extra"]["diagnostics"][0]["node_id"] == "forward"
        assert (await client.get("/api/flows/bad-forwarder")).status_code == 404

        # an optional parameter left empty removes the field (here: no credential)
        ok = await client.post(
            "/api/templates/builtin-http-forwarder/instantiate",
            json={"name": "Forwarder", "values": {"url": "https://example.com/ingest", "batch_size": 50}},
        )
        assert ok.status_code == 201, ok.text
        forward = next(n for n in ok.json()["document"]["nodes"] if n["id"] == "forward")
        assert "credential" not in forward["config"] and forward["config"]["batch_size"] == 50

    conn = await asyncpg.connect(database_url)
    try:
        versions = await conn.fetch("SELECT flow_id, version, message FROM flow_versions ORDER BY flow_id")
    finally:
        await conn.close()
    assert [(r["flow_id"], r["version"]) for r in versions if r["flow_id"] == "line-2"] == [("line-2", 1)]
    assert all(r["message"].startswith("from template ") for r in versions)


async def test_every_builtin_instantiates_through_the_hub(settings: Settings) -> None:
    async with running_hub(settings) as client:
        await setup_admin(client)
        for edge in ("plant-1", "plant-2"):
            assert (await client.post("/api/edges", json={"id": edge})).status_code == 201
        created = []
        for template_id in sorted(BUILTIN_IDS):
            response = await client.post(
                f"/api/templates/{template_id}/instantiate",
                json={"name": f"Flow from {template_id}", "values": {"edge": "plant-2"}},
            )
            assert response.status_code == 201, (template_id, response.text)
            assert response.json()["diagnostics"] == []
            created.append(response.json()["flow_id"])
        listed = {f["id"] for f in (await client.get("/api/flows")).json()}
        assert set(created) <= listed


async def test_openapi_describes_the_templates_api(settings: Settings) -> None:
    # the frontend's TypeScript types are generated from it
    async with running_hub(settings) as client:
        schema = (await client.get("/api/schema/openapi.json")).json()
        assert "/api/templates/{template_id}/instantiate" in schema["paths"]
        assert "TemplateCreate" in schema["components"]["schemas"]
