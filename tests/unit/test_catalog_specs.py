"""The built-in node catalog: every spec is well formed and documented, and each semantic check works."""

from __future__ import annotations

import ast
import inspect
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any, get_args

import msgspec
import pytest

from nodes.analytics.anomaly import AnomalyConfig
from nodes.analytics.rate_of_change import RateOfChangeConfig
from nodes.analytics.threshold import ThresholdConfig
from nodes.builtin import SPECS
from nodes.device.modbus_read import ModbusReadConfig, Register
from nodes.device.opcua_subscribe import MonitoredNode, OpcUaSubscribeConfig, node_id_problem
from nodes.device.simulator import SimTag, SimulatorConfig
from nodes.host import AsyncOperator, Operator, Sink, Source
from nodes.sink.http import HttpSinkConfig
from nodes.sink.nats import NatsSinkConfig
from nodes.spec import Category, ConfigProblem, NodeConfig, NodeSpec
from nodes.transform.deadband import DeadbandConfig
from nodes.transform.expression import ExpressionConfig
from nodes.transform.filter import FilterConfig
from nodes.transform.quality_filter import QualityFilterConfig
from nodes.transform.rename import Rename, RenameConfig
from nodes.transform.scale import CONVERSIONS, Conversion, ScaleConfig
from nodes.udf.python import PythonUdfConfig
from nodes.window.sliding import SlidingWindowConfig
from nodes.window.tumbling import TumblingWindowConfig

BY_ID = {spec.type_id: spec for spec in SPECS}
spec_params = pytest.mark.parametrize("spec", SPECS, ids=[s.type_id for s in SPECS])


def problems(config: NodeConfig) -> list[ConfigProblem]:
    return list(config.problems())


def paths(config: NodeConfig) -> list[str]:
    return [p.path for p in config.problems()]


def walk_properties(node: Any, where: str = "$") -> Iterator[tuple[str, dict[str, Any]]]:
    """Every (location, property schema) in a JSON Schema, $defs and nested schemas included."""
    if isinstance(node, dict):
        for name, prop in (node.get("properties") or {}).items():
            yield f"{where}.{name}", prop
        for key, value in node.items():
            if key != "properties":
                yield from walk_properties(value, f"{where}/{key}")
            else:
                for name, prop in value.items():
                    yield from walk_properties(prop, f"{where}.{name}")
    elif isinstance(node, list):
        for i, item in enumerate(node):
            yield from walk_properties(item, f"{where}[{i}]")


# --- every spec ---------------------------------------------------------------------------------


def test_catalog_is_complete_and_ids_unique() -> None:
    ids = [spec.type_id for spec in SPECS]
    assert len(ids) == len(set(ids))
    assert set(ids) == {
        "modbus.read", "opcua.subscribe", "simulator",
        "transform.scale", "transform.filter", "transform.deadband", "transform.expression",
        "transform.rename", "transform.quality_filter",
        "window.tumbling", "window.sliding",
        "analytics.threshold", "analytics.rate_of_change", "analytics.anomaly",
        "udf.python",
        "sink.historian", "sink.http", "sink.nats", "sink.debug",
    }  # fmt: skip
    # Palette order follows the category order.
    order = list(Category)
    assert [order.index(s.category) for s in SPECS] == sorted(order.index(s.category) for s in SPECS)


@spec_params
def test_example_round_trips(spec: NodeSpec) -> None:
    assert isinstance(spec.example, spec.config)
    encoded = msgspec.json.encode(spec.example)
    decoded = msgspec.json.decode(encoded, type=spec.config)
    assert decoded == spec.example
    assert msgspec.json.encode(decoded) == encoded


@spec_params
def test_example_has_no_problems(spec: NodeSpec) -> None:
    assert problems(spec.example) == []


@spec_params
def test_defaults_decode_from_empty_object(spec: NodeSpec) -> None:
    # Every top-level field has a default, so a node dropped from the palette has a typed config.
    config = msgspec.json.decode(b"{}", type=spec.config)
    assert config == spec.config()


