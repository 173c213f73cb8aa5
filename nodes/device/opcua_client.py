"""Shared OPC UA client helpers: certificates and server trust, security setup, status code → quality,
value conversion, subscriptions, browse and the connection test.

Used by the ``opcua.subscribe`` behaviour and by the Hub's request/reply calls through the edge
(:func:`browse`, :func:`test_opcua_connection`). This module imports asyncua (slow to import), so the
node module imports it lazily, only when a behaviour actually connects.

Certificates and trust
----------------------
Secure channels (Basic256Sha256 with Sign or SignAndEncrypt) need an application instance
certificate for the client. On first use a self-signed one (RSA 2048, SHA-256, valid 5 years, the
application URI ``urn:<hostname>:proxus:opcua-client`` and the host name in its subjectAltName) is
generated into ``<data_dir>/opcua/pki/client_cert.der`` + ``client_key.pem`` and reused afterwards;
it is regenerated only when missing, unreadable, expiring within 30 days or issued for another host
name. Servers that check client certificates must trust ``client_cert.der`` (copy it into the
server's trusted folder or accept it in the server's UI).

Server certificates are trusted on first use: the certificate the server presents is accepted and a
pinned copy is kept in ``<data_dir>/opcua/pki/trusted/<host>_<port>.der``. When a later connection
presents another certificate, it is still accepted (a re-installed PLC must not stop production
data), the pin is replaced (the old one kept as ``.previous.der``) and a warning naming both
SHA-256 fingerprints is returned, which the node shows as a WARNING health.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import hashlib
import ipaddress
import logging
import os
import re
import socket
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from asyncua import ua
from asyncua.client.client import Client
from asyncua.client.ua_client import UaClientState
from asyncua.common.subscription import Subscription
from asyncua.crypto import security_policies
from asyncua.ua.attribute_ids import AttributeIds
from asyncua.ua.object_ids import ObjectIdNames, ObjectIds
from asyncua.ua.status_codes import StatusCodes
from asyncua.ua.uaerrors import UaStatusCodeError
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from nodes.host import Credential
from nodes.points import Quality, Value

if TYPE_CHECKING:
    from nodes.device.opcua_subscribe import OpcUaSubscribeConfig

__all__ = [
    "CLIENT_APPLICATION_NAME",
    "OpcUaError",
    "OpenedClient",
    "browse",
    "client_application_uri",
    "close_client",
    "describe_error",
    "ensure_client_certificate",
    "generate_certificate",
    "is_connected",
    "open_client",
    "parse_node_id",
    "pin_server_certificate",
    "point_from_datavalue",
    "quality_of",
    "subscribe",
    "test_opcua_connection",
    "to_value",
]

_log = logging.getLogger("proxus.opcua")

CLIENT_APPLICATION_NAME = "Proxus OPC UA client"
CLIENT_PRODUCT_URI = "urn:proxus:opcua-client"
CERT_VALID_DAYS = 5 * 365
CERT_RENEW_BEFORE = dt.timedelta(days=30)
# The session is kept alive by asyncua's watchdog, which reads the server state every second; a
# short session timeout frees the server's resources soon when the edge dies without closing.
SESSION_TIMEOUT_MS = 60_000
WATCHDOG_INTERVAL_S = 1.0
# The server sends a keep-alive after this much silence, so a dead subscription is noticed.
KEEPALIVE_S = 5.0
SUBSCRIPTION_LIFETIME_S = 60.0

_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
_USER_REJECTED = {
    StatusCodes.BadUserAccessDenied,
    StatusCodes.BadIdentityTokenRejected,
    StatusCodes.BadIdentityTokenInvalid,
    StatusCodes.BadUserSignatureInvalid,
}
_CERT_REJECTED = {
    StatusCodes.BadSecurityChecksFailed,
    StatusCodes.BadSecurityPolicyRejected,
    StatusCodes.BadCertificateInvalid,
    StatusCodes.BadCertificateUntrusted,
    StatusCodes.BadCertificateRevoked,
    StatusCodes.BadCertificateTimeInvalid,
    StatusCodes.BadCertificateUriInvalid,
    StatusCodes.BadCertificateHostNameInvalid,
    StatusCodes.BadCertificateUseNotAllowed,
}


class OpcUaError(Exception):
    """An OPC UA operation failed; the message says why in words an operator understands."""


# --------------------------------------------------------------------------------------------------
# Status codes and values


def quality_of(status: ua.StatusCode | int | None) -> Quality:
    """Quality from the severity bits (30-31) of an OPC UA StatusCode; a missing code is Good."""
    code = 0 if status is None else status.value if isinstance(status, ua.StatusCode) else int(status)
    severity = (code >> 30) & 0b11
    if severity == 0:
        return Quality.GOOD
    if severity == 1:
        return Quality.UNCERTAIN
    return Quality.BAD  # 10 Bad, 11 reserved: treated as Bad (Part 4, 7.39)


def status_name(status: ua.StatusCode | int | None) -> str:
    code = 0 if status is None else status.value if isinstance(status, ua.StatusCode) else int(status)
    try:
        return str(ua.StatusCode(ua.UInt32(code)).name)
    except Exception:  # unknown code
        return f"0x{code:08X}"


def to_value(raw: Any) -> Value:
    """Numbers, booleans and strings as they are; localized text as its text; date-times in ISO 8601;
    anything else (arrays, structures, byte strings, GUIDs, node ids) as ``str()``."""
    if isinstance(raw, bool | int | float | str):
        return raw
    if isinstance(raw, ua.LocalizedText):
        return raw.Text or ""
    if isinstance(raw, dt.datetime):
        return raw.isoformat()
    return str(raw)


def datetime_ns(value: dt.datetime | None) -> int | None:
    """Nanoseconds since the Unix epoch; None for a missing or null (1601/1970 or earlier) time."""
    if value is None:
        return None
    if value.tzinfo is None:
        value = value.replace(tzinfo=dt.UTC)
    delta = value - _EPOCH
    if delta.days < 0 or (delta.days == 0 and delta.seconds == 0 and delta.microseconds == 0):
        return None
    return (delta.days * 86_400 + delta.seconds) * 1_000_000_000 + delta.microseconds * 1_000


def point_from_datavalue(value: ua.DataValue | None, now_ns: int) -> tuple[int, Value, int]:
    """``(timestamp, value, quality)`` of a DataValue.

    The timestamp is the SourceTimestamp, else the ServerTimestamp, else ``now_ns``. A value the
    server did not send (typical with a Bad status) becomes the status name, e.g.
    ``"BadNodeIdUnknown"``, so the point still says what went wrong; a Good null value becomes "".
    """
    if value is None:
        return now_ns, "BadNoData", int(Quality.BAD)
    quality = quality_of(value.StatusCode)
    raw = value.Value.Value if value.Value is not None else None
    if raw is None:
        out: Value = "" if quality is Quality.GOOD else status_name(value.StatusCode)
    else:
        out = to_value(raw)
    ts = datetime_ns(value.SourceTimestamp) or datetime_ns(value.ServerTimestamp) or now_ns
    return ts, out, int(quality)


# --------------------------------------------------------------------------------------------------
# Certificates


def client_application_uri() -> str:
    return f"urn:{socket.gethostname()}:proxus:opcua-client"


def generate_certificate(
    *,
    common_name: str,
    application_uri: str,
    hostnames: Iterable[str],
    server: bool = False,
    days: int = CERT_VALID_DAYS,
) -> tuple[bytes, bytes]:
    """A self-signed OPC UA application instance certificate (Part 6, 6.2.2): ``(cert DER, key PEM)``.

    The subjectAltName carries the application URI and every host name (IP literals as IP
    addresses); a server certificate may be used for server and client authentication.
    """
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name(
        [x509.NameAttribute(NameOID.COMMON_NAME, common_name), x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Proxus")]
    )
    alt: list[x509.GeneralName] = [x509.UniformResourceIdentifier(application_uri)]
    for host in dict.fromkeys(hostnames):
        try:
            alt.append(x509.IPAddress(ipaddress.ip_address(host)))
        except ValueError:
            alt.append(x509.DNSName(host))
    now = dt.datetime.now(dt.UTC)
    usages = (
        [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]
        if server
        else [ExtendedKeyUsageOID.CLIENT_AUTH]
    )
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=days))
        .add_extension(x509.SubjectAlternativeName(alt), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=True,
                key_encipherment=True,
                data_encipherment=True,
                key_agreement=False,
                key_cert_sign=False,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.ExtendedKeyUsage(usages), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    return cert.public_bytes(serialization.Encoding.DER), key_pem


def _write_atomic(path: Path, data: bytes, private: bool = False) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600 if private else 0o644)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    os.replace(tmp, path)


def certificate_usable(cert_path: Path, key_path: Path, application_uri: str, hostname: str | None) -> bool:
    """True when the pair exists, matches, is valid for 30 more days and names ``application_uri``
    (and ``hostname`` when given) in its subjectAltName."""
    try:
        cert = x509.load_der_x509_certificate(cert_path.read_bytes())
        key = serialization.load_pem_private_key(key_path.read_bytes(), password=None)
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except (OSError, ValueError, TypeError, x509.ExtensionNotFound):
        return False
    public = cert.public_key()
    if (
        not isinstance(key, rsa.RSAPrivateKey)
        or not isinstance(public, rsa.RSAPublicKey)
        or key.public_key().public_numbers() != public.public_numbers()
    ):
        return False
    now = dt.datetime.now(dt.UTC)
    if cert.not_valid_after_utc - CERT_RENEW_BEFORE < now or cert.not_valid_before_utc > now:
        return False
    if application_uri not in san.get_values_for_type(x509.UniformResourceIdentifier):
        return False
    return hostname is None or hostname in san.get_values_for_type(x509.DNSName)


@dataclass(frozen=True)
class CertificatePair:
    cert_path: Path  # DER
    key_path: Path  # PEM, PKCS#8, unencrypted, mode 0600


def pki_dir(data_dir: Path) -> Path:
    return data_dir / "opcua" / "pki"


def ensure_client_certificate(data_dir: Path) -> CertificatePair:
    """The client's certificate and key under ``data_dir``, generated on first use (blocking: run it
    in a thread)."""
    pki = pki_dir(data_dir)
    pair = CertificatePair(pki / "client_cert.der", pki / "client_key.pem")
    hostname = socket.gethostname()
    uri = client_application_uri()
    if not certificate_usable(pair.cert_path, pair.key_path, uri, hostname):
        cert, key = generate_certificate(
            common_name=f"{CLIENT_APPLICATION_NAME}@{hostname}", application_uri=uri, hostnames=[hostname]
        )
        _write_atomic(pair.key_path, key, private=True)
        _write_atomic(pair.cert_path, cert)
        _log.info("generated OPC UA client certificate %s", pair.cert_path)
    return pair


def fingerprint(der: bytes) -> str:
    return hashlib.sha256(der).hexdigest()


def _pin_path(data_dir: Path, endpoint: str) -> Path:
    parts = urlsplit(endpoint)
    host = re.sub(r"[^A-Za-z0-9.-]", "_", parts.hostname or "unknown")
    return pki_dir(data_dir) / "trusted" / f"{host}_{parts.port or 4840}.der"


def pin_server_certificate(data_dir: Path, endpoint: str, der: bytes) -> str | None:
    """Trust on first use: keep a pinned copy of the server certificate of ``endpoint``.

    Returns None when the certificate is new or unchanged, or a warning when it differs from the
    pinned one (it is accepted and becomes the new pin; the old one is kept as ``.previous.der``).
    """
    path = _pin_path(data_dir, endpoint)
    try:
        pinned = path.read_bytes()
    except FileNotFoundError:
        _write_atomic(path, der)
        _log.info("pinned the certificate of %s (SHA-256 %s) in %s", endpoint, fingerprint(der), path)
        return None
    if pinned == der:
        return None
    _write_atomic(path.with_suffix(".previous.der"), pinned)
    _write_atomic(path, der)
    return (
        f"the server certificate of {endpoint} changed (pinned SHA-256 {fingerprint(pinned)[:16]}…, "
        f"now {fingerprint(der)[:16]}…); it was accepted, check the server if this was not expected"
    )


def _first_certificate(der: bytes) -> bytes:
    """The leading certificate of a (possibly chained) DER blob."""
    try:
        cert = x509.load_der_x509_certificate(der)
    except ValueError:
        cert = _parse_first(der)
    return cert.public_bytes(serialization.Encoding.DER)


def _parse_first(der: bytes) -> x509.Certificate:
    length = der[1]
    if length < 0x80:
        total = 2 + length
    else:
        n = length & 0x7F
        total = 2 + n + int.from_bytes(der[2 : 2 + n], "big")
    return x509.load_der_x509_certificate(der[:total])


# --------------------------------------------------------------------------------------------------
# Errors


def _short_policy(uri: str) -> str:
    return uri.rsplit("#", 1)[-1] or "None"


def _mode_name(mode: int) -> str:
    return ua.MessageSecurityMode(mode).name.rstrip("_")


def describe_error(exc: BaseException, endpoint: str, *, username: str | None = None, timeout_s: float = 0) -> str:
    """An operator-readable reason for a failed OPC UA operation."""
    if isinstance(exc, OpcUaError):
        return str(exc)
    if isinstance(exc, UaStatusCodeError):
        code = exc.code
        name, doc = status_name(code), ua.StatusCode(ua.UInt32(code)).doc
        if code in _USER_REJECTED:
            who = f"user {username!r}" if username else "anonymous access"
            hint = "check the user name and password" if username else "the server needs a user name and password"
            return f"{endpoint} rejected {who} ({name}): {hint}"
        if code in _CERT_REJECTED:
            return (
                f"{endpoint} rejected the secure channel ({name}): the server must trust the Proxus client "
                "certificate (opcua/pki/client_cert.der in the node's data directory)"
            )
        return f"{endpoint} answered {name}" + (f": {doc}" if doc else "")
    if isinstance(exc, TimeoutError):
        return f"{endpoint} did not answer within {timeout_s:g} s"
    if isinstance(exc, ConnectionRefusedError):
        return f"cannot connect to {endpoint}: connection refused (is the server running and the port right?)"
    if isinstance(exc, socket.gaierror):
        return f"cannot connect to {endpoint}: unknown host ({exc.strerror or exc})"
    if isinstance(exc, OSError):
        return f"cannot connect to {endpoint}: {exc.strerror or exc}"
    if isinstance(exc, ConnectionError):
        return f"connection to {endpoint} lost: {exc}"
    return f"{endpoint}: {type(exc).__name__}: {exc}"


# --------------------------------------------------------------------------------------------------
# Connecting


@dataclass
class OpenedClient:
    client: Client
    endpoint: str
    warnings: list[str] = field(default_factory=list)
    connect_ms: float = 0.0


async def close_client(client: Client | None, timeout_s: float = 2.0) -> None:
    """Disconnect, never raising. A connection that is gone (or never came up) is closed locally:
    the client's tasks and publish loop stop without talking to the server."""
    if client is None:
        return
    try:
        if is_connected(client):
            await asyncio.wait_for(client.disconnect(), timeout_s)
        else:
            await asyncio.wait_for(client.close_session(), timeout_s)
    except Exception as exc:  # best effort teardown
        _log.debug("disconnect from %s failed: %r", client, exc)
    finally:
        with contextlib.suppress(Exception):
            client.disconnect_socket()


