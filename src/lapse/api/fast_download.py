"""GET and HEAD of `/d/{token}` answered in front of the framework: the one route where its cost shows.

A 1 KiB download spent half of its CPU in FastAPI's layers — the middleware stack, the routing (a regex per route
until one matches), dependency solving, exception handling — none of which the common case needs. `LapseApp`
(app.py) asks `answer` first; it does what those layers would have done for this route (trusted proxy headers;
default response headers come with `download._send`; an unexpected error is logged and answered 500 as
problem+json) and hands the request to `download.serve_common_case`. When that declines (passwords, prefetches,
304/412/416, every error) or the request is anything else, `answer` returns False having counted nothing, and
the app runs its whole stack as for any request.
"""

import logging
from collections.abc import Awaitable

from starlette.requests import Request
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from lapse.api.download import serve_common_case
from lapse.api.problems import failed
from lapse.middleware import TrustedProxies, app_path
from lapse.tokens import looks_like_token

logger = logging.getLogger("lapse")

PREFIX = "/d/"


async def respond(work: Awaitable[Response | None]) -> Response | None:
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
    response = await respond(serve_common_case(Request(scope, receive), token))
    if response is None:
        return False
    await response(scope, receive, send)
    return True
