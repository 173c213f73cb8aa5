"""OPC UA acquisition against a real asyncua server (the Proxus simulator): no mocks.

One simulator (all three security endpoints, anonymous + user ``operator``) serves the module; the
restart test runs its own. Waits are generous timeouts, never timing assertions.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest
import pytest_asyncio

from nodes.device import opcua_client as oc
from nodes.device.opcua_subscribe import MonitoredNode, OpcUaSubscribeConfig, OpcUaSubscribeSource
from nodes.host import Credential, Health, NotConnected
from nodes.points import Batch, Quality
from proxus.services.ports import free_port
from runtime.context import StepContext
from runtime.simulate.opcua import OpcUaSimConfig, OpcUaSimulator, serve

pytestmark = pytest.mark.asyncio(loop_scope="module")

USER, PASSWORD = "operator", "s3cret"
CREDENTIALS = {
    "opc": Credential(id="opc", kind="username_password", username=USER, secret=PASSWORD),
    "wrong": Credential(id="wrong", kind="username_password", username=USER, secret="not-the-password"),
}
WAIT_S = 15.0


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def sim(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[OpcUaSimulator]:
    simulator = await serve(
        OpcUaSimConfig(
            update_ms=100,
            tags=2,
            tag_types=("double", "boolean"),
            cert_dir=tmp_path_factory.mktemp("opcua-server-pki"),
            username=USER,
            password=PASSWORD,
            anonymous=True,
            seed=1,
        )
    )
    try:
        yield simulator
    finally:
        await simulator.stop()


@pytest.fixture(scope="module")
def client_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The node's data directory shared by the module's tests: the client certificate is made once."""
    return tmp_path_factory.mktemp("opcua-client")


def make_config(sim: OpcUaSimulator, tags: dict[str, str], **overrides: object) -> OpcUaSubscribeConfig:
    nodes = [
        MonitoredNode(tag=tag, node_id=sim.node_ids().get(name, name), sampling_interval_ms=0)
        for tag, name in tags.items()
    ]
    fields: dict[str, object] = {"endpoint": sim.endpoint, "publishing_interval_ms": 50, "nodes": nodes}
    fields.update(overrides)
    return OpcUaSubscribeConfig(**fields)  # type: ignore[arg-type]


def make_context(data_dir: Path, label: str = "press-1") -> StepContext:
    return StepContext(node_id="opcua-1", label=label, data_dir=data_dir, credentials=CREDENTIALS)


async def read_until(
    source: OpcUaSubscribeSource, done: Callable[[list[Batch]], bool], timeout: float = WAIT_S
) -> list[Batch]:
    batches: list[Batch] = []
    async with asyncio.timeout(timeout):
        while not done(batches):
            batch = await source.read()
            assert batch is not None and len(batch) > 0, "a push source returns a non-empty batch"
            batches.append(batch)
    return batches


def points(batches: list[Batch]) -> list[tuple[int, str, object, int]]:
    return [p for b in batches for p in zip(b.ts, b.series, b.values, b.quality, strict=True)]


def values_of(batches: list[Batch], series: str) -> list[object]:
    return [v for _, s, v, _ in points(batches) if s == series]


# --------------------------------------------------------------------------------------------------


async def test_subscription_delivers_changing_values(sim: OpcUaSimulator, tmp_path: Path) -> None:
    config = make_config(sim, {"speed": "Speed", "counter": "Counter", "state": "State", "flag": "Tag002"})
    ctx = make_context(tmp_path, label="press-1")
    source = OpcUaSubscribeSource(config, ctx)
    assert source.interval_s is None
    await source.connect()
    try:
        assert ctx.metrics.health is Health.OK
        assert ctx.metrics.gauges["connected"] == 1
        batches = await read_until(source, lambda bs: len(set(values_of(bs, "press-1/counter"))) >= 4)
    finally:
        await source.close()
    pts = points(batches)
    assert {s for _, s, _, _ in pts} <= {"press-1/speed", "press-1/counter", "press-1/state", "press-1/flag"}
    assert {"press-1/speed", "press-1/counter", "press-1/state"} <= {s for _, s, _, _ in pts}
    assert all(q == Quality.GOOD for _, _, _, q in pts)
    counters = [v for v in values_of(batches, "press-1/counter") if isinstance(v, int)]
    assert len(counters) == len(values_of(batches, "press-1/counter")) and counters == sorted(counters)
    assert all(isinstance(v, float) for v in values_of(batches, "press-1/speed"))
    assert all(isinstance(v, bool) for v in values_of(batches, "press-1/flag"))
    now = time.time_ns()
    assert all(abs(ts - now) < 300 * 10**9 for ts, _, _, _ in pts), "source timestamps in ns since the epoch"
    assert ctx.metrics.gauges["connected"] == 0  # closed