def is_connected(client: Client | None) -> bool:
    return client is not None and client.state is UaClientState.CONNECTED


async def open_client(
    config: OpcUaSubscribeConfig, credential: Credential | None, data_dir: Path, timeout_s: float
) -> OpenedClient:
    """Create a client for ``config``'s endpoint, set up security and user, and connect.

    Raises :class:`OpcUaError` with a clear message when anything fails.
    """
    endpoint = (config.endpoint or "").strip()
    if not endpoint:
        raise OpcUaError("no endpoint to connect to (set one, or choose a managed device that has one)")
    username = credential.username if credential is not None else None
    if credential is not None and not credential.username:
        raise OpcUaError(f"credential {credential.id!r} has no user name")
    started = time.monotonic()
    client = Client(endpoint, timeout=timeout_s, watchdog_intervall=WATCHDOG_INTERVAL_S)
    client.name = client.description = CLIENT_APPLICATION_NAME
    client.application_uri = client_application_uri()
    client.product_uri = CLIENT_PRODUCT_URI
    client.session_timeout = SESSION_TIMEOUT_MS
    opened = OpenedClient(client, endpoint)
    try:
        if config.security_policy != "None":
            await _apply_security(opened, config, data_dir, timeout_s)
        if credential is not None:
            client.set_user(credential.username)
            client.set_password(credential.secret)
        await asyncio.wait_for(client.connect(), timeout_s)
    except BaseException as exc:
        await close_client(client, 1.0)
        if isinstance(exc, Exception):
            raise OpcUaError(describe_error(exc, endpoint, username=username, timeout_s=timeout_s)) from exc
        raise
    opened.connect_ms = (time.monotonic() - started) * 1000
    return opened