@spec_params
def test_schema_documents_every_property(spec: NodeSpec) -> None:
    schema = spec.config_schema()
    assert schema["$defs"], "config schema should have $defs"
    found = list(walk_properties(schema))
    assert found
    undocumented = [where for where, prop in found if not str(prop.get("description", "")).strip()]
    assert undocumented == []
    for name, definition in schema["$defs"].items():
        if definition.get("type") == "object":
            description = str(definition.get("description", ""))
            assert description.strip(), f"{name} has no docstring"
            # Help text reaches the editor without source indentation.
            assert all(line == line.strip() for line in description.splitlines()), name


@spec_params
def test_help_text_and_identity(spec: NodeSpec) -> None:
    assert inspect.getdoc(spec.config), f"{spec.config.__name__} needs a docstring"
    assert spec.config.__doc__ != NodeConfig.__doc__
    assert spec.version == 1
    assert spec.title and spec.description and spec.icon and spec.icon != "box"
    # Every node type runs: its behaviour is the right kind of runtime object for its category.
    assert isinstance(spec.behaviour, type), f"{spec.type_id} has no runtime behaviour"
    wanted: tuple[type, ...] = (
        (Source,)
        if spec.category is Category.DEVICE
        else (Sink,)
        if spec.category is Category.SINK
        else (Operator, AsyncOperator)
    )
    assert issubclass(spec.behaviour, wanted), spec.type_id
    for field in msgspec.structs.fields(spec.config):
        assert field.default is not msgspec.NODEFAULT or field.default_factory is not msgspec.NODEFAULT


@spec_params
def test_ports_fit_category(spec: NodeSpec) -> None:
    if spec.category is Category.DEVICE:
        assert spec.inputs == () and len(spec.outputs) >= 1
    elif spec.category is Category.SINK:
        assert spec.outputs == () and len(spec.inputs) == 1
    else:
        assert spec.inputs and spec.outputs
    if spec.category in (Category.WINDOW, Category.ANALYTICS, Category.UDF):
        assert spec.stateful


def test_code_fields_carry_ui_hints() -> None:
    expected = {
        "transform.filter": ("expression", "expression"),
        "transform.expression": ("expression", "expression"),
        "udf.python": ("code", "python"),
    }
    for type_id, (field, language) in expected.items():
        prop = BY_ID[type_id].config_schema()["$defs"][BY_ID[type_id].config.__name__]["properties"][field]
        assert prop["x-widget"] == "code"
        assert prop["x-language"] == language


def test_no_secret_fields() -> None:
    for spec in SPECS:
        for where, prop in walk_properties(spec.config_schema()):
            assert not prop.get("x-secret"), f"{spec.type_id} {where} holds a secret"
            last = where.rsplit(".", 1)[-1]
            assert not any(w in last for w in ("password", "token", "secret")), where


# --- modbus.read ----------------------------------------------------------------------------------


def modbus(*registers: Register, **kwargs: Any) -> ModbusReadConfig:
    return ModbusReadConfig(host=kwargs.pop("host", "10.0.0.5"), registers=list(registers), **kwargs)


def test_register_word_count() -> None:
    counts = {
        "bool": 1,
        "bit": 1,
        "int16": 1,
        "uint16": 1,
        "int32": 2,
        "uint32": 2,
        "float32": 2,
        "int64": 4,
        "uint64": 4,
        "float64": 4,
    }
    for data_type, words in counts.items():
        assert Register(tag="t", address=0, data_type=data_type).word_count == words  # type: ignore[arg-type]
    assert Register(tag="t", address=0, data_type="string", length=10).word_count == 10