async def test_series_key_uses_managed_device_when_set(sim: OpcUaSimulator, tmp_path: Path) -> None:
    config = make_config(sim, {"counter": "Counter"}, device="line1-press")
    source = OpcUaSubscribeSource(config, make_context(tmp_path, label="ignored"))
    await source.connect()
    try:
        batches = await read_until(source, lambda bs: len(bs) >= 2)
    finally:
        await source.close()
    assert {s for _, s, _, _ in points(batches)} == {"line1-press/counter"}


async def test_deadband_filters_small_changes(sim: OpcUaSimulator, tmp_path: Path) -> None:
    await sim.write("Setpoint", 0.0)
    setpoint = sim.node_ids()["Setpoint"]
    config = make_config(
        sim,
        {},
        nodes=[
            MonitoredNode(tag="raw", node_id=setpoint, queue_size=100),
            MonitoredNode(tag="filtered", node_id=setpoint, queue_size=100, deadband=1.0, deadband_type="absolute"),
        ],
    )
    source = OpcUaSubscribeSource(config, make_context(tmp_path))
    await source.connect()
    try:
        for value in (0.3, 0.6, 2.0, 2.4, 5.0):
            await sim.write("Setpoint", value)
        batches = await read_until(
            source, lambda bs: 5.0 in values_of(bs, "press-1/raw") and 5.0 in values_of(bs, "press-1/filtered")
        )
    finally:
        await source.close()
    assert values_of(batches, "press-1/raw") == [0.0, 0.3, 0.6, 2.0, 2.4, 5.0]
    assert values_of(batches, "press-1/filtered") == [0.0, 2.0, 5.0]


async def test_deadband_filter_kinds() -> None:
    from asyncua import ua

    assert oc._deadband_filter(0.0, "absolute") is None
    assert oc._deadband_filter(2.0, "none") is None
    absolute = oc._deadband_filter(0.5, "absolute")
    percent = oc._deadband_filter(10.0, "percent")
    assert absolute is not None and absolute.DeadbandType == ua.DeadbandType.Absolute and absolute.DeadbandValue == 0.5
    assert percent is not None and percent.DeadbandType == ua.DeadbandType.Percent and percent.DeadbandValue == 10.0


@pytest.mark.parametrize(
    ("policy", "mode"),
    [("None", "None"), ("Basic256Sha256", "Sign"), ("Basic256Sha256", "SignAndEncrypt")],
)
async def test_security_modes_with_user_and_password(
    sim: OpcUaSimulator, client_dir: Path, policy: str, mode: str
) -> None:
    config = make_config(sim, {"counter": "Counter"}, security_policy=policy, security_mode=mode, credential="opc")
    assert list(config.problems()) == []
    ctx = make_context(client_dir)
    source = OpcUaSubscribeSource(config, ctx)
    await source.connect()
    try:
        assert ctx.metrics.health is Health.OK, ctx.metrics.message
        batches = await read_until(source, lambda bs: len(values_of(bs, "press-1/counter")) >= 2)
    finally:
        await source.close()
    assert all(q == Quality.GOOD for _, _, _, q in points(batches))
    if policy != "None":
        pki = client_dir / "opcua" / "pki"
        assert (pki / "client_cert.der").is_file() and (pki / "client_key.pem").is_file()
        assert (pki / "client_key.pem").stat().st_mode & 0o077 == 0
        pinned = list((pki / "trusted").glob("*.der"))
        assert [p.read_bytes() for p in pinned] == [sim.server_certificate.read_bytes()]


