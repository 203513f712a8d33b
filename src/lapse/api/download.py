"""GET / HEAD / POST /d/{token}: the download itself (docs/api.md, Downloads).

Order matters, and every step before `redeem` is free: resolve (404/410) → prefetch refusal → password (401/429)
→ preconditions and Range (304/412/416) → HEAD → redeem and commit → send bytes with a grant.
"""

import base64
import json
import os
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, BinaryIO
from urllib.parse import parse_qs

from fastapi import APIRouter, Request, Response
from starlette.datastructures import Headers

from lapse.api import accel, serving
from lapse.api.deps import get_runtime
from lapse.api.file_responses import JudgedFileResponse, SmallFileResponse
from lapse.api.problems import problem, responses
from lapse.db.base import utc_now
from lapse.errors import InvalidInput, LapseError, Unavailable
from lapse.links import redemption
from lapse.links.recent import RecentLinks
from lapse.links.redemption import Target
from lapse.middleware import DEFAULT_HEADER_FIELDS
from lapse.runtime import Runtime
from lapse.storage.small_cache import Opened
from lapse.tokens import hash_secret

router = APIRouter(tags=["download"])

GRANT_COOKIE = "lapse_grant"
GRANT_HEADER = "lapse-grant"
MAX_PASSWORD_BODY = 8 * 1024
SMALL_FILE = 64 * 1024  # read with the stat and sent in one message
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


def _is_prefetch(headers: Headers) -> bool:
    purpose = f"{headers.get('sec-purpose', '')},{headers.get('purpose', '')},{headers.get('x-purpose', '')}"
    return "prefetch" in purpose.lower() or "preview" in purpose.lower()


def _stat_and_read_small(path: Path) -> Opened:
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
    # Most GETs and HEADs never get here: `serve_common_case` answers them in front of the framework's routing
    # (api.fast_download). This route answers the rest: passwords, prefetches, conditional answers and errors.
    runtime = get_runtime(request)
    now = utc_now()
    method = request.method
    target = await _resolve(request, runtime, token, now)
    if method == "POST" and target.link.password_hash is None:
        return problem(405, "This link takes GET and HEAD.", headers={"Allow": "GET, HEAD"})
    if _is_prefetch(request.headers):
        return problem(403, "Prefetches are refused so that they never spend a download.")
    password = await _posted_password(request) if method == "POST" else _basic_password(request)
    client = request.client.host if request.client else "unknown"
    await redemption.check_password(target=target, password=password, limiter=runtime.limiter, client=client)

    try:
        return await _judge_and_send(request, runtime, target, token=token, now=now)
    except Unavailable:
        # The bytes could not be opened. When that is because the file was deleted since its link was read (a
        # DELETE racing this download), the link answers 410 now, as it will on the next try; else it stays 503.
        await _resolve(request, runtime, token, now)
        raise


async def _judge_and_send(request: Request, runtime: Runtime, target: Target, *, token: str, now: datetime) -> Response:
    """The route's answer for a link it may serve: judged against the file's preconditions and Range, then sent."""
    opened = await _open(runtime, target)
    # A POST answers like a GET; preconditions and Range are judged for the GET it stands for.
    method = request.method
    decision = serving.evaluate("GET" if method == "POST" else method, request.headers, opened.rep)
    match decision:
        case serving.PreconditionFailed():
            return problem(412, "A precondition did not hold.")
        case serving.NotModified() if method == "POST":  # 304 is for GET and HEAD only (RFC 9110 §13.1.2)
            return problem(412, "A precondition did not hold.")
        case serving.NotModified():
            keep = ("ETag", "Last-Modified", "Cache-Control", *serving.SAFE_HEADERS)
            return Response(status_code=304, headers={k: v for k, v in opened.headers.items() if k in keep})
        case serving.RangeNotSatisfiable():
            return problem(
                416,
                "No requested range lies within the file.",
                headers={"Content-Range": f"bytes */{opened.rep.size}"},
            )
    if not isinstance(decision, serving.Send):  # the match above is exhaustive; this keeps mypy honest
        raise TypeError(decision)
    return await _send(request, runtime, target, opened, decision, token=token, now=now)


async def serve_common_case(request: Request, token: str) -> Response | None:
    """A GET or HEAD of a live link without a password, whose preconditions let it be sent: answered here with the
    same steps as `download`, without the framework's routing, dependencies and exception layers (a third of a
    small download's CPU). None for everything else, which `download` then answers from the start: nothing has
    been counted when this returns None (a refused redemption counts nothing either).
    """
    if _is_prefetch(request.headers) or _basic_password(request) is not None:
        return None
    runtime = get_runtime(request)
    now = utc_now()
    recent = runtime.recent_links if request.method == "GET" else None  # a GET is counted unless granted
    try:
        target = await _resolve(request, runtime, token, now, recent=recent)
        if target.link.password_hash is not None and not target.granted:
            return None
        opened = await _open(runtime, target)
        decision = serving.evaluate(request.method, request.headers, opened.rep)
        if not isinstance(decision, serving.Send):
            return None
        return await _send(request, runtime, target, opened, decision, token=token, now=now)
    except LapseError:
        # Refused (the link changed since it was remembered, say): the route answers from a fresh read.
        runtime.recent_links.forget(hash_secret(runtime.secret, token))
        return None