async def _apply_security(opened: OpenedClient, config: OpcUaSubscribeConfig, data_dir: Path, timeout_s: float) -> None:
    client, endpoint = opened.client, opened.endpoint
    policy = security_policies.SecurityPolicyBasic256Sha256
    mode = ua.MessageSecurityMode[config.security_mode]
    pair = await asyncio.to_thread(ensure_client_certificate, data_dir)
    endpoints = await asyncio.wait_for(client.connect_and_get_server_endpoints(), timeout_s)
    match = next(
        (
            ep
            for ep in endpoints
            if ep.SecurityPolicyUri == policy.URI and ep.SecurityMode == mode and ep.ServerCertificate
        ),
        None,
    )
    if match is None:
        offered = sorted({f"{_short_policy(ep.SecurityPolicyUri)}/{_mode_name(ep.SecurityMode)}" for ep in endpoints})
        raise OpcUaError(
            f"{endpoint} offers no endpoint with security policy {config.security_policy} and mode "
            f"{config.security_mode}; it offers {', '.join(offered) or 'none'}"
        )
    server_der = _first_certificate(match.ServerCertificate)
    warning = await asyncio.to_thread(pin_server_certificate, data_dir, endpoint, server_der)
    if warning:
        opened.warnings.append(warning)
    await client.set_security(
        policy, certificate=pair.cert_path, private_key=pair.key_path, server_certificate=server_der, mode=mode
    )


