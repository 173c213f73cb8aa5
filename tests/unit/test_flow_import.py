"""Import: every problem reported with a path; mutated and random documents give diagnostics, nothing else."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import msgspec
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from proxus.catalog import Catalog
from proxus.compiler import validate_flow
from proxus.diagnostics import Diagnostic
from proxus.flow import FlowDocument, export_flow, load_flow

CATALOG = Catalog.load()
EXAMPLES = sorted((Path(__file__).parents[2] / "examples").glob("*.json"))


def example(name: str = "simulator-udf-debug.json") -> dict[str, Any]:
    return json.loads((Path(__file__).parents[2] / "examples" / name).read_text())


def test_examples_compile_without_diagnostics() -> None:
    assert len(EXAMPLES) >= 3
    for path in EXAMPLES:
        _doc, result = validate_flow(path.read_bytes(), CATALOG)
        assert result.diagnostics == [], (path.name, [d.render() for d in result.diagnostics])
        assert result.plans


def test_every_structural_problem_is_reported_at_once() -> None:
    data = example()
    data["nodes"][0]["id"] = "has space"
    data["nodes"][1]["position"] = {"x": "left"}
    del data["nodes"][2]["type"]
    data["edges"][0]["colour"] = "red"
    data["name"] = ""
    doc, diagnostics = load_flow(data)
    assert doc is None
    paths = {d.path for d in diagnostics}
    assert {"$.nodes[0].id", "$.nodes[1].position.x", "$.nodes[2]", "$.edges[0]", "$.name"} <= paths
    by_path = {d.path: d for d in diagnostics}
    assert by_path["$.nodes[1].position.x"].node_id == data["nodes"][1]["id"]
    assert "missing required field 'type'" in by_path["$.nodes[2]"].message
    assert "unknown field 'colour'" in by_path["$.edges[0]"].message


def test_not_json_reports_line_and_column() -> None:
    doc, (d,) = load_flow(b'{\n  "format": "proxus.flow",\n  "nodes": [,]\n}')
    assert doc is None and d.code == "invalid_json" and d.line == 3


def test_wrong_format_and_newer_schema() -> None:
    assert load_flow({"format": "node-red"})[1][0].code == "wrong_format"
    data = example()
    data["schema_version"] = 99
    assert load_flow(data)[1][0].code == "newer_schema"


def test_duplicate_ids_are_reported_per_duplicate() -> None:
    data = example()
    data["nodes"].append(copy.deepcopy(data["nodes"][0]))
    _doc, diagnostics = load_flow(data)
    assert [d.code for d in diagnostics] == ["duplicate_node_id"]
    assert diagnostics[0].path == f"$.nodes[{len(data['nodes']) - 1}].id"


def test_import_never_runs_udf_code(tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    data = example()
    udf = next(n for n in data["nodes"] if n["type"] == "udf.python")
    udf["config"]["code"] = (
        f"open({str(marker)!r}, 'w').write('x')\n"
        f"@(lambda f: open({str(marker)!r}, 'w'))\n"
        f"def process(batch, state, _=open({str(marker)!r}, 'w')):\n    return batch\n"
    )
    validate_flow(data, CATALOG)
    export_flow(msgspec.convert(data, FlowDocument), CATALOG)
    assert not marker.exists()


def test_export_round_trips() -> None:
    for path in EXAMPLES:
        doc, _ = load_flow(path.read_bytes())
        assert doc is not None
        again, diagnostics = load_flow(export_flow(doc, CATALOG))
        assert again == doc and diagnostics == []


def _check_outcome(data: Any) -> None:
    """The documented contract: a list of Diagnostics, a document only when there is no error."""
    doc, result = validate_flow(data, CATALOG)
    assert all(isinstance(d, Diagnostic) for d in result.diagnostics)
    if result.ok:
        assert doc is not None
    else:
        assert not result.plans
        assert all(d.message for d in result.diagnostics)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=10), children, max_size=5),
    max_leaves=30,
)


def _mutate(data: Any, path: list[Any], value: Any, action: str) -> Any:
    """Replace, delete or inject at a path chosen by the strategy."""
    target = data
    for key in path[:-1]:
        target = target[key]
    key = path[-1]
    if action == "delete" and isinstance(target, dict):
        target.pop(key, None)
    elif action == "inject" and isinstance(target, dict):
        target[f"x_{key}"] = value
    else:
        target[key] = value
    return data


def _paths(data: Any, prefix: list[Any]) -> list[list[Any]]:
    out = []
    if isinstance(data, dict):
        for k, v in data.items():
            out.append([*prefix, k])
            out.extend(_paths(v, [*prefix, k]))
    elif isinstance(data, list):
        for i, v in enumerate(data):
            out.append([*prefix, i])
            out.extend(_paths(v, [*prefix, i]))
    return out


@given(st.data())
@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_mutated_documents_give_diagnostics_and_nothing_else(data: st.DataObject) -> None:
    source = example(data.draw(st.sampled_from([p.name for p in EXAMPLES])))
    for _ in range(data.draw(st.integers(1, 4))):
        path = data.draw(st.sampled_from(_paths(source, [])))
        source = _mutate(source, path, data.draw(json_values), data.draw(st.sampled_from(["set", "delete", "inject"])))
    _check_outcome(source)
    _check_outcome(json.dumps(source))


@given(json_values)
@settings(max_examples=200, deadline=None)
def test_random_json_gives_diagnostics(value: Any) -> None:
    _check_outcome(value)
    _check_outcome(json.dumps(value).encode())


@given(st.binary(max_size=200))
@settings(max_examples=200, deadline=None)
def test_random_bytes_give_diagnostics(blob: bytes) -> None:
    _check_outcome(blob)
