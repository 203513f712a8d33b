"""GET / HEAD / POST /d/{token}: the download itself (DESIGN §3).

Order matters, and every step before `redeem` is free: resolve (404/410) → prefetch refusal → password (401/429)
→ preconditions and Range (304/412/416) → HEAD → redeem and commit → send bytes with a grant.
"""

import base64
import binascii
import json
import os
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import anyio.to_thread
from fastapi import APIRouter, Request, Response
from starlette.datastructures import Headers, MutableHeaders
from starlette.responses import FileResponse
from starlette.types import Receive, Scope
from starlette.types import Send as ASGISend

from lapse.api import serving
from lapse.api.deps import get_runtime
from lapse.api.problems import problem, responses
from lapse.db.base import utc_now
from lapse.errors import InvalidInput, Unavailable
from lapse.links import redemption
from lapse.links.redemption import Target

router = APIRouter(tags=["download"])

GRANT_COOKIE = "lapse_grant"
GRANT_HEADER = "lapse-grant"
MAX_PASSWORD_BODY = 8 * 1024
SMALL_FILE = 64 * 1024  # read with the stat and sent in one message
CHUNK = 512 * 1024  # bigger files: a thread hop per 512 KiB, not per 64 KiB (CPU/GiB ÷ 4; RSS flat)
DOWNLOAD_ERRORS = responses(401, 404, 405, 410, 412, 416, 429, 503)


def _presented_grant(request: Request) -> str | None:
    return request.headers.get(GRANT_HEADER) or request.cookies.get(GRANT_COOKIE)


def _basic_password(request: Request) -> str | None:
    """`curl -u :secret` works too: the password travels in a header, never in the URL."""
    scheme, _, credentials = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        return base64.b64decode(credentials.strip(), validate=True).decode().partition(":")[2] or None
    except (binascii.Error, UnicodeDecodeError):
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
            return value if isinstance(value, str) else None
        return parse_qs(body.decode(), max_num_fields=8).get("password", [None])[0]
    except (ValueError, AttributeError, UnicodeDecodeError) as exc:
        raise InvalidInput("Send the password as a form field or JSON `password`.") from exc


def _is_prefetch(headers: Headers) -> bool:
    purpose = f"{headers.get('sec-purpose', '')},{headers.get('purpose', '')},{headers.get('x-purpose', '')}"
    return "prefetch" in purpose.lower() or "preview" in purpose.lower()


class JudgedFileResponse(FileResponse):
    """FileResponse over a scope whose Range and If-Range we already judged (see `serving`), so it sends exactly
    the ranges we decided; a password POST is answered as the GET it stands for.

    A small file comes with its bytes already read (`body`, from the same thread hop as the stat): it is sent as
    one message, without FileResponse's open / read / close hops and its disconnect-watching task group, which
    cost more than the rest of a 1 KiB download together. Big files stream in `CHUNK` pieces, one hop each.
    """

    chunk_size = CHUNK

    def __init__(
        self,
        path: Path,
        *,
        headers: dict[str, str],
        stat: os.stat_result,
        range_header: str | None,
        method: str,
        body: bytes | None = None,
    ) -> None:
        super().__init__(path, headers=headers, media_type=headers["Content-Type"], stat_result=stat)
        self.judged = {"range": range_header, "if_range": None}
        self.method = method
        self.preloaded = body

    async def __call__(self, scope: Scope, receive: Receive, send: ASGISend) -> None:
        span = self._preloaded_span()
        if self.preloaded is not None and span is not None and self.method == "GET":
            await self._send_preloaded(send, self.preloaded, *span)
            return
        scope = serving.scope_with_headers(scope, **self.judged)
        await super().__call__({**scope, "method": self.method}, receive, send)

    def _preloaded_span(self) -> tuple[int, int] | None:
        """The one byte span to send (the whole file, or its single judged range); None for several ranges."""
        spec = self.judged["range"]
        if spec is None:
            return 0, int(self.headers["content-length"])
        ranges = spec.removeprefix("bytes=").split(",")
        if len(ranges) != 1:
            return None
        first, _, last = ranges[0].partition("-")
        return int(first), int(last) + 1

    async def _send_preloaded(self, send: ASGISend, body: bytes, start: int, end: int) -> None:
        status, headers = 200, self.raw_headers
        if self.judged["range"] is not None:
            partial = MutableHeaders(raw=list(self.raw_headers))
            partial["content-range"] = f"bytes {start}-{end - 1}/{len(body)}"
            partial["content-length"] = str(end - start)
            status, headers = 206, partial.raw
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body[start:end], "more_body": False})


