"""What can go wrong for the client, and the one table from an HTTP answer to an error and an exit code.

ClientError                      exit code (ExitCode)
├── UsageError                   2  bad option value, nothing configured, target already there
├── ServerError                  1  an answer with no better name below (400, 403, 422, 500 …)
│   ├── Unauthorized             3  401: wrong or missing API key, or a link password refused
│   ├── NotFound                 4  404
│   ├── Gone                     5  410; `reason` says expired, exhausted, revoked or file_deleted
│   ├── TooLarge                 6  413
│   ├── RateLimited              7  429; `retry_after` seconds
│   └── Unavailable              8  503 or 507; `retry_after` seconds
├── ConnectionFailed             9  refused, unresolvable, timed out, or dropped mid-transfer
├── VerificationFailed          10  size or sha256 differ from what the server says
└── LocalFileError               1  a local file could not be read or written

Every message is one plain sentence meant for a person; no key, password or grant is ever part of one.
"""

from enum import IntEnum
from typing import Any, ClassVar

import httpx


class ExitCode(IntEnum):
    OK = 0
    FAILED = 1
    USAGE = 2
    UNAUTHORIZED = 3
    NOT_FOUND = 4
    GONE = 5
    TOO_LARGE = 6
    RATE_LIMITED = 7
    UNAVAILABLE = 8
    CONNECTION_FAILED = 9
    VERIFICATION_FAILED = 10
    INTERRUPTED = 130  # what shells report for Ctrl-C (128 + SIGINT)


class ClientError(Exception):
    """Each kind names its exit code as a class keyword: `class NotFound(ServerError, exit_code=…)`."""

    exit_code: ClassVar[ExitCode] = ExitCode.FAILED

    def __init_subclass__(cls, *, exit_code: ExitCode | None = None, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if exit_code is not None:
            cls.exit_code = exit_code

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class ServerError(ClientError):
    def __init__(self, message: str, *, status: int, detail: str | None = None, retry_after: int | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.detail = detail
        self.retry_after = retry_after  # seconds, when the server said (429, 503)


class Gone(ServerError, exit_code=ExitCode.GONE):
    def __init__(self, message: str, *, status: int, detail: str | None = None, reason: str | None = None) -> None:
        super().__init__(message, status=status, detail=detail)
        self.reason = reason


# The rest differ only in their exit code (and the tree above says what each means).
class UsageError(ClientError, exit_code=ExitCode.USAGE): ...


class Unauthorized(ServerError, exit_code=ExitCode.UNAUTHORIZED): ...


class NotFound(ServerError, exit_code=ExitCode.NOT_FOUND): ...


class TooLarge(ServerError, exit_code=ExitCode.TOO_LARGE): ...


class RateLimited(ServerError, exit_code=ExitCode.RATE_LIMITED): ...


class Unavailable(ServerError, exit_code=ExitCode.UNAVAILABLE): ...


class ConnectionFailed(ClientError, exit_code=ExitCode.CONNECTION_FAILED): ...


class VerificationFailed(ClientError, exit_code=ExitCode.VERIFICATION_FAILED): ...


class LocalFileError(ClientError, exit_code=ExitCode.FAILED): ...


GONE_REASONS = {
    "expired": "it expired",
    "exhausted": "it is exhausted, every download it allowed has been used",
    "revoked": "it was revoked",
    "file_deleted": "its file was deleted",
}


def _problem_field(response: httpx.Response, name: str) -> str | None:
    """A text field of the problem+json body, or None: a proxy in between may answer with HTML."""
    try:
        body = response.json()
    except ValueError:
        return None
    value = body.get(name) if isinstance(body, dict) else None
    return value if isinstance(value, str) and value else None


def _retry_after(response: httpx.Response) -> int | None:
    value = response.headers.get("retry-after", "")
    return int(value) if value.isdigit() else None


def _again(seconds: int | None) -> str:
    return f"try again in {seconds} s" if seconds is not None else "try again later"


def error_for(response: httpx.Response, *, what: str = "resource") -> ServerError:
    """The error for a non-success answer. `what` names the thing asked for, for 404s ("file 4f2a…")."""
    status = response.status_code
    detail = _problem_field(response, "detail")
    retry_after = _retry_after(response)
    match status:
        case 401 if response.headers.get("www-authenticate", "").lower().startswith("basic"):
            return Unauthorized(detail or "The link's password was refused.", status=status, detail=detail)
        case 401:
            return Unauthorized(
                "The server refused the API key (401); check --key, LAPSE_API_KEY or `lapse login`.",
                status=status,
                detail=detail,
            )
        case 404:
            return NotFound(f"No such {what} on the server (404).", status=status, detail=detail)
        case 410:
            reason = _problem_field(response, "reason") or response.headers.get("lapse-gone-reason")
            why = GONE_REASONS.get(reason or "", "it is no longer available")
            return Gone(f"This link is gone (410): {why}.", status=status, detail=detail, reason=reason)
        case 413:
            return TooLarge(
                f"The server refused the file as too large (413){f': {detail}' if detail else '.'}",
                status=status,
                detail=detail,
            )
        case 429:
            message = f"Too many attempts (429); {_again(retry_after)}."
            return RateLimited(message, status=status, detail=detail, retry_after=retry_after)
        case 503 | 507:
            what_failed = "is out of disk space" if status == 507 else "is temporarily unavailable"
            message = f"The server {what_failed} ({status}); {_again(retry_after)}."
            return Unavailable(message, status=status, detail=detail, retry_after=retry_after)
        case _:
            reason_phrase = response.reason_phrase or "error"
            said = f": {detail}" if detail else "."
            return ServerError(f"The server answered {status} {reason_phrase}{said}", status=status, detail=detail)


def connection_error(exc: httpx.TransportError, url: httpx.URL | str) -> ConnectionFailed:
    """One sentence for a transport failure; the URL's origin only, never its path (a link token is a secret)."""
    origin = httpx.URL(str(url)).copy_with(path="/", query=None, fragment=None)
    target = str(origin).rstrip("/")
    match exc:
        case httpx.ConnectError():
            cause = str(exc).lower()
            if "refused" in cause:
                return ConnectionFailed(f"Could not connect to {target}: connection refused.")
            if "name or service" in cause or "nodename" in cause or "resolution" in cause:
                return ConnectionFailed(f"Could not connect to {target}: unknown host.")
            if "ssl" in cause or "certificate" in cause:
                return ConnectionFailed(f"Could not connect to {target}: the TLS handshake failed ({exc}).")
            return ConnectionFailed(f"Could not connect to {target}: {exc or 'connection failed'}.")
        case httpx.TimeoutException():
            return ConnectionFailed(f"The server at {target} did not answer in time.")
        case _:
            return ConnectionFailed(f"The connection to {target} broke off ({type(exc).__name__}).")
