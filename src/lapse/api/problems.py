"""Errors as RFC 9457 problem+json: the one place that maps domain errors to HTTP."""

import logging
from collections.abc import Awaitable, Callable
from http import HTTPStatus
from typing import Any, cast

import asyncpg
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel
from sqlalchemy import exc as sa_exc
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect
from starlette.responses import JSONResponse, Response
from starlette.routing import Match

from lapse import errors, metrics
from lapse.middleware import DEFAULT_HEADER_FIELDS

logger = logging.getLogger("lapse")

PROBLEM_JSON = "application/problem+json"
# Errors about a link must never be replayed by a cache: 404 and 410 are cacheable by default (RFC 9111).
NO_STORE = {"Cache-Control": "no-store"}
GONE_REASON_HEADER = "Lapse-Gone-Reason"


class Problem(BaseModel):
    type: str = "about:blank"
    title: str
    status: int
    detail: str | None = None
    reason: str | None = None  # why a link is gone: expired, exhausted, revoked, file_deleted
    errors: list[dict[str, Any]] | None = None


def problem(status: int, detail: str | None = None, *, headers: dict[str, str] | None = None, **extra: Any) -> Response:
    body = Problem(title=HTTPStatus(status).phrase, status=status, detail=detail, **extra)
    return JSONResponse(
        body.model_dump(exclude_none=True),
        status_code=status,
        media_type=PROBLEM_JSON,
        headers={**NO_STORE, **(headers or {})},
    )


def unexpected() -> Response:
    """The answer to a bug. It leaves outside DefaultHeadersMiddleware (from Starlette's ServerErrorMiddleware, or
    in front of the framework on the fast paths), so it brings the security headers every answer carries."""
    return problem(500, "Something went wrong on our side.", headers=DEFAULT_HEADER_FIELDS)


# --- the database (or the disk) out of reach -------------------------------------------------------------------------
# SQLSTATE classes that mean "not now", not "wrong": 08 connection exception, 53 insufficient resources (too many
# connections), 57 operator intervention (the server is shutting down or starting up).
UNAVAILABLE_SQLSTATE_CLASSES = ("08", "53", "57")
RETRY_AFTER = 5


def database_unreachable(exc: BaseException) -> bool:
    """Whether `exc` means the database (or the disk under it) cannot be reached right now: the one place that
    decides it, for the app's handler and for the paths answered in front of the framework.

    SQLAlchemy's asyncpg adapter wraps a dropped connection or a shutting-down server in a plain DBAPIError, so the
    wrapper's class is not enough: the chain of causes is looked at too.
    """
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        match current:
            case sa_exc.OperationalError() | sa_exc.InterfaceError() | sa_exc.TimeoutError():
                return True
            case sa_exc.DBAPIError(connection_invalidated=True):
                return True
            case OSError() | asyncpg.PostgresConnectionError() | asyncpg.InterfaceError():  # OSError: TimeoutError too
                return True
            case asyncpg.PostgresError(sqlstate=str(state)) if state.startswith(UNAVAILABLE_SQLSTATE_CLASSES):
                return True
        current = current.__cause__ or current.__context__
    return False


def unavailable(exc: BaseException) -> Response:
    """503 + Retry-After for an outage (`database_unreachable`). It may leave in front of the framework (the fast
    paths), so it brings the security headers every answer carries."""
    logger.warning("backend.unavailable", extra={"error": repr(exc)})
    metrics.UNAVAILABLE.inc()
    return problem(
        503,
        "The service is temporarily unavailable.",
        headers={**DEFAULT_HEADER_FIELDS, "Retry-After": str(RETRY_AFTER)},
    )


def failed(exc: BaseException) -> Response:
    """The answer to an exception nothing else handled: 503 for an outage, else a logged 500."""
    if database_unreachable(exc):
        return unavailable(exc)
    logger.exception("request.failed", exc_info=exc)
    return unexpected()


