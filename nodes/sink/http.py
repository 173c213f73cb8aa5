"""``sink.http``: send points and events to an HTTP endpoint."""

import base64
import re
from collections.abc import Iterator
from typing import Annotated, Literal
from urllib.parse import parse_qsl, urlsplit

import msgspec
from msgspec import Meta

from nodes.host import Data, NodeContext, NotConnected, PermanentError, RetryableError, Sink
from nodes.sink.encoding import encode_json, encode_ndjson, records
from nodes.spec import Category, ConfigProblem, NodeConfig, NodeSpec, any_in

Method = Literal["POST", "PUT"]
AuthScheme = Literal["bearer", "basic", "header"]
Format = Literal["json", "ndjson"]

_SENSITIVE_NAMES = frozenset(
    {
        "authorization",
        "proxy-authorization",
        "cookie",
        "set-cookie",
        "x-api-key",
        "api-key",
        "apikey",
        "api_key",
        "x-auth",
        "x-auth-key",
        "key",
        "password",
        "passwd",
        "pwd",
        "signature",
        "sig",
    }
)
_SENSITIVE_PARTS = ("token", "secret", "password", "api-key", "api_key", "apikey", "credential", "session")
_HEADER_NAME = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_HINT_CREDENTIAL = "store it as a credential and set credential"


def is_sensitive_name(name: str) -> bool:
    """Whether a header or query parameter name typically carries a secret."""
    lower = name.strip().lower()
    return lower in _SENSITIVE_NAMES or any(part in lower for part in _SENSITIVE_PARTS)


def url_problems(url: str, path: str = "$.url") -> Iterator[ConfigProblem]:
    """Problems of an http(s) endpoint URL, including secrets embedded in it."""
    if not url.strip():
        yield ConfigProblem(path, "no URL set", "enter the endpoint, e.g. https://example.com/ingest")
        return
    if any(c.isspace() or ord(c) < 0x20 for c in url):
        yield ConfigProblem(path, "the URL contains spaces or control characters", "encode spaces as %20")
        return
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError for a port out of range or not a number
    except ValueError as e:
        yield ConfigProblem(path, f"{url!r} is not a valid URL: {e}", "use the form https://host/path")
        return
    if parts.scheme not in ("http", "https"):
        yield ConfigProblem(path, f"{url!r} is not an http:// or https:// URL", "use the form https://host/path")
        return
    if not parts.hostname:
        yield ConfigProblem(path, f"{url!r} names no host", "use the form https://host/path")
    if parts.username is not None or parts.password is not None:
        yield ConfigProblem(path, "the URL contains a user name or password", _HINT_CREDENTIAL)
    for name, _value in parse_qsl(parts.query, keep_blank_values=True):
        if is_sensitive_name(name):
            yield ConfigProblem(path, f"query parameter {name!r} looks like a secret", _HINT_CREDENTIAL)


class HttpSinkConfig(NodeConfig, frozen=True):
    """
    Sends points and events to an HTTP endpoint (a REST API, a cloud ingest service) as JSON, in
    batches, retrying when the endpoint fails. Authentication comes from a stored credential, never from
    text typed into the node.
    """

    url: Annotated[
        str,
        Meta(
            max_length=2048,
            description="Endpoint URL the data is sent to; http:// or https://.",
            examples=["https://example.com/api/ingest"],
        ),
    ] = ""
    method: Annotated[Method, Meta(description="HTTP method of each request.")] = "POST"
    credential: Annotated[
        str | None,
        Meta(description="Id of a stored credential used for authentication; no authentication when not set."),
    ] = None
    auth_scheme: Annotated[
        AuthScheme,
        Meta(
            description="How the credential is sent in the auth_header: bearer sends 'Bearer <token>', basic "
            "sends the user name and password, header sends the stored value as it is."
        ),
    ] = "bearer"
    auth_header: Annotated[
        str,
        Meta(
            min_length=1,
            description="Name of the header that carries the credential.",
            examples=["Authorization", "X-Api-Key"],
        ),
    ] = "Authorization"
    headers: Annotated[
        dict[str, str],
        Meta(
            description="Additional, non-secret request headers; secrets belong in a stored credential.",
            examples=[{"X-Plant": "berlin"}],
        ),
    ] = msgspec.field(default_factory=dict)
    format: Annotated[
        Format,
        Meta(description="Body format: json sends one JSON array per request, ndjson one JSON object per line."),
    ] = "json"
    batch_size: Annotated[
        int, Meta(ge=1, le=100_000, description="Largest number of points or events sent in one request.")
    ] = 500
    flush_interval_ms: Annotated[
        int,
        Meta(
            ge=10,
            le=60_000,
            description="Longest time data waits before being sent, in milliseconds, even "
            "when fewer than batch_size items are pending.",
        ),
    ] = 1000
    timeout_ms: Annotated[
        int,
        Meta(ge=10, le=300_000, description="How long to wait for the endpoint to answer, in milliseconds."),
    ] = 10_000
    max_retries: Annotated[
        int,
        Meta(
            ge=0,
            le=100,
            description="How often a batch the endpoint answers with a server error (5xx, 429) is retried, with "
            "increasing pauses, before it is dropped; an unreachable endpoint is retried without limit "
            "from the outbox, so an outage loses nothing.",
        ),
    ] = 5

    def problems(self) -> Iterator[ConfigProblem]:
        yield from url_problems(self.url)
        auth_header = self.auth_header.strip().lower()
        if self.credential is not None:
            if not self.credential.strip():
                yield ConfigProblem(
                    "$.credential",
                    "the credential id is empty",
                    "choose a stored credential or clear the field",
                )
            if not _HEADER_NAME.fullmatch(self.auth_header):
                yield ConfigProblem(
                    "$.auth_header",
                    f"{self.auth_header!r} is not a valid header name",
                    "use letters, digits and '-' only, e.g. Authorization",
                )
        for name, value in self.headers.items():
            path = f"$.headers[{name!r}]"
            if not _HEADER_NAME.fullmatch(name):
                yield ConfigProblem(path, f"{name!r} is not a valid header name", "use letters, digits and '-' only")
            elif is_sensitive_name(name):
                yield ConfigProblem(path, f"header {name!r} would hold a secret in plain text", _HINT_CREDENTIAL)
            elif self.credential is not None and name.lower() == auth_header:
                yield ConfigProblem(
                    path,
                    f"header {name!r} is also set from the credential",
                    "remove it here or choose another auth_header",
                )
            if any(c in value for c in "\r\n\0"):
                yield ConfigProblem(
                    path,
                    f"the value of header {name!r} contains a line break",
                    "remove line breaks from header values",
                )


