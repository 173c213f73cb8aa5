"""Every error the API returns is JSON naming the field and the problem; nothing leaks a 500 page.

Body: ``{"error": "<code>", "message": "...", "details": [{"field": "...", "message": "..."}]}``.
"""

from __future__ import annotations

import logging
from typing import Any

import asyncpg  # type: ignore[import-untyped, unused-ignore]
import msgspec
from litestar import Request, Response
from litestar.exceptions import HTTPException, ValidationException

log = logging.getLogger("proxus.hub")


class FieldProblem(msgspec.Struct, frozen=True, omit_defaults=True):
    field: str
    message: str
    node_id: str | None = None


class ErrorBody(msgspec.Struct, frozen=True, omit_defaults=True):
    error: str
    message: str
    details: list[FieldProblem] = []
    extra: dict[str, Any] | None = None


class ApiError(Exception):
    """A domain error with an HTTP status: raise it from services."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        *,
        field: str | None = None,
        details: list[FieldProblem] | None = None,
        extra: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.details = details or ([FieldProblem(field, message)] if field else [])
        self.extra = extra


def not_found(what: str, key: object) -> ApiError:
    return ApiError(404, "not_found", f"{what} {key!r} does not exist")


def conflict(message: str, **extra: Any) -> ApiError:
    return ApiError(409, "conflict", message, extra=extra or None)


def _respond(status: int, body: ErrorBody) -> Response[ErrorBody]:
    return Response(body, status_code=status)


_HTTP_CODES = {
    400: "bad_request",
    401: "not_authenticated",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "too_large",
    415: "unsupported_media_type",
    429: "too_many_requests",
    503: "unavailable",
}


def handle_api_error(_: Request[Any, Any, Any], exc: ApiError) -> Response[ErrorBody]:
    return _respond(exc.status, ErrorBody(exc.code, exc.message, exc.details, exc.extra))


def handle_validation(_: Request[Any, Any, Any], exc: ValidationException) -> Response[ErrorBody]:
    details = []
    for item in exc.extra if isinstance(exc.extra, list) else []:
        if isinstance(item, dict):
            key = str(item.get("key") or item.get("source") or "body")
            details.append(FieldProblem(key, str(item.get("message", "invalid value"))))
    message = "; ".join(f"{d.field}: {d.message}" for d in details) or str(exc.detail)
    return _respond(400, ErrorBody("invalid_request", message, details))


def handle_http(_: Request[Any, Any, Any], exc: HTTPException) -> Response[ErrorBody]:
    status = exc.status_code
    headers = getattr(exc, "headers", None) or {}
    response = _respond(status, ErrorBody(_HTTP_CODES.get(status, "error"), str(exc.detail)))
    response.headers.update(headers)
    return response


def handle_database(_: Request[Any, Any, Any], exc: asyncpg.PostgresError) -> Response[ErrorBody]:
    # Input the schema refuses (a value out of range, a duplicate name) is the caller's problem: 4xx.
    if isinstance(exc, asyncpg.UniqueViolationError):
        return _respond(409, ErrorBody("conflict", f"already exists: {exc.detail or exc}"))
    if isinstance(exc, asyncpg.ForeignKeyViolationError):
        return _respond(409, ErrorBody("conflict", f"still referenced or missing reference: {exc.detail or exc}"))
    if isinstance(exc, asyncpg.DataError | asyncpg.IntegrityConstraintViolationError):
        return _respond(400, ErrorBody("invalid_request", str(exc)))
    log.exception("database error", exc_info=exc)
    return _respond(503, ErrorBody("unavailable", "the database could not complete the request"))


def handle_unexpected(request: Request[Any, Any, Any], exc: Exception) -> Response[ErrorBody]:
    log.exception("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
    return _respond(500, ErrorBody("internal_error", "an unexpected error occurred; it has been logged"))


EXCEPTION_HANDLERS: dict[Any, Any] = {
    ApiError: handle_api_error,
    ValidationException: handle_validation,
    HTTPException: handle_http,
    asyncpg.PostgresError: handle_database,
    Exception: handle_unexpected,
}
