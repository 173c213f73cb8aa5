"""The compiler against the real catalog: every diagnostic it promises, determinism, per-edge cuts."""

from __future__ import annotations

import random
from typing import Any

import msgspec
import networkx as nx
from hypothesis import given, settings
from hypothesis import strategies as st

from proxus.catalog import Catalog
from proxus.compiler import compile_flow, validate_flow
from proxus.flow import FlowDocument
from proxus.plan import decode_plan
from proxus.registry import DeviceRecord, Registry

CATALOG = Catalog.load()

SIM = {"device_name": "sim", "tags": [{"tag": "t1", "signal": "sine"}]}


def node(node_id: str, type_: str, config: dict[str, Any] | None = None, **extra: Any) -> dict[str, Any]:
    spec = CATALOG.get(type_)
    assert spec is not None, type_
    if config is None:
        config = msgspec.to_builtins(spec.example)
    return {"id": node_id, "type": type_, "label": extra.pop("label", node_id), "config": config, **extra}


def wire(source: str, target: str, source_port: str = "out", target_port: str = "in") -> dict[str, Any]:
    return {
        "id": f"{source}.{source_port}-{target}.{target_port}",
        "source": source,
        "target": target,
        "source_port": source_port,
        "target_port": target_port,
    }


def flow(nodes: list[dict[str, Any]], edges: list[dict[str, Any]], **metadata: Any) -> dict[str, Any]:
    return {
        "format": "proxus.flow",
        "schema_version": 1,
        "id": "f1",
        "name": "test flow",
        "metadata": metadata,
        "nodes": nodes,
        "edges": edges,
    }


def chain() -> dict[str, Any]:
    return flow(
        [
            node("sim", "simulator", SIM),
            node("scale", "transform.scale"),
            node("avg", "window.tumbling"),
            node("dbg", "sink.debug"),
        ],
        [wire("sim", "scale"), wire("scale", "avg"), wire("avg", "dbg")],
    )


def codes(data: dict[str, Any], registry: Registry | None = None) -> dict[str, list[str | None]]:
    _doc, result = validate_flow(data, CATALOG, registry or Registry())
    out: dict[str, list[str | None]] = {}
    for d in result.diagnostics:
        out.setdefault(d.code, []).append(d.node_id)
    return out


def test_valid_chain_compiles_to_one_plan_in_topological_order() -> None:
    _doc, result = validate_flow(chain(), CATALOG)
    assert result.ok, [d.render() for d in result.diagnostics]
    assert list(result.plans) == ["local"]
    plan = result.plans["local"]
    assert [s.node_id for s in plan.steps] == ["sim", "scale", "avg", "dbg"]
    assert plan.steps[1].inputs[0].source == "sim"
    assert decode_plan(plan.encode()) == plan  # the hash verifies


def test_same_flow_compiles_to_identical_bytes_whatever_the_document_order() -> None:
    data = chain()
    first = validate_flow(data, CATALOG)[1].plans["local"].encode()
    rng = random.Random(7)
    for _ in range(5):
        shuffled = dict(data, nodes=rng.sample(data["nodes"], len(data["nodes"])))
        shuffled["edges"] = rng.sample(data["edges"], len(data["edges"]))
        assert validate_flow(shuffled, CATALOG)[1].plans["local"].encode() == first


def test_cycle_names_every_node_on_it() -> None:
    data = flow(
        [
            node("sim", "simulator", SIM),
            node("a", "transform.scale"),
            node("b", "transform.scale"),
            node("c", "transform.scale"),
            node("dbg", "sink.debug"),
        ],
        [wire("sim", "a"), wire("a", "b"), wire("b", "c"), wire("c", "a"), wire("c", "dbg")],
    )
    _doc, result = validate_flow(data, CATALOG)
    cycle = [d for d in result.diagnostics if d.code == "cycle"]
    assert sorted(d.node_id for d in cycle) == ["a", "b", "c"]
    assert "a → b → c → a" in cycle[0].message
    assert not result.plans


def test_self_loop_is_a_cycle() -> None:
    data = flow([node("sim", "simulator", SIM), node("a", "transform.scale")], [wire("sim", "a"), wire("a", "a")])
    assert codes(data)["cycle"] == ["a"]


def test_dangling_and_duplicate_wires() -> None:
    data = chain()
    data["edges"].append(wire("scale", "ghost"))
    dup = wire("scale", "avg")
    dup["id"] = "again"
    data["edges"].append(dup)
    found = codes(data)
    assert found["dangling_edge"] == ["scale"]
    assert found["duplicate_edge"] == ["avg"]