def _stat_and_read_small(path: Path) -> tuple[os.stat_result, bytes | None]:
    """The file's stat and, when it is small, its bytes: one thread hop for both, from one open file."""
    with path.open("rb") as file:
        stat = os.fstat(file.fileno())
        if stat.st_size > SMALL_FILE:
            return stat, None
        body = file.read(stat.st_size + 1)
    return (stat, body) if len(body) == stat.st_size else (stat, None)  # changed under us: stream it instead


DOWNLOAD_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {"description": "The file", "content": {"application/octet-stream": {}}},
    206: {"description": "Part of the file"},
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
    # No dependencies on this route: FastAPI's per-request dependency solving was a sixth of its CPU.
    runtime = get_runtime(request)
    now = utc_now()
    method = request.method
    # The lean path (links.redeemer): no ORM session on this route, one thread hop per statement.
    target = await redemption.resolve_with(
        runtime.redeemer,
        secret=runtime.secret,
        signer=runtime.grants,
        token=token,
        grant=_presented_grant(request),
        now=now,
    )
    if method == "POST" and target.link.password_hash is None:
        return problem(405, "This link takes GET and HEAD.", headers={"Allow": "GET, HEAD"})
    if _is_prefetch(request.headers):
        return problem(403, "Prefetches are refused so that they never spend a download.")
    password = await _posted_password(request) if method == "POST" else _basic_password(request)
    client = request.client.host if request.client else "unknown"
    await redemption.check_password(target=target, password=password, limiter=runtime.limiter, client=client)

    path = runtime.storage.local_path(target.file.storage_key)
    if path is None:
        raise Unavailable("This storage cannot serve files directly.")
    try:
        stat, small_body = await anyio.to_thread.run_sync(_stat_and_read_small, path)
    except OSError as exc:  # a row without bytes: refuse before counting (fail closed)
        raise Unavailable("The file's bytes are not reachable right now.") from exc

    rep = serving.Representation(
        etag=f'"{target.file.sha256}"', last_modified=target.file.created_at, size=stat.st_size
    )
    headers = serving.representation_headers(rep, filename=target.file.name, content_type=target.file.content_type)
    # A POST answers like a GET; preconditions and Range are judged for the GET it stands for.
    decision = serving.evaluate("GET" if method == "POST" else method, request.headers, rep)
    match decision:
        case serving.PreconditionFailed():
            return problem(412, "A precondition did not hold.")
        case serving.NotModified():
            keep = ("ETag", "Last-Modified", "Cache-Control", *serving.SAFE_HEADERS)
            return Response(status_code=304, headers={k: v for k, v in headers.items() if k in keep})
        case serving.RangeNotSatisfiable():
            return problem(
                416,
                "No requested range lies within the file.",
                headers={"Content-Range": f"bytes */{rep.size}"},
            )
    if not isinstance(decision, serving.Send):  # the match above is exhaustive; this keeps mypy honest
        raise TypeError(decision)

    if method == "HEAD":
        headers |= _link_status_headers(target)
    elif not target.granted:
        await redemption.redeem_with(runtime.redeemer, target=target, now=now)  # committed: counted before any byte
        headers |= _grant_headers(
            request,
            runtime.grants.sign(target.link.id, now + runtime.settings.grant_ttl),
            token,
            runtime.settings.grant_ttl,
        )

    # HEAD gets no Range (RFC 9110 §14.2); POST is answered as GET so that the body is sent.
    return JudgedFileResponse(
        path,
        headers=headers,
        stat=stat,
        range_header=serving.range_header(decision.ranges) if decision.ranges else None,
        method="HEAD" if method == "HEAD" else "GET",
        body=small_body,
    )


def _link_status_headers(target: Target) -> dict[str, str]:
    link = target.link
    remaining = "unlimited" if link.max_downloads is None else str(max(link.max_downloads - link.downloads, 0))
    return {"Lapse-Downloads-Remaining": remaining, "Lapse-Expires-At": link.expires_at.isoformat()}


def _grant_headers(request: Request, grant: str, token: str, ttl: timedelta) -> dict[str, str]:
    path = f"{request.scope.get('root_path', '').rstrip('/')}/d/{token}"
    secure = "; Secure" if request.url.scheme == "https" else ""
    cookie = f"{GRANT_COOKIE}={grant}; Path={path}; Max-Age={int(ttl.total_seconds())}; HttpOnly; SameSite=Lax{secure}"
    return {"Lapse-Grant": grant, "Set-Cookie": cookie}
