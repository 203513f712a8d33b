"""POST `/api/v1/files/{id}/links` answered in front of the framework, as api.fast_download does for downloads.

Minting a link is the API call scripts make in bulk (one link per recipient). With its SQL made lean
(links.minter), FastAPI's layers were half of what was left of its CPU: the middleware stack, routing, dependency
solving, body validation through the dependency machinery. Here the common case — a small JSON body that
`LinkCreate` accepts, no password, a valid key, a file it may link — runs `api.links.mint_link`, the route's own
work, directly. Anything else (a body too big or invalid, a password whose hashing dwarfs the framework anyway,
any refusal) is declined, with the body read so far handed back, and the app runs its whole stack, which answers
it as always. The key is checked before a byte of the body is read, as on the full path. Nothing is stored when
it declines: authentication only records a key's use, which the full path records the same way.
"""

import re

from pydantic import ValidationError
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import Message, Receive, Scope, Send

from lapse.api.deps import declared_length, get_runtime, presented_key, validate_json
from lapse.api.fast_download import guarded
from lapse.api.links import mint_link
from lapse.db.base import utc_now
from lapse.errors import LapseError
from lapse.links.schemas import LinkCreate
from lapse.middleware import API_HEADER_FIELDS, TrustedProxies, app_path

ROUTE = re.compile(r"/api/v1/files/([0-9a-f]{1,64})/links")  # file ids are tokens.new_id's hex
MAX_BODY = 16 * 1024  # a LinkCreate is a few hundred bytes; past this the framework decides


async def answer(scope: Scope, receive: Receive, send: Send, *, proxies: TrustedProxies) -> Receive | None:
    """Mint, answer 201 and return None; or return the `receive` the framework should go on with (the body read
    so far handed back first), nothing stored."""
    if scope["type"] != "http" or scope["method"] != "POST":
        return receive
    forwarded = proxies.forwarded(scope)
    if (route := ROUTE.fullmatch(app_path(forwarded))) is None:
        return receive
    request = Request(forwarded, receive)
    if request.headers.get("content-type", "").split(";")[0].strip().lower() != "application/json":
        return receive
    if (declared := declared_length(request)) is not None and declared > MAX_BODY:
        return receive  # the route refuses it (401 or 413) without reading it
    body = Body(receive)
    response = await guarded(_mint(request, route.group(1), body))
    if response is not None:
        await response(forwarded, receive, send)
        return None
    return body.replaying()


async def _mint(request: Request, file_id: str, body: "Body") -> Response | None:
    runtime = get_runtime(request)
    try:
        # The key first: no body is read for a caller nobody knows.
        owner = await runtime.keys.authenticate(presented_key(request), utc_now())
    except LapseError:
        return None
    if (read := await body.read(MAX_BODY)) is None:
        return None
    try:
        data = validate_json(LinkCreate, read)  # as the route reads it (deps.read_json)
    except ValidationError:
        return None
    if data.password is not None:
        return None
    try:
        link = await mint_link(request, runtime, owner=owner, file_id=file_id, data=data)
    except LapseError:
        return None
    return Response(link.model_dump_json(), status_code=201, media_type="application/json", headers=API_HEADER_FIELDS)


class Body:
    """The request body, read on demand, and given back to the framework if the fast path declines."""

    def __init__(self, receive: Receive) -> None:
        self._receive = receive
        self._chunks: list[bytes] = []
        self._size = 0
        self._complete = False
        self._read = False

    async def read(self, limit: int) -> bytes | None:
        """The whole body if it is at most `limit` bytes; None if it is longer (a little past `limit` is read)
        or the client went away."""
        self._read = True
        while self._size <= limit:
            message = await self._receive()
            if message["type"] != "http.request":  # the client went away: let the framework see that too
                return None
            self._chunks.append(message.get("body", b""))
            self._size += len(self._chunks[-1])
            if not message.get("more_body", False):
                self._complete = True
                return b"".join(self._chunks) if self._size <= limit else None
        return None

    def replaying(self) -> Receive:
        """`receive` with the bytes already read given back first."""
        if not self._read:
            return self._receive
        pending: list[Message] = [
            {"type": "http.request", "body": b"".join(self._chunks), "more_body": not self._complete}
        ]
        receive = self._receive

        async def replay() -> Message:
            return pending.pop() if pending else await receive()

        return replay
