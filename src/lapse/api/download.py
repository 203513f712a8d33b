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
from starlette.datastructures import Headers
from starlette.responses import FileResponse
from starlette.types import Receive, Scope
from starlette.types import Send as ASGISend

from lapse.api import serving
from lapse.api.deps import RuntimeDep, SessionDep
from lapse.api.problems import problem, responses
from lapse.db.base import utc_now
from lapse.errors import InvalidInput, Unavailable
from lapse.links import redemption
from lapse.links.redemption import Target

router = APIRouter(tags=["download"])

GRANT_COOKIE = "lapse_grant"
GRANT_HEADER = "lapse-grant"
MAX_PASSWORD_BODY = 8 * 1024
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
    the ranges we decided; a password POST is answered as the GET it stands for."""

    def __init__(
        self,
        path: Path,
        *,
        headers: dict[str, str],
        stat: os.stat_result,
        range_header: str | None,
        method: str,
    ) -> None:
        super().__init__(path, headers=headers, media_type=headers["Content-Type"], stat_result=stat)
        self.judged = {"range": range_header, "if_range": None}
        self.method = method

    async def __call__(self, scope: Scope, receive: Receive, send: ASGISend) -> None:
        scope = serving.scope_with_headers(scope, **self.judged)
        await super().__call__({**scope, "method": self.method}, receive, send)


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
async def download(token: str, request: Request, session: SessionDep, runtime: RuntimeDep) -> Response:
    """Download. Each GET without a grant spends one download and returns a grant (cookie and `Lapse-Grant`
    header) that lets an interrupted transfer resume with Range requests for free. HEAD, 304, 416, errors and
    prefetches never spend one. For a password link, POST the form field `password` (or use Basic auth)."""
    now = utc_now()
    method = request.method
    target = await redemption.resolve(
        session,
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
        stat = await anyio.to_thread.run_sync(path.stat)
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
        await redemption.redeem(session, target=target, now=now)
        await session.commit()  # counted before the first byte leaves
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
