"""The `proxus` command line as a user runs it: catalog, validate, compile."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from proxus.cli import main
from proxus.plan import decode_plan

EXAMPLES = Path(__file__).parents[2] / "examples"


def test_catalog_lists_every_type_and_json_has_schemas(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["catalog"]) == 0
    out = capsys.readouterr().out
    assert "modbus.read" in out and "sink.historian" in out and "ANALYTICS" in out
    assert main(["catalog", "--json"]) == 0
    described = json.loads(capsys.readouterr().out)
    assert len(described) == 19
    assert all(entry["config_schema"] and "example" in entry for entry in described)


def test_validate_a_good_flow(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["validate", str(EXAMPLES / "modbus-energy-meter.json")]) == 0
    assert "valid; compiles to 1 plan(s)" in capsys.readouterr().out


def test_a_bad_flow_exits_non_zero_and_prints_every_diagnostic(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    doc = json.loads((EXAMPLES / "simulator-udf-debug.json").read_text())
    doc["edges"].append({"id": "loop", "source": "debug", "target": "line"})  # out of a sink, into a source
    doc["nodes"][1]["config"]["timeout_ms"] = 0
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(doc))
    assert main(["validate", str(path)]) == 1
    err = capsys.readouterr().err
    assert "[sink_has_output]" in err and "[source_has_input]" in err and "[invalid_config]" in err
    assert 'node deviation "Deviation flag"' in err
    assert "$.nodes[1].config.timeout_ms" in err
    assert "hint:" in err and "error(s)" in err


def test_compile_writes_one_verified_plan_per_edge(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out_dir = tmp_path / "plans"
    assert main(["compile", str(EXAMPLES / "opcua-machine-alarm.json"), "-o", str(out_dir)]) == 0
    (plan_file,) = out_dir.glob("*.plan.json")
    plan = decode_plan(plan_file.read_bytes())  # the hash verifies
    assert plan.edge == "local" and plan.steps[0].node_id == "machine"
    assert main(["compile", str(EXAMPLES / "opcua-machine-alarm.json"), "--edge", "elsewhere"]) == 1
    assert "no part of this flow runs on edge 'elsewhere'" in capsys.readouterr().err


def test_a_missing_file_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["validate", "/nonexistent/flow.json"]) == 2
    assert "no such file" in capsys.readouterr().err