def problem_for(exc: errors.LapseError) -> Response:
    match exc:
        case errors.NotFound():
            return problem(404, exc.message)
        case errors.Gone(reason=reason):
            # The header too: a HEAD answer has no body to carry the reason.
            return problem(410, exc.message, reason=reason.value, headers={GONE_REASON_HEADER: reason.value})
        case errors.Unauthorized():
            return problem(401, exc.message, headers={"WWW-Authenticate": 'Bearer realm="lapse"'})
        case errors.PasswordRequired():
            return problem(401, exc.message, headers={"WWW-Authenticate": 'Basic realm="lapse download"'})
        case errors.Forbidden():
            return problem(403, exc.message)
        case errors.NotAllowed(allow=allow):
            return problem(405, exc.message, headers={"Allow": allow})
        case errors.RateLimited(retry_after=retry_after):
            return problem(429, exc.message, headers={"Retry-After": str(retry_after)})
        case errors.TooLarge():
            return problem(413, exc.message)
        case errors.UnsupportedMedia():
            return problem(415, exc.message)
        case errors.InsufficientStorage(retry_after=retry_after):
            return problem(507, exc.message, headers={"Retry-After": str(retry_after)})
        case errors.Unavailable(retry_after=retry_after):
            return problem(503, exc.message, headers={"Retry-After": str(retry_after)})
        case _:
            return problem(400, exc.message)  # InvalidInput


# A transport that shows errors to people (the web page) may answer a domain error itself, e.g. with HTML for a
# browser; it returns None to leave the answer to problem+json. Registered per app, on app.state.
ErrorPages = Callable[[Request, errors.LapseError], Awaitable[Response | None]]


def set_error_pages(app: FastAPI, render: ErrorPages) -> None:
    app.state.error_pages = render


def responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI `responses=` entries, so /docs lists every error a route can answer."""
    return {
        status: {"model": Problem, "description": HTTPStatus(status).phrase, "content": {PROBLEM_JSON: {}}}
        for status in statuses
    }


# What `database_unreachable` looks at: handled inside the middleware stack, so that the answer gets the default
# headers and the exception is not re-raised to the server as an unhandled one. A DBAPIError that is not an outage
# (a bug) is answered 500 by the same handler.
METHODS = ("DELETE", "GET", "HEAD", "OPTIONS", "PATCH", "POST", "PUT")
DATABASE_ERRORS = (sa_exc.DBAPIError, sa_exc.TimeoutError, OSError, asyncpg.PostgresError, asyncpg.InterfaceError)


def allowed_methods(request: Request) -> str | None:
    """Every method the request's path takes, over all routes: the framework's 405 names only the first route whose
    path matched, and a path such as /api/v1/links/{id} is served by three (GET, PATCH, DELETE). Each method is
    asked of the router itself, so routes nested in included routers count too."""
    allowed = [
        method
        for method in METHODS
        if any(
            route.matches({**request.scope, "method": method})[0] == Match.FULL for route in request.app.router.routes
        )
    ]
    return ", ".join(allowed) if allowed else None


def install(app: FastAPI) -> None:
    async def on_lapse_error(request: Request, exc: Exception) -> Response:
        error = cast(errors.LapseError, exc)
        if isinstance(error, errors.Unavailable) and not isinstance(error, errors.InsufficientStorage):  # 503s
            metrics.UNAVAILABLE.inc()
        render: ErrorPages | None = getattr(request.app.state, "error_pages", None)
        if render is not None and (page := await render(request, error)) is not None:
            return page
        return problem_for(error)

    async def on_http_error(request: Request, exc: Exception) -> Response:
        http_error = cast(HTTPException, exc)
        detail = http_error.detail if http_error.status_code != 404 else None
        headers = dict(http_error.headers or {})
        if http_error.status_code == 405 and (allow := allowed_methods(request)) is not None:
            headers["Allow"] = allow
        return problem(http_error.status_code, detail, headers=headers)

    async def on_validation_error(_: Request, exc: Exception) -> Response:
        exc = cast(RequestValidationError, exc)
        details = [
            {"loc": list(e["loc"]), "msg": e["msg"], "type": e["type"]}  # no `input`: it may hold a password
            for e in exc.errors()
        ]
        return problem(422, "The request is not valid.", errors=details)

    async def on_database_error(_: Request, exc: Exception) -> Response:
        return failed(exc)

    async def on_disconnect(_: Request, __: Exception) -> Response:
        return problem(400, "The client went away.")

    async def on_unexpected(_: Request, exc: Exception) -> Response:
        return failed(exc)

    app.add_exception_handler(errors.LapseError, on_lapse_error)
    app.add_exception_handler(HTTPException, on_http_error)
    app.add_exception_handler(RequestValidationError, on_validation_error)
    app.add_exception_handler(ClientDisconnect, on_disconnect)
    for exc_type in DATABASE_ERRORS:
        app.add_exception_handler(exc_type, on_database_error)
    app.add_exception_handler(Exception, on_unexpected)