def test_unknown_type_suggests_and_unknown_version_lists_known() -> None:
    data = chain()
    data["nodes"][1] = {"id": "scale", "type": "transform.scal", "config": {}}
    data["nodes"][2]["type_version"] = 9
    _doc, result = validate_flow(data, CATALOG)
    by_code = {d.code: d for d in result.diagnostics}
    assert "transform.scale" in by_code["unknown_type"].hint
    assert by_code["unknown_type"].path == "$.nodes[1].type"
    assert "v1" in by_code["unknown_version"].message
    assert by_code["unknown_version"].node_id == "avg"


def test_invalid_config_has_the_field_path_and_every_problem() -> None:
    data = chain()
    data["nodes"][2]["config"] = {"window_s": -1, "aggregates": ["median"], "bogus": 1}
    _doc, result = validate_flow(data, CATALOG)
    paths = sorted(d.path for d in result.diagnostics if d.code == "invalid_config")
    assert paths == ["$.nodes[2].config", "$.nodes[2].config.aggregates[0]", "$.nodes[2].config.window_s"]
    assert all(d.node_id == "avg" for d in result.diagnostics if d.code == "invalid_config")


def test_expression_error_has_line_and_column() -> None:
    data = chain()
    data["nodes"][1] = node("scale", "transform.filter", {"expression": "value > 1 and value.real"})
    _doc, result = validate_flow(data, CATALOG)
    (d,) = [d for d in result.diagnostics if d.code == "invalid_config"]
    assert d.path == "$.nodes[1].config.expression"
    assert d.line == 1 and d.column is not None and d.column > 10


def test_port_kind_mismatch_and_unknown_port() -> None:
    data = flow(
        [
            node("sim", "simulator", SIM),
            node("alarm", "analytics.threshold"),
            node("scale", "transform.scale"),
            node("dbg", "sink.debug"),
        ],
        [
            wire("sim", "alarm"),
            wire("alarm", "scale", source_port="events"),
            wire("alarm", "dbg", source_port="nope"),
            wire("scale", "dbg"),
        ],
    )
    found = codes(data)
    assert found["port_kind_mismatch"] == ["scale"]
    assert found["unknown_port"] == ["alarm"]


def test_missing_required_input() -> None:
    data = flow(
        [node("sim", "simulator", SIM), node("dbg", "sink.debug"), node("scale", "transform.scale")],
        [wire("sim", "dbg")],
    )
    assert "scale" in codes(data)["missing_input"]


def test_source_with_input_and_sink_with_output() -> None:
    data = flow(
        [node("sim", "simulator", SIM), node("sim2", "simulator", SIM), node("dbg", "sink.debug")],
        [wire("sim", "dbg"), wire("dbg", "sim2")],
    )
    found = codes(data)
    assert found["sink_has_output"] == ["dbg"]
    assert found["source_has_input"] == ["sim2"]


def test_nodes_no_device_feeds_are_reported_unreachable() -> None:
    data = chain()
    data["nodes"].append(node("lonely", "transform.scale"))
    data["nodes"].append(node("lonely_sink", "sink.debug"))
    data["edges"].append(wire("lonely", "lonely_sink"))
    _doc, result = validate_flow(data, CATALOG)
    unreachable = {d.node_id for d in result.diagnostics if d.code == "unreachable"}
    assert unreachable == {"lonely", "lonely_sink"}
    assert all(d.severity == "warning" for d in result.diagnostics if d.code == "unreachable")
    assert [d.node_id for d in result.diagnostics if d.severity == "error"] == ["lonely"]  # its missing input


def test_stateful_node_fed_from_two_edges_is_refused() -> None:
    data = flow(
        [
            node("s1", "simulator", SIM, edge="line1"),
            node("s2", "simulator", SIM, edge="line2"),
            node("avg", "window.tumbling"),
            node("dbg", "sink.debug"),
        ],
        [wire("s1", "avg"), wire("s2", "avg"), wire("avg", "dbg")],
    )
    _doc, result = validate_flow(data, CATALOG)
    (d,) = [d for d in result.diagnostics if d.code == "stateful_across_edges"]
    assert d.node_id == "avg" and "line1" in d.message and "line2" in d.message


