"""GET and HEAD of `/d/{token}` answered in front of the framework: the one route where its cost shows.

A 1 KiB download spent half of its CPU in FastAPI's layers — the middleware stack, the routing (a regex per route
until one matches), dependency solving, exception handling — none of which the common case needs. `LapseApp`
(app.py) asks `answer` first; it does what those layers would have done for this route (trusted proxy headers;
default response headers come with `download.respond`; an unexpected error is logged and answered 500 as
problem+json), asks links.download for the decision, as the route does, and sends the route's response for it.
Every refusal (a domain error) falls through instead: `answer` returns False having counted nothing, and the app
runs its whole stack, whose route answers from a fresh read — with the web's error pages where a browser asks.
"""

from collections.abc import Awaitable

from starlette.requests import Request
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from lapse.api.deps import get_runtime
from lapse.api.download import basic_password, download_request, respond
from lapse.api.problems import failed
from lapse.db.base import utc_now
from lapse.errors import LapseError
from lapse.middleware import TrustedProxies, app_path
from lapse.tokens import looks_like_token

PREFIX = "/d/"


async def guarded(work: Awaitable[Response | None]) -> Response | None:
    """`work`'s answer; for an exception on a path in front of the framework, what the framework's handlers do:
    503 + Retry-After when the database is out of reach, else a logged 500."""
    try:
        return await work
    except Exception as exc:
        return failed(exc)


def _token(scope: Scope) -> str | None:
    path = app_path(scope)
    if not path.startswith(PREFIX):
        return None
    token = path[len(PREFIX) :]
    return token if looks_like_token(token) else None


async def answer(scope: Scope, receive: Receive, send: Send, *, proxies: TrustedProxies) -> bool:
    """Answer a plain download and return True, or return False (nothing sent, nothing counted)."""
    if scope["type"] != "http" or scope["method"] not in ("GET", "HEAD"):
        return False
    scope = proxies.forwarded(scope)
    if (token := _token(scope)) is None:
        return False
    response = await guarded(_decide_and_respond(Request(scope, receive), token))
    if response is None:
        return False
    await response(scope, receive, send)
    return True


async def _decide_and_respond(request: Request, token: str) -> Response | None:
    facts = download_request(request, token)
    if facts.prefetch or basic_password(request) is not None:
        return None  # refused, or a password to check: the route's error pages and forms answer those
    service = get_runtime(request).downloads
    try:
        decision = await service.decide(facts, now=utc_now(), trust_recent=True)
    except LapseError:
        service.forget(token)  # it may have been refused from a stale memory: the route reads afresh
        return None
    return respond(decision, request, token)