async def _resolve(
    request: Request, runtime: Runtime, token: str, now: datetime, *, recent: RecentLinks | None = None
) -> Target:
    # The lean path (links.redeemer): no ORM session on downloads, one thread hop per statement.
    return await redemption.resolve(
        runtime.redeemer.find,
        secret=runtime.secret,
        signer=runtime.grants,
        token=token,
        grant=_presented_grant(request),
        now=now,
        recent=recent,
    )


@dataclass(frozen=True, slots=True)
class _Opened:
    path: Path
    stat: os.stat_result
    small_body: bytes | None
    rep: serving.Representation
    headers: dict[str, str]


async def _open(runtime: Runtime, target: Target) -> _Opened:
    key = target.file.storage_key
    small_body: bytes | None
    kept = runtime.small_files.get(key)
    if kept is not None:
        path, stat, small_body = kept
    else:
        local = runtime.storage.local_path(key)
        if local is None:
            raise Unavailable("This storage cannot serve files directly.")
        path = local
        try:
            opened = await runtime.file_io.run(lambda: _stat_and_read_small(local))
        except OSError as exc:  # a row without bytes: refuse before counting (fail closed)
            raise Unavailable("The file's bytes are not reachable right now.") from exc
        runtime.small_files.keep(key, path, opened)
        stat, small_body = opened
    rep = serving.Representation(
        etag=f'"{target.file.sha256}"', last_modified=target.file.created_at, size=stat.st_size
    )
    headers = serving.representation_headers(rep, filename=target.file.name, content_type=target.file.content_type)
    return _Opened(path=path, stat=stat, small_body=small_body, rep=rep, headers=headers)


async def _send(
    request: Request,
    runtime: Runtime,
    target: Target,
    opened: _Opened,
    decision: serving.Send,
    *,
    token: str,
    now: datetime,
) -> Response:
    """HEAD: the headers and the link's state. GET (and a password POST, answered as the GET it stands for):
    spend one download unless a grant covers it — committed before any byte — then the bytes with a grant."""
    headers = opened.headers | DEFAULT_HEADER_FIELDS  # the fast path answers without DefaultHeadersMiddleware
    ranges = decision.ranges
    if request.method == "HEAD":  # HEAD gets no Range (RFC 9110 §14.2)
        return _bytes_response(opened, headers | _link_status_headers(target), ranges, head=True, file=None)
    # Opened before counting: a download is never spent on bytes that cannot be read (fail closed), and the open
    # file is what gets sent, even if the blob is unlinked meanwhile.
    file = None if _body_in_memory(opened, ranges) is not None else await _open_blob(runtime, opened.path)
    try:
        if not target.granted:
            await redemption.redeem_with(runtime.redeemer, target=target, now=now)
            ttl = runtime.settings.grant_ttl
            headers |= _grant_headers(request, runtime.grants.sign(target.link.id, now + ttl), token, ttl)
        if runtime.settings.delivery == "accel":  # counted above: nginx only sends the bytes
            redirect = accel.redirect(
                request.headers,
                ranges,
                prefix=runtime.settings.accel_prefix,
                storage=runtime.storage,
                path=opened.path,
                headers=headers,
            )
            if redirect is not None:
                return redirect
        response = _bytes_response(opened, headers, ranges, head=False, file=file)
        file = None  # the response owns it now
        return response
    finally:
        if file is not None:
            file.close()


def _body_in_memory(opened: _Opened, ranges: list[tuple[int, int]] | None) -> bytes | None:
    """The small file's bytes when they answer the request in one message (whole, or one range), else None."""
    return opened.small_body if ranges is None or len(ranges) == 1 else None


async def _open_blob(runtime: Runtime, path: Path) -> BinaryIO:
    try:
        return await runtime.file_io.run(lambda: path.open("rb"))  # the response closes it
    except OSError as exc:
        raise Unavailable("The file's bytes are not reachable right now.") from exc


def _bytes_response(
    opened: _Opened,
    headers: dict[str, str],
    ranges: list[tuple[int, int]] | None,
    *,
    head: bool,
    file: BinaryIO | None,
) -> Response:
    body = _body_in_memory(opened, ranges)
    if body is not None:
        return SmallFileResponse(body, headers=headers, span=ranges[0] if ranges else None, head=head)
    return JudgedFileResponse(opened.path, file, headers=headers, stat=opened.stat, ranges=ranges)


def _link_status_headers(target: Target) -> dict[str, str]:
    link = target.link
    remaining = "unlimited" if link.max_downloads is None else str(max(link.max_downloads - link.downloads, 0))
    return {"Lapse-Downloads-Remaining": remaining, "Lapse-Expires-At": link.expires_at.isoformat()}


def _grant_headers(request: Request, grant: str, token: str, ttl: timedelta) -> dict[str, str]:
    path = f"{request.scope.get('root_path', '').rstrip('/')}/d/{token}"
    secure = "; Secure" if request.scope.get("scheme") == "https" else ""  # not request.url: it parses the URL
    cookie = f"{GRANT_COOKIE}={grant}; Path={path}; Max-Age={int(ttl.total_seconds())}; HttpOnly; SameSite=Lax{secure}"
    return {"Lapse-Grant": grant, "Set-Cookie": cookie}