# 408 and 429 say "try later"; every other 4xx says the request itself is wrong.
_RETRYABLE_4XX = frozenset({408, 425, 429})


class HttpSink(Sink):
    """POSTs (or PUTs) batches; 5xx/429 are retried up to max_retries, other 4xx dropped, outages buffered."""

    def __init__(self, config: HttpSinkConfig, context: NodeContext) -> None:
        import httpx  # imported here so that declaring the catalog needs no HTTP client

        self.config = config
        self.context = context
        self.max_batch_points = config.batch_size
        self.max_attempts = config.max_retries
        headers = dict(config.headers)
        headers["Content-Type"] = "application/json" if config.format == "json" else "application/x-ndjson"
        if config.credential:
            headers[config.auth_header] = self._auth_value(context, config)
        self._client = httpx.AsyncClient(headers=headers, timeout=config.timeout_ms / 1000)
        self._httpx = httpx

    @staticmethod
    def _auth_value(context: NodeContext, config: HttpSinkConfig) -> str:
        assert config.credential is not None
        try:
            cred = context.credential(config.credential)
        except KeyError as exc:
            raise PermanentError(f"credential {config.credential!r} is not available on this edge") from exc
        if config.auth_scheme == "bearer":
            return f"Bearer {cred.secret}"
        if config.auth_scheme == "basic":
            return "Basic " + base64.b64encode(f"{cred.username}:{cred.secret}".encode()).decode()
        return cred.secret

    async def write(self, data: Data, key: str = "") -> None:
        items = records(data)
        body = encode_json(items) if self.config.format == "json" else encode_ndjson(items)
        # A timed-out request may still have been processed: the key lets the receiver drop the retry.
        headers = {"Idempotency-Key": key} if key else None
        try:
            response = await self._client.request(self.config.method, self.config.url, content=body, headers=headers)
        except self._httpx.TimeoutException as exc:
            raise NotConnected(f"{self.config.url}: no answer within {self.config.timeout_ms} ms") from exc
        except self._httpx.TransportError as exc:
            raise NotConnected(f"{self.config.url}: {exc or type(exc).__name__}") from exc
        status = response.status_code
        if status < 300:
            self.context.count("requests")
            return
        detail = f"{self.config.method} {self.config.url} answered {status} {response.reason_phrase}: "
        detail += response.text[:200]
        if status >= 500 or status in _RETRYABLE_4XX:
            raise RetryableError(detail)
        raise PermanentError(detail)

    async def close(self) -> None:
        await self._client.aclose()


EXAMPLE = HttpSinkConfig(
    url="https://example.com/api/ingest",
    method="POST",
    credential="cloud-ingest",
    auth_scheme="bearer",
    headers={"X-Plant": "berlin"},
    format="json",
    batch_size=500,
    flush_interval_ms=1000,
    timeout_ms=10_000,
    max_retries=5,
)

SPEC = NodeSpec(
    type_id="sink.http",
    version=1,
    category=Category.SINK,
    title="HTTP send",
    description="Sends points and events to an HTTP endpoint in batches.",
    config=HttpSinkConfig,
    example=EXAMPLE,
    inputs=(any_in(),),
    stateful=False,
    icon="send",
    behaviour=HttpSink,
)