def test_modbus_host_or_device_required() -> None:
    reg = Register(tag="a", address=0)
    assert paths(ModbusReadConfig(registers=[reg])) == ["$.host"]
    assert paths(ModbusReadConfig(host="  ", registers=[reg])) == ["$.host"]
    assert paths(ModbusReadConfig(device="meter-7", registers=[reg])) == []
    problem = problems(ModbusReadConfig(registers=[reg]))[0]
    assert problem.hint == "set a host or choose a managed device"


def test_modbus_duplicate_tags() -> None:
    config = modbus(Register(tag="a", address=0), Register(tag="b", address=1), Register(tag="a", address=2))
    [problem] = problems(config)
    assert problem.path == "$.registers[2].tag"
    assert "registers[0]" in problem.message


def test_modbus_table_and_type() -> None:
    config = modbus(
        Register(tag="coil_float", table="coil", address=0, data_type="float32"),
        Register(tag="input_bool", table="input", address=0, data_type="bool"),
        Register(tag="di_bit", table="discrete_input", address=0, data_type="bit"),
        Register(tag="ok_coil", table="coil", address=1, data_type="bool"),
        Register(tag="ok_bit", table="holding", address=1, data_type="bit", bit=15),
        Register(tag="ok_float", table="input", address=2, data_type="float64"),
    )
    assert paths(config) == [
        "$.registers[0].data_type",
        "$.registers[1].data_type",
        "$.registers[2].data_type",
    ]
    assert "use data_type bit" in problems(config)[1].hint


def test_modbus_address_overflow() -> None:
    assert paths(modbus(Register(tag="a", address=65535, data_type="uint16"))) == []
    assert paths(modbus(Register(tag="a", address=65534, data_type="float32"))) == []
    assert paths(modbus(Register(tag="a", address=65535, data_type="float32"))) == ["$.registers[0].address"]
    assert paths(modbus(Register(tag="a", address=65533, data_type="float64"))) == ["$.registers[0].address"]
    assert paths(modbus(Register(tag="s", address=65530, data_type="string", length=10))) == ["$.registers[0].address"]


def test_modbus_string_length() -> None:
    config = modbus(Register(tag="s", address=0, data_type="string", length=0))
    assert "$.registers[0].length" in paths(config)


def test_modbus_empty_register_map() -> None:
    assert paths(modbus()) == ["$.registers"]


def test_modbus_types_enforced_on_decode() -> None:
    bad = {"host": "h", "registers": [{"tag": "a", "address": 70000}]}
    with pytest.raises(msgspec.ValidationError, match=r"registers\[0\]\.address"):
        msgspec.convert(bad, ModbusReadConfig)
    with pytest.raises(msgspec.ValidationError, match="unknown field"):
        msgspec.convert({"host": "h", "registres": []}, ModbusReadConfig)
    with pytest.raises(msgspec.ValidationError):
        msgspec.convert({"registers": [{"tag": "a", "address": 0, "data_type": "float16"}]}, ModbusReadConfig)


# --- opcua.subscribe ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "node_id",
    [
        "i=2258",
        "ns=2;s=Machine/Speed",
        "ns=0;i=85",
        "ns=3;g=09087e75-8e5e-499b-954f-f2a9603db28a",
        "ns=1;b=M/RbKBsRVkePCePcx24oRA==",
        "nsu=http://example.com/UA/;s=Line1.Speed",
        "s=with;semicolon",
    ],
)
def test_opcua_valid_node_ids(node_id: str) -> None:
    assert node_id_problem(node_id) is None


@pytest.mark.parametrize(
    "node_id",
    [
        "",
        "Machine/Speed",
        "ns=2;x=1",
        "ns=two;s=a",
        "i=abc",
        "ns=2;",
        "ns=2;s=",
        "g=not-a-guid",
        "b=###",
        "ns=70000;i=1",
        "i=4294967296",
        "ns=2:s=Speed",
    ],
)
def test_opcua_malformed_node_ids(node_id: str) -> None:
    assert node_id_problem(node_id) is not None
    config = OpcUaSubscribeConfig(endpoint="opc.tcp://h:4840", nodes=[MonitoredNode(tag="t", node_id=node_id)])
    assert paths(config) == ["$.nodes[0].node_id"]