# --------------------------------------------------------------------------------------------------
# Node ids and subscriptions


def parse_node_id(text: str, namespaces: list[str] | None = None) -> ua.NodeId:
    """A NodeId from its string form; ``nsu=<uri>;`` is resolved through the server's namespace array."""
    if text.startswith("nsu="):
        uri, sep, rest = text[4:].partition(";")
        if not sep:
            raise ValueError(f"{text!r} is not an OPC UA NodeId")
        if namespaces is None or uri not in namespaces:
            raise ValueError(f"the server has no namespace {uri!r}")
        text = f"ns={namespaces.index(uri)};{rest}"
    try:
        return ua.NodeId.from_string(text)
    except Exception as exc:  # asyncua raises UaStringParsingError and friends
        raise ValueError(f"{text!r} is not an OPC UA NodeId: {exc}") from exc


async def _namespaces_if_needed(client: Client, node_ids: Iterable[str]) -> list[str] | None:
    if any(n.startswith("nsu=") for n in node_ids):
        return list(await client.get_namespace_array())
    return None


def _deadband_filter(deadband: float, kind: str) -> ua.DataChangeFilter | None:
    if kind == "none" or deadband <= 0:
        return None
    flt = ua.DataChangeFilter()
    flt.Trigger = ua.DataChangeTrigger.StatusValue
    flt.DeadbandType = ua.DeadbandType.Absolute if kind == "absolute" else ua.DeadbandType.Percent
    flt.DeadbandValue = float(deadband)
    return flt