def test_stateless_branches_are_cut_per_edge() -> None:
    data = flow(
        [
            node("s1", "simulator", SIM, edge="line1"),
            node("s2", "simulator", SIM, edge="line2"),
            node("scale", "transform.scale"),
            node("dbg", "sink.debug"),
        ],
        [wire("s1", "scale"), wire("s2", "scale"), wire("scale", "dbg")],
    )
    _doc, result = validate_flow(data, CATALOG)
    assert result.ok
    assert sorted(result.plans) == ["line1", "line2"]
    line1 = result.plans["line1"]
    assert [s.node_id for s in line1.steps] == ["s1", "scale", "dbg"]
    assert [w.source for w in line1.steps[1].inputs] == ["s1"]  # only this edge's part
    assert result.plans["line1"].hash != result.plans["line2"].hash


def test_managed_device_settings_are_inlined_and_place_the_node() -> None:
    registry = Registry(
        devices={
            "meter1": DeviceRecord(
                id="meter1", protocol="modbus", edge="plant-a", settings={"host": "10.0.0.5", "port": 1502}
            ),
            "plc": DeviceRecord(id="plc", protocol="opcua", edge="plant-a", settings={}),
        }
    )
    spec = CATALOG.get("modbus.read")
    assert spec is not None
    config = msgspec.to_builtins(spec.example)
    config.pop("host", None)
    config["device"] = "meter1"
    config["port"] = 502  # a field set on the node wins over the device's
    data = flow([node("m", "modbus.read", config), node("dbg", "sink.debug")], [wire("m", "dbg")])
    _doc, result = validate_flow(data, CATALOG, registry)
    assert result.ok, [d.render() for d in result.diagnostics]
    step = result.plans["plant-a"].steps[0]
    assert step.config["host"] == "10.0.0.5" and step.config["port"] == 502

    config["device"] = "nope"
    assert codes(data, registry)["unknown_device"] == ["m"]
    config["device"] = "plc"
    assert codes(data, registry)["wrong_device_protocol"] == ["m"]


def test_unknown_edge_when_the_registry_lists_edges() -> None:
    data = chain()
    data["nodes"][0]["edge"] = "mars"
    assert codes(data, Registry(edges=frozenset({"local"})))["unknown_edge"] == ["sim"]


# -- properties ----------------------------------------------------------------------------------


@st.composite
def dags(draw: st.DrawFn) -> tuple[dict[str, Any], int]:
    """A random DAG: a few simulators, then scale nodes each wired from some earlier nodes."""
    sources = draw(st.integers(1, 4))
    total = draw(st.integers(sources + 1, 40))
    names = [f"n{i:03d}" for i in range(total)]
    order = draw(st.permutations(names))  # ids need not follow the topological order
    nodes = [node(order[i], "simulator", SIM) for i in range(sources)]
    edges = []
    for i in range(sources, total):
        nodes.append(node(order[i], "transform.scale"))
        parents = draw(st.sets(st.integers(0, i - 1), min_size=1, max_size=3))
        edges.extend(wire(order[p], order[i]) for p in sorted(parents))
    draw(st.randoms()).shuffle(nodes)
    return flow(nodes, edges), sources


@given(dags())
@settings(max_examples=60, deadline=None)
def test_random_dags_compile_with_every_step_after_its_inputs(case: tuple[dict[str, Any], int]) -> None:
    data, _sources = case
    doc = msgspec.convert(data, FlowDocument)
    result = compile_flow(doc, CATALOG)
    assert result.ok, [d.render() for d in result.diagnostics]
    (plan,) = result.plans.values()
    seen: set[str] = set()
    for step in plan.steps:
        assert all(w.source in seen for w in step.inputs)
        seen.add(step.node_id)
    assert len(seen) == len(data["nodes"])


@given(dags(), st.data())
@settings(max_examples=60, deadline=None)
def test_random_cyclic_graphs_are_rejected_naming_the_cycle(
    case: tuple[dict[str, Any], int], draw: st.DataObject
) -> None:
    data, _sources = case
    by_id = {n["id"]: n for n in data["nodes"]}
    inner = sorted(i for i, n in by_id.items() if n["type"] == "transform.scale")
    graph = nx.DiGraph([(e["source"], e["target"]) for e in data["edges"]])
    # pick a path between two inner nodes and close it into a loop
    a = draw.draw(st.sampled_from(inner))
    reachable = [*sorted(n for n in nx.descendants(graph, a) if n in inner), a]
    b = draw.draw(st.sampled_from(reachable))
    loop_nodes = set(nx.shortest_path(graph, a, b)) if a != b else {a}
    data["edges"].append(wire(b, a))
    result = compile_flow(msgspec.convert(data, FlowDocument), CATALOG)
    assert not result.ok and not result.plans
    named = {d.node_id for d in result.diagnostics if d.code == "cycle"}
    assert loop_nodes <= named