def test_opcua_endpoint_rules() -> None:
    nodes = [MonitoredNode(tag="t", node_id="i=2258")]
    assert paths(OpcUaSubscribeConfig(nodes=nodes)) == ["$.endpoint"]
    assert paths(OpcUaSubscribeConfig(device="press-1", nodes=nodes)) == []
    assert paths(OpcUaSubscribeConfig(endpoint="http://h:4840", nodes=nodes)) == ["$.endpoint"]
    assert paths(OpcUaSubscribeConfig(device="press-1", endpoint="tcp://h", nodes=nodes)) == ["$.endpoint"]


def test_opcua_security_consistency() -> None:
    nodes = [MonitoredNode(tag="t", node_id="i=2258")]
    ok = OpcUaSubscribeConfig(
        endpoint="opc.tcp://h:4840",
        nodes=nodes,
        security_policy="Basic256Sha256",
        security_mode="SignAndEncrypt",
    )
    assert paths(ok) == []
    no_mode = msgspec.structs.replace(ok, security_mode="None")
    no_policy = msgspec.structs.replace(ok, security_policy="None")
    assert paths(no_mode) == ["$.security_mode"]
    assert paths(no_policy) == ["$.security_mode"]


def test_opcua_duplicate_tags_and_deadband() -> None:
    config = OpcUaSubscribeConfig(
        endpoint="opc.tcp://h:4840",
        nodes=[
            MonitoredNode(tag="t", node_id="i=1"),
            MonitoredNode(tag="t", node_id="i=2", deadband=1.0),
            MonitoredNode(tag="p", node_id="i=3", deadband=150.0, deadband_type="percent"),
        ],
    )
    assert paths(config) == ["$.nodes[1].tag", "$.nodes[1].deadband_type", "$.nodes[2].deadband"]


# --- simulator ------------------------------------------------------------------------------------


def test_simulator_rules() -> None:
    assert paths(SimulatorConfig()) == ["$.tags"]
    config = SimulatorConfig(
        device_name="a/b",
        tags=[SimTag(tag="x"), SimTag(tag="x"), SimTag(tag="y", min=5.0, max=1.0)],
    )
    assert paths(config) == ["$.device_name", "$.tags[1].tag", "$.tags[2].max"]


# --- transforms -----------------------------------------------------------------------------------


def test_scale_conversions_cover_the_choices() -> None:
    assert set(CONVERSIONS) == set(get_args(Conversion))
    factor, offset = CONVERSIONS["c_to_f"]
    assert factor * 100 + offset == pytest.approx(212.0)
    factor, offset = CONVERSIONS["f_to_c"]
    assert factor * 212 + offset == pytest.approx(100.0)
    assert paths(ScaleConfig(tags=["temp*", " "])) == ["$.tags[1]"]
    with pytest.raises(TypeError):
        CONVERSIONS["x"] = (1.0, 0.0)  # type: ignore[index]


def test_filter_expression_error_has_position() -> None:
    assert paths(FilterConfig(expression="value > 10")) == []
    [problem] = problems(FilterConfig(expression="value.__class__ > 0"))
    assert problem.path == "$.expression"
    assert problem.line == 1 and problem.column in range(1, 8)
    [problem] = problems(FilterConfig(expression="(value > 0 and\n  value.real < 5)"))
    assert problem.line == 2 and problem.column in range(3, 10)
    [problem] = problems(FilterConfig(expression="value >"))
    assert problem.path == "$.expression" and problem.line is not None


def test_expression_node_checks() -> None:
    assert paths(ExpressionConfig(tag="p", expression='voltage * point["Current L1"]')) == []
    assert paths(ExpressionConfig(tag="a/b", device=" ", expression="a * 2")) == ["$.tag", "$.device"]
    [problem] = problems(ExpressionConfig(tag="p", expression="a * (2"))
    assert problem.path == "$.expression" and problem.line == 1
    [problem] = problems(ExpressionConfig(tag="p", expression="a.__class__"))
    assert problem.line == 1 and problem.column in range(1, 4)