async def test_client_certificate_is_generated_once_and_reused(sim: OpcUaSimulator, tmp_path: Path) -> None:
    config = make_config(sim, {"counter": "Counter"}, security_policy="Basic256Sha256", security_mode="Sign")
    cert = tmp_path / "opcua" / "pki" / "client_cert.der"
    first = None
    for _ in range(2):
        source = OpcUaSubscribeSource(config, make_context(tmp_path))
        await source.connect()
        await source.close()
        if first is None:
            first = cert.read_bytes()
    assert cert.read_bytes() == first


async def test_changed_server_certificate_is_accepted_with_a_warning(sim: OpcUaSimulator, tmp_path: Path) -> None:
    config = make_config(sim, {"counter": "Counter"}, security_policy="Basic256Sha256", security_mode="SignAndEncrypt")
    other, _ = oc.generate_certificate(common_name="old", application_uri="urn:old", hostnames=["localhost"], days=30)
    pin = oc._pin_path(tmp_path, sim.endpoint)
    pin.parent.mkdir(parents=True)
    pin.write_bytes(other)
    ctx = make_context(tmp_path)
    source = OpcUaSubscribeSource(config, ctx)
    await source.connect()
    try:
        assert ctx.metrics.health is Health.WARNING
        assert "server certificate" in ctx.metrics.message and "changed" in ctx.metrics.message
        await read_until(source, lambda bs: len(bs) >= 1)
    finally:
        await source.close()
    assert pin.read_bytes() == sim.server_certificate.read_bytes()
    assert pin.with_suffix(".previous.der").read_bytes() == other


async def test_wrong_password_fails_with_a_clear_message(sim: OpcUaSimulator, client_dir: Path) -> None:
    for policy, mode in (("None", "None"), ("Basic256Sha256", "SignAndEncrypt")):
        config = make_config(
            sim, {"counter": "Counter"}, security_policy=policy, security_mode=mode, credential="wrong"
        )
        ctx = make_context(client_dir)
        source = OpcUaSubscribeSource(config, ctx)
        with pytest.raises(NotConnected, match=r"rejected user 'operator' \(BadUserAccessDenied\).*password"):
            await source.connect()
        assert ctx.metrics.health is Health.ERROR and "BadUserAccessDenied" in ctx.metrics.message
        with pytest.raises(NotConnected):
            await source.read()
        await source.close()


async def test_missing_credential_fails(sim: OpcUaSimulator, tmp_path: Path) -> None:
    source = OpcUaSubscribeSource(make_config(sim, {"c": "Counter"}, credential="absent"), make_context(tmp_path))
    with pytest.raises(NotConnected, match="'absent' is not available"):
        await source.connect()


async def test_bad_node_id_gives_bad_point_and_warning_while_others_flow(sim: OpcUaSimulator, tmp_path: Path) -> None:
    config = make_config(sim, {"counter": "Counter", "ghost": "ns=2;s=Machine/DoesNotExist"})
    ctx = make_context(tmp_path)
    source = OpcUaSubscribeSource(config, ctx)
    await source.connect()
    try:
        assert ctx.metrics.health is Health.WARNING
        assert "ns=2;s=Machine/DoesNotExist" in ctx.metrics.message
        ctx.set_health(Health.OK)  # what the runtime does after a successful connect
        batches = await read_until(source, lambda bs: len(values_of(bs, "press-1/counter")) >= 3)
        assert ctx.metrics.health is Health.WARNING and "DoesNotExist" in ctx.metrics.message
    finally:
        await source.close()
    ghost = [(v, q) for _, s, v, q in points(batches) if s == "press-1/ghost"]
    assert ghost == [("BadNodeIdUnknown", Quality.BAD)]
    assert all(q == Quality.GOOD for _, s, _, q in points(batches) if s == "press-1/counter")


async def test_queue_overflow_drops_oldest_and_counts(sim: OpcUaSimulator, tmp_path: Path) -> None:
    config = make_config(sim, {"counter": "Counter", "speed": "Speed", "temperature": "Temperature"})
    ctx = make_context(tmp_path)
    source = OpcUaSubscribeSource(config, ctx)
    source.max_queued_points = 5
    await source.connect()
    try:
        async with asyncio.timeout(WAIT_S):
            while True:  # the handler counts drops as the server publishes; nobody reads meanwhile
                if ctx.metrics.counters.get("dropped_notifications", 0) >= 3:
                    break
                await asyncio.sleep(0.05)
        batch = await source.read()
    finally:
        await source.close()
    assert batch is not None and len(batch) == 5
    counters = [v for s, v in zip(batch.series, batch.values, strict=True) if s == "press-1/counter"]
    assert counters and all(isinstance(c, int) and c > 0 for c in counters)  # the initial 0 was dropped