def subscription_parameters(publishing_interval_ms: int) -> ua.CreateSubscriptionParameters:
    interval = float(publishing_interval_ms)
    keepalive = max(1, -(-int(KEEPALIVE_S * 1000) // publishing_interval_ms))
    lifetime = max(3 * keepalive, -(-int(SUBSCRIPTION_LIFETIME_S * 1000) // publishing_interval_ms))
    params = ua.CreateSubscriptionParameters()
    params.RequestedPublishingInterval = interval
    params.RequestedLifetimeCount = lifetime
    params.RequestedMaxKeepAliveCount = keepalive
    params.MaxNotificationsPerPublish = 0  # no limit
    params.PublishingEnabled = True
    params.Priority = 0
    return params


@dataclass(frozen=True)
class MonitorFailure:
    index: int  # into config.nodes
    node_id: str
    status: str  # a StatusCode name, e.g. BadNodeIdUnknown


async def subscribe(
    client: Client, config: OpcUaSubscribeConfig, handler: Any
) -> tuple[Subscription, list[MonitorFailure]]:
    """One subscription with a monitored item per configured node.

    Client handles are ``index + 1`` into ``config.nodes``. Nodes the server refuses (unknown node
    id, not a variable, unsupported filter) are returned as failures; the others are monitored.
    """
    sub = await client.create_subscription(subscription_parameters(config.publishing_interval_ms), handler)
    namespaces = await _namespaces_if_needed(client, (n.node_id for n in config.nodes))
    failures: list[MonitorFailure] = []
    requests: list[tuple[int, ua.MonitoredItemCreateRequest]] = []
    for index, node in enumerate(config.nodes):
        try:
            node_id = parse_node_id(node.node_id, namespaces)
        except ValueError:
            failures.append(MonitorFailure(index, node.node_id, "BadNodeIdInvalid"))
            continue
        item = ua.ReadValueId()
        item.NodeId = node_id
        item.AttributeId = AttributeIds.Value
        params = ua.MonitoringParameters()
        params.ClientHandle = index + 1
        params.SamplingInterval = float(node.sampling_interval_ms)
        params.QueueSize = node.queue_size
        params.DiscardOldest = True
        params.Filter = _deadband_filter(node.deadband, node.deadband_type)
        request = ua.MonitoredItemCreateRequest()
        request.ItemToMonitor = item
        request.MonitoringMode = ua.MonitoringMode.Reporting
        request.RequestedParameters = params
        requests.append((index, request))
    if requests:
        results = await sub.create_monitored_items([r for _, r in requests])
        for (index, _), result in zip(requests, results, strict=True):
            if isinstance(result, ua.StatusCode):
                failures.append(MonitorFailure(index, config.nodes[index].node_id, status_name(result)))
    failures.sort(key=lambda f: f.index)
    return sub, failures


# --------------------------------------------------------------------------------------------------
# Request/reply helpers for the Hub


async def browse(
    config: OpcUaSubscribeConfig,
    node_id: str | None,
    credential: Credential | None,
    data_dir: Path,
    timeout_s: float,
) -> list[dict[str, Any]]:
    """The children of ``node_id`` (default: the Objects folder), following hierarchical references.

    Each child is ``{node_id, browse_name, display_name, node_class, data_type, value, has_children}``;
    ``data_type`` and ``value`` are set for variables only (value None when it cannot be read).
    Raises :class:`OpcUaError` on failure.
    """
    opened = await open_client(config, credential, data_dir, timeout_s)
    try:
        async with asyncio.timeout(timeout_s):
            return await _browse(opened.client, node_id)
    except OpcUaError:
        raise
    except Exception as exc:
        raise OpcUaError(describe_error(exc, opened.endpoint, timeout_s=timeout_s)) from exc
    finally:
        await close_client(opened.client)


def _browse_description(node_id: ua.NodeId) -> ua.BrowseDescription:
    desc = ua.BrowseDescription()
    desc.NodeId = node_id
    desc.BrowseDirection = ua.BrowseDirection.Forward
    desc.ReferenceTypeId = ua.NodeId(ua.Int32(ObjectIds.HierarchicalReferences))
    desc.IncludeSubtypes = True
    desc.NodeClassMask = 0
    desc.ResultMask = ua.BrowseResultMask.All
    return desc


async def _browse_all(client: Client, node_id: ua.NodeId) -> list[ua.ReferenceDescription]:
    session = client.uaclient.session
    params = ua.BrowseParameters()
    params.NodesToBrowse = [_browse_description(node_id)]
    params.RequestedMaxReferencesPerNode = 0
    result = (await session.browse(params))[0]
    result.StatusCode.check()
    references = list(result.References)
    while result.ContinuationPoint:
        nxt = ua.BrowseNextParameters()
        nxt.ContinuationPoints = [result.ContinuationPoint]
        nxt.ReleaseContinuationPoints = False
        result = (await session.browse_next(nxt))[0]
        result.StatusCode.check()
        references.extend(result.References)
    return references


async def _has_children(client: Client, node_ids: list[ua.NodeId]) -> list[bool]:
    if not node_ids:
        return []
    session = client.uaclient.session
    params = ua.BrowseParameters()
    params.NodesToBrowse = [_browse_description(n) for n in node_ids]
    params.RequestedMaxReferencesPerNode = 1
    results = await session.browse(params)
    points = [r.ContinuationPoint for r in results if r.ContinuationPoint]
    if points:  # free the server's continuation points
        release = ua.BrowseNextParameters()
        release.ContinuationPoints = points
        release.ReleaseContinuationPoints = True
        with contextlib.suppress(Exception):
            await session.browse_next(release)
    return [bool(r.References) or bool(r.ContinuationPoint) for r in results]


async def _read(client: Client, items: list[tuple[ua.NodeId, AttributeIds]]) -> list[ua.DataValue]:
    if not items:
        return []
    params = ua.ReadParameters()
    for node_id, attribute in items:
        rv = ua.ReadValueId()
        rv.NodeId = node_id
        rv.AttributeId = attribute
        params.NodesToRead.append(rv)
    return list(await client.uaclient.session.read(params))


async def _data_type_names(client: Client, data_types: Iterable[ua.NodeId]) -> dict[ua.NodeId, str]:
    names: dict[ua.NodeId, str] = {}
    unknown: list[ua.NodeId] = []
    for nid in dict.fromkeys(data_types):
        if nid.NamespaceIndex == 0 and isinstance(nid.Identifier, int) and nid.Identifier in ObjectIdNames:
            names[nid] = ObjectIdNames[nid.Identifier]
        else:
            unknown.append(nid)
    values = await _read(client, [(nid, AttributeIds.BrowseName) for nid in unknown])
    for nid, dv in zip(unknown, values, strict=True):
        qn = dv.Value.Value if dv.Value is not None else None
        names[nid] = qn.Name if isinstance(qn, ua.QualifiedName) else nid.to_string()
    return names


async def _browse(client: Client, node_id: str | None) -> list[dict[str, Any]]:
    if node_id:
        try:
            parent = parse_node_id(node_id, await _namespaces_if_needed(client, [node_id]))
        except ValueError as exc:
            raise OpcUaError(str(exc)) from exc
    else:
        parent = ua.NodeId(ua.Int32(ObjectIds.ObjectsFolder))
    (cls,) = await _read(client, [(parent, AttributeIds.NodeClass)])
    if quality_of(cls.StatusCode) is not Quality.GOOD:
        raise OpcUaError(f"node {node_id} cannot be browsed: {status_name(cls.StatusCode)}")
    references = await _browse_all(client, parent)
    child_ids = [r.NodeId for r in references]
    has_children = await _has_children(client, child_ids)
    variables = [r.NodeId for r in references if r.NodeClass == ua.NodeClass.Variable]
    reads = await _read(client, [(n, a) for n in variables for a in (AttributeIds.DataType, AttributeIds.Value)])
    var_data: dict[str, tuple[ua.NodeId | None, ua.DataValue]] = {}
    for i, nid in enumerate(variables):
        dtype_dv, value_dv = reads[2 * i], reads[2 * i + 1]
        dtype = dtype_dv.Value.Value if dtype_dv.Value is not None else None
        var_data[nid.to_string()] = (dtype if isinstance(dtype, ua.NodeId) else None, value_dv)
    type_names = await _data_type_names(client, [d for d, _ in var_data.values() if d is not None])
    children: list[dict[str, Any]] = []
    for ref, children_flag in zip(references, has_children, strict=True):
        key = ref.NodeId.to_string()
        entry: dict[str, Any] = {
            "node_id": key,
            "browse_name": ref.BrowseName.to_string(),
            "display_name": ref.DisplayName.Text or ref.BrowseName.Name,
            "node_class": ua.NodeClass(ref.NodeClass).name,
            "data_type": None,
            "value": None,
            "has_children": children_flag,
        }
        if key in var_data:
            dtype, value_dv = var_data[key]
            entry["data_type"] = type_names.get(dtype) if dtype is not None else None
            raw = value_dv.Value.Value if value_dv.Value is not None else None
            if raw is not None and quality_of(value_dv.StatusCode) is not Quality.BAD:
                entry["value"] = to_value(raw)
        children.append(entry)
    return children


async def test_opcua_connection(
    config: OpcUaSubscribeConfig, credential: Credential | None, data_dir: Path, timeout_s: float
) -> dict[str, Any]:
    """Connect, read the server status and disconnect.

    ``{"ok", "message", "latency_ms", "server": {"product", "state"}}``: ``latency_ms`` is the round
    trip of the ServerStatus read on the established session; ``server`` is None when the
    connection failed. Never raises for connection problems.
    """
    try:
        opened = await open_client(config, credential, data_dir, timeout_s)
    except OpcUaError as exc:
        return {"ok": False, "message": str(exc), "latency_ms": None, "server": None}
    client = opened.client
    try:
        started = time.monotonic()
        status = await asyncio.wait_for(client.get_node(ObjectIds.Server_ServerStatus).read_value(), timeout_s)
        latency_ms = round((time.monotonic() - started) * 1000, 1)
        product = status.BuildInfo.ProductName if status.BuildInfo is not None else ""
        state = ua.ServerState(status.State).name
    except Exception as exc:
        return {
            "ok": False,
            "message": f"connected, but reading the server status failed: "
            f"{describe_error(exc, opened.endpoint, timeout_s=timeout_s)}",
            "latency_ms": None,
            "server": None,
        }
    finally:
        await close_client(client)
    how = f"{config.security_policy}/{config.security_mode}"
    who = f"user {credential.username!r}" if credential is not None else "anonymous"
    message = f"connected to {opened.endpoint} ({how}, {who}) in {opened.connect_ms:.0f} ms; server state {state}"
    if opened.warnings:
        message += "; warning: " + "; ".join(opened.warnings)
    return {
        "ok": True,
        "message": message,
        "latency_ms": latency_ms,
        "server": {"product": product, "state": state},
    }