def test_deadband_needs_a_band() -> None:
    assert paths(DeadbandConfig(absolute=0.0, percent=0.0)) == ["$.absolute"]
    assert paths(DeadbandConfig(absolute=0.1, percent=0.0)) == []


def test_rename_levels() -> None:
    config = RenameConfig(
        enterprise="acme",
        site="a/b",
        area="   ",
        line=" l1",
        mappings=[Rename(match="*/t", tag="x/y"), Rename(match=" ")],
    )
    assert paths(config) == ["$.site", "$.area", "$.line", "$.mappings[0].tag", "$.mappings[1].match"]


def test_quality_filter() -> None:
    assert QualityFilterConfig().keep == ["good"]
    assert paths(QualityFilterConfig(keep=[])) == ["$.keep"]
    assert paths(QualityFilterConfig(keep=["good", "good"])) == ["$.keep[1]"]


# --- windows --------------------------------------------------------------------------------------


def test_tumbling_aggregates_unique() -> None:
    assert paths(TumblingWindowConfig(aggregates=["avg", "max", "avg"])) == ["$.aggregates[2]"]
    assert paths(TumblingWindowConfig(aggregates=[])) == ["$.aggregates"]
    with pytest.raises(msgspec.ValidationError):
        msgspec.convert({"window_s": 0}, TumblingWindowConfig)


def test_sliding_window_rules() -> None:
    assert paths(SlidingWindowConfig(window_s=60, slide_s=10)) == []
    assert paths(SlidingWindowConfig(window_s=0.3, slide_s=0.1)) == []
    assert paths(SlidingWindowConfig(window_s=10, slide_s=60)) == ["$.slide_s"]
    [problem] = problems(SlidingWindowConfig(window_s=60, slide_s=25))
    assert problem.path == "$.window_s" and "multiple" in problem.message


# --- analytics ------------------------------------------------------------------------------------


def test_threshold_rules() -> None:
    assert paths(ThresholdConfig()) == ["$.high"]
    assert paths(ThresholdConfig(high=10.0, low=20.0)) == ["$.low"]
    assert paths(ThresholdConfig(high=20.0, low=10.0, hysteresis=10.0)) == ["$.hysteresis"]
    assert paths(ThresholdConfig(low=1.0, message="{value:.2f} {limit} on {series}")) == []
    assert paths(ThresholdConfig(low=1.0, message="{value.__class__}")) == ["$.message"]
    assert paths(ThresholdConfig(low=1.0, message="{nope}")) == ["$.message"]
    assert paths(ThresholdConfig(low=1.0, message="{value")) == ["$.message"]


def test_rate_of_change_rules() -> None:
    assert paths(RateOfChangeConfig()) == []
    assert paths(RateOfChangeConfig(limit=1.0, hysteresis=1.0)) == ["$.hysteresis"]


def test_anomaly_rules() -> None:
    assert paths(AnomalyConfig()) == []
    assert paths(AnomalyConfig(method="zscore", window=5, min_samples=10)) == ["$.min_samples"]
    with pytest.raises(msgspec.ValidationError):
        msgspec.convert({"alpha": 0}, AnomalyConfig)


# --- udf.python -----------------------------------------------------------------------------------


def test_udf_default_code_is_valid() -> None:
    assert paths(PythonUdfConfig()) == []
    ast.parse(PythonUdfConfig().code)


def test_udf_syntax_error_position() -> None:
    code = "def process(batch, state):\n    x = (1 +\n    return batch\n"
    [problem] = problems(PythonUdfConfig(code=code))
    assert problem.path == "$.code"
    assert problem.line in (2, 3)
    assert problem.column is not None and problem.column >= 1
    [problem] = problems(PythonUdfConfig(code="\n\ndef process(batch, state)\n    return batch\n"))
    assert problem.line == 3


