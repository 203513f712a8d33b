"""GET / HEAD / POST /d/{token}: the download route. links.download decides; this reads the request's facts and
translates the decision into a response (`respond`, which api.fast_download shares)."""

import base64
import json
from datetime import timedelta
from typing import Any
from urllib.parse import parse_qs

from fastapi import APIRouter, Request, Response

from lapse.api.deps import get_runtime
from lapse.api.file_responses import JudgedFileResponse, SmallFileResponse
from lapse.api.problems import problem, responses
from lapse.api.stream_response import StreamedBlobResponse
from lapse.db.base import utc_now
from lapse.errors import InvalidInput
from lapse.links import download as downloads
from lapse.links.download import DownloadRequest, is_prefetch
from lapse.middleware import DEFAULT_HEADER_FIELDS

router = APIRouter(tags=["download"])

GRANT_COOKIE = "lapse_grant"
GRANT_HEADER = "lapse-grant"
MAX_PASSWORD_BODY = 8 * 1024
DOWNLOAD_ERRORS = responses(400, 401, 403, 404, 405, 410, 412, 416, 429, 503)


def presented_grant(request: Request) -> str | None:
    return request.headers.get(GRANT_HEADER) or request.cookies.get(GRANT_COOKIE)


def basic_password(request: Request) -> str | None:
    """`curl -u :secret` works too: the password travels in a header, never in the URL."""
    scheme, _, credentials = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        return base64.b64decode(credentials.strip(), validate=True).decode().partition(":")[2] or None
    except ValueError:  # binascii.Error, UnicodeDecodeError, and non-ASCII text, which b64decode refuses
        return None


async def _posted_password(request: Request) -> str | None:
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_PASSWORD_BODY:
            raise InvalidInput("The form is too large.")
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    try:
        if content_type == "application/json":
            value = json.loads(body or b"{}").get("password")
            if isinstance(value, str):
                value.encode()  # JSON can carry a lone surrogate, which no UTF-8 password holds: bad input
                return value
            return None
        return parse_qs(body.decode(), max_num_fields=8).get("password", [None])[0]
    except (ValueError, AttributeError, RecursionError) as exc:  # Unicode errors are ValueErrors; deep nesting too
        raise InvalidInput("Send the password as a form field or JSON `password`.") from exc


def download_request(request: Request, token: str) -> DownloadRequest:
    """The facts links.download decides on; a POST's form is read only if the link turns out to want it."""

    async def password() -> str | None:
        return await _posted_password(request) if request.method == "POST" else basic_password(request)

    return DownloadRequest(
        token=token,
        method=request.method,
        headers=request.headers,
        grant=presented_grant(request),
        client=request.client.host if request.client else "unknown",
        password=password,
        prefetch=is_prefetch(request.headers),
    )


DOWNLOAD_RESPONSES: dict[int | str, dict[str, Any]] = {
    # The file's own type when it is on the inert list, else application/octet-stream.
    200: {"description": "The file", "content": {"*/*": {}}},
    206: {"description": "Part of the file"},
    302: {"description": "The file, from the store (LAPSE_DELIVERY=redirect)"},
    303: {"description": "The file, from the store, after a password form (LAPSE_DELIVERY=redirect)"},
    304: {"description": "Not modified"},
    **DOWNLOAD_ERRORS,
}


@router.api_route(
    "/d/{token}",
    methods=["PUT", "PATCH", "DELETE", "OPTIONS", "TRACE", "CONNECT"],
    include_in_schema=False,
)
async def other_methods() -> Response:
    """One Allow for the whole resource: Starlette would list only the first of several routes' methods."""
    return problem(405, "Downloads take GET, HEAD, or POST with a password.", headers={"Allow": "GET, HEAD, POST"})


@router.get("/d/{token}", responses=DOWNLOAD_RESPONSES, operation_id="download")
@router.head("/d/{token}", responses=DOWNLOAD_RESPONSES, operation_id="download_head")
@router.post("/d/{token}", responses=DOWNLOAD_RESPONSES, operation_id="download_with_password")
async def download(token: str, request: Request) -> Response:
    """Download. Each GET without a grant spends one download and returns a grant (cookie and `Lapse-Grant`
    header) that lets an interrupted transfer resume with Range requests for free. HEAD, 304, 416, errors and
    prefetches never spend one. For a password link, POST the form field `password` (or use Basic auth)."""
    # Most GETs and HEADs never get here: api.fast_download answers them in front of the framework's routing.
    service = get_runtime(request).downloads
    decision = await service.decide(download_request(request, token), now=utc_now())
    return respond(decision, request, token)


def respond(decision: downloads.Decision, request: Request, token: str) -> Response:
    """The response for a decision of links.download (the fast path sends it without the framework's middleware,
    so the default headers are added here too)."""
    if type(decision) is downloads.Send:  # the common case first: a match tries each class in turn
        return _send(decision, request, token)
    match decision:
        case downloads.PreconditionFailed():
            return problem(412, "A precondition did not hold.", headers=DEFAULT_HEADER_FIELDS)
        case downloads.NotModified(headers=headers):
            return Response(status_code=304, headers=headers | DEFAULT_HEADER_FIELDS)
        case downloads.RangeNotSatisfiable(size=size):
            return problem(
                416,
                "No requested range lies within the file.",
                headers={"Content-Range": f"bytes */{size}"} | DEFAULT_HEADER_FIELDS,
            )
        case downloads.Accel(location=location, headers=headers, grant=grant):
            headers = headers | DEFAULT_HEADER_FIELDS | _grant_headers(request, grant, token)
            return Response(status_code=200, headers=headers | {"X-Accel-Redirect": location})
        case downloads.Redirect(url=url, headers=headers, grant=grant):
            status = 303 if request.method == "POST" else 302
            fields = {"Location": url, "Cache-Control": "private, no-store", "Referrer-Policy": "no-referrer"}
            return Response(
                status_code=status, headers=fields | DEFAULT_HEADER_FIELDS | _grant_headers(request, grant, token)
            )
        case downloads.Send():
            return _send(decision, request, token)


def _send(decision: downloads.Send, request: Request, token: str) -> Response:
    headers = decision.headers | DEFAULT_HEADER_FIELDS | _grant_headers(request, decision.grant, token)
    ranges = decision.ranges
    if decision.body is not None:
        return SmallFileResponse(decision.body, headers=headers, span=ranges[0] if ranges else None)
    if decision.blob is None:  # a HEAD
        return Response(status_code=200, headers=headers | {"Content-Length": str(decision.size)})
    local = decision.blob.local()
    if local is not None:
        return JudgedFileResponse(local, headers=headers, ranges=ranges)
    return StreamedBlobResponse(decision.blob, headers=headers, size=decision.size, span=ranges[0] if ranges else None)


def _grant_headers(request: Request, grant: downloads.NewGrant | None, token: str) -> dict[str, str]:
    if grant is None:
        return {}
    path = f"{request.scope.get('root_path', '').rstrip('/')}/d/{token}"
    secure = "; Secure" if request.scope.get("scheme") == "https" else ""  # not request.url: it parses the URL
    max_age = int(grant.ttl / timedelta(seconds=1))
    cookie = f"{GRANT_COOKIE}={grant.token}; Path={path}; Max-Age={max_age}; HttpOnly; SameSite=Lax{secure}"
    return {"Lapse-Grant": grant.token, "Set-Cookie": cookie}