async def test_server_restart_raises_not_connected_then_resubscribes(tmp_path: Path) -> None:
    simulator = await serve(OpcUaSimConfig(update_ms=100, cert_dir=tmp_path / "server", security=("None",)))
    try:
        config = make_config(simulator, {"counter": "Counter"})
        ctx = make_context(tmp_path / "client")
        source = OpcUaSubscribeSource(config, ctx)
        await source.connect()
        await read_until(source, lambda bs: len(bs) >= 2)

        await simulator.stop()
        with pytest.raises(NotConnected):
            async with asyncio.timeout(WAIT_S):
                while True:  # queued points first, then the loss
                    await source.read()
        assert ctx.metrics.gauges["connected"] == 0
        with pytest.raises(NotConnected, match="refused"):
            await source.connect()  # the runtime retries with backoff while the server is down

        await simulator.start()
        await source.connect()
        try:
            assert ctx.metrics.health is Health.OK
            batches = await read_until(source, lambda bs: len(set(values_of(bs, "press-1/counter"))) >= 3)
        finally:
            await source.close()
        assert all(q == Quality.GOOD for _, _, _, q in points(batches))
    finally:
        await simulator.stop()


async def test_browse_lists_machine_variables(sim: OpcUaSimulator, tmp_path: Path) -> None:
    config = make_config(sim, {"c": "Counter"}, security_policy="Basic256Sha256", security_mode="Sign")
    objects = await oc.browse(config, None, CREDENTIALS["opc"], tmp_path, 10)
    machine = next(e for e in objects if e["display_name"] == "Machine")
    assert machine["node_id"] == "ns=2;s=Machine" and machine["node_class"] == "Object" and machine["has_children"]

    children = {e["display_name"]: e for e in await oc.browse(config, machine["node_id"], None, tmp_path, 10)}
    assert {"Speed", "Temperature", "State", "Counter", "Setpoint", "Tag001", "Tag002"} <= set(children)
    speed = children["Speed"]
    assert speed["node_id"] == sim.node_ids()["Speed"]
    assert speed["browse_name"] == "2:Speed"
    assert speed["node_class"] == "Variable" and speed["data_type"] == "Double"
    assert isinstance(speed["value"], float)
    assert speed["has_children"]  # its EURange property
    assert children["Counter"]["data_type"] == "UInt32" and isinstance(children["Counter"]["value"], int)
    assert children["Tag002"]["data_type"] == "Boolean" and not children["Tag002"]["has_children"]

    with pytest.raises(oc.OpcUaError, match="BadNodeIdUnknown"):
        await oc.browse(config, "ns=2;s=Nowhere", None, tmp_path, 10)


async def test_connection_test_ok_and_failing(sim: OpcUaSimulator, tmp_path: Path) -> None:
    config = make_config(sim, {"c": "Counter"}, security_policy="Basic256Sha256", security_mode="SignAndEncrypt")
    result = await oc.test_opcua_connection(config, CREDENTIALS["opc"], tmp_path, 10)
    assert result["ok"] is True, result
    assert result["server"] == {"product": "Proxus OPC UA simulator", "state": "Running"}
    assert isinstance(result["latency_ms"], float) and result["latency_ms"] >= 0
    assert "operator" in result["message"]

    wrong = await oc.test_opcua_connection(config, CREDENTIALS["wrong"], tmp_path, 10)
    assert wrong["ok"] is False and "BadUserAccessDenied" in wrong["message"] and wrong["server"] is None

    nobody = OpcUaSubscribeConfig(endpoint=f"opc.tcp://127.0.0.1:{free_port()}", nodes=config.nodes)
    down = await oc.test_opcua_connection(nobody, None, tmp_path, 5)
    assert down == {"ok": False, "message": down["message"], "latency_ms": None, "server": None}
    assert "connection refused" in down["message"]