@pytest.mark.parametrize(
    ("code", "ok"),
    [
        ("def process(batch, state):\n    return batch\n", True),
        ("def process(batch, state, extra=1):\n    return batch\n", True),
        ("def process(*args):\n    return args[0]\n", True),
        ("def process(batch):\n    return batch\n", False),
        ("def process(a, b, c):\n    return a\n", False),
        ("def process(batch, state, *, flag):\n    return batch\n", False),
        ("async def process(batch, state):\n    return batch\n", False),
        ("def handle(batch, state):\n    return batch\n", False),
        ("class X:\n    def process(self, batch, state):\n        return batch\n", False),
    ],
)
def test_udf_process_signature(code: str, ok: bool) -> None:
    assert (paths(PythonUdfConfig(code=code)) == []) is ok


def test_udf_validation_never_runs_code(tmp_path: Path) -> None:
    marker = tmp_path / "executed"
    write = f"__import__('pathlib').Path({str(marker)!r}).write_text('ran')"
    code = (
        f"{write}\n"
        f"@__import__('builtins').print({write})\n"
        f"def process(batch, state=__import__('os').system('touch {marker}') or {write}):\n"
        f"    {write}\n"
        "    return batch\n"
    )
    config = PythonUdfConfig(code=code)
    assert problems(config)  # refused by the policy, and never run
    decoded = msgspec.json.decode(msgspec.json.encode(config), type=PythonUdfConfig)
    assert problems(decoded)
    BY_ID["udf.python"].config_schema()
    assert not marker.exists()
    # Control: the payload is live, so the assertion above is meaningful.
    subprocess.run([sys.executable, "-c", code], check=False, capture_output=True, timeout=60)
    assert marker.exists()


# --- sinks ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name", ["Authorization", "cookie", "X-API-Key", "Proxy-Authorization", "X-Auth-Token", "Client-Secret"]
)
def test_http_refuses_secret_headers(name: str) -> None:
    config = HttpSinkConfig(url="https://example.com/x", headers={name: "abc"})
    [problem] = problems(config)
    assert problem.path == f"$.headers[{name!r}]"
    assert problem.hint == "store it as a credential and set credential"


def test_http_url_rules() -> None:
    assert paths(HttpSinkConfig()) == ["$.url"]
    for url in [
        "ftp://example.com",
        "example.com/ingest",
        "https://",
        "https://exa mple.com",
        "https://user:pw@example.com/",
        "https://example.com/x?access_token=abc",
        "https://example.com:99999/",
    ]:
        assert paths(HttpSinkConfig(url=url)) == ["$.url"], url
    assert paths(HttpSinkConfig(url="http://10.0.0.2:8080/ingest?plant=berlin")) == []


def test_http_header_rules() -> None:
    config = HttpSinkConfig(
        url="https://example.com",
        credential="c",
        auth_header="X-Auth-Key",
        headers={"Bad Name": "x", "X-Line": "a\r\nX-Injected: 1", "x-auth-key": "k"},
    )
    assert paths(config) == ["$.headers['Bad Name']", "$.headers['X-Line']", "$.headers['x-auth-key']"]
    assert paths(HttpSinkConfig(url="https://example.com", credential="c", auth_header="Bad Name")) == ["$.auth_header"]


@pytest.mark.parametrize("subject", ["proxus.points", "plant.line1.energy", "a", "a-b_c.D9"])
def test_nats_valid_subjects(subject: str) -> None:
    assert paths(NatsSinkConfig(subject=subject)) == []


@pytest.mark.parametrize("subject", ["", "a..b", ".a", "a.", "a b", "a.*", "a.>", "a.b*", "a\tb"])
def test_nats_invalid_subjects(subject: str) -> None:
    assert paths(NatsSinkConfig(subject=subject)) == ["$.subject"]
