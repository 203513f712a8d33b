"""Friendly HTML for domain errors, for browsers only.

`api/problems.py` asks `render_error` first for every domain error; it answers only for a request to a web page
or to /d/{token} whose Accept prefers text/html (a navigation), and None otherwise, so API clients — curl's
`*/*` included — keep problem+json. Statuses and `no-store` stay what the API would answer.
"""

from http import HTTPStatus

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from lapse import errors
from lapse.api.deps import get_runtime
from lapse.db.base import utc_now
from lapse.web.landing import landing_page
from lapse.web.render import FORM_CHALLENGE, page, prefers_html, root_path
from lapse.web.session import SESSION_COOKIE, end_session

DOWNLOAD_ROUTE = "/d/{token}"
LINK_ROUTES = ("/s/{token}", DOWNLOAD_ROUTE)

GONE_PAGES = {
    errors.GoneReason.EXPIRED: (
        "This link has expired",
        "It was set to stop working after a while, and that time has passed.",
    ),
    errors.GoneReason.EXHAUSTED: (
        "This link has been used up",
        "It allowed a limited number of downloads, and all of them have been used.",
    ),
    errors.GoneReason.REVOKED: (
        "This link was revoked",
        "The person who shared it switched it off.",
    ),
    errors.GoneReason.FILE_DELETED: (
        "The file was deleted",
        "The person who shared it removed the file, so the link no longer works.",
    ),
}


def _route_path(request: Request) -> str:
    route = request.scope.get("route")
    path: str = getattr(route, "path", "")
    return path


def _is_page_route(path: str) -> bool:
    return path == "/" or path.startswith(("/ui/", "/s/")) or path == DOWNLOAD_ROUTE


def _error(request: Request, status: int, title: str, message: str, *, gone: bool = False) -> Response:
    return page(request, "error.html", status=status, title=title, message=message, status_code=status, gone=gone)


async def render_error(request: Request, exc: errors.LapseError) -> Response | None:
    route = _route_path(request)
    if not _is_page_route(route) or not prefers_html(request):
        return None
    response = await _render(request, exc, route)
    if response is not None:
        response.headers["Vary"] = "Accept"  # the same URL answers problem+json to other clients
    return response


async def _render(request: Request, exc: errors.LapseError, route: str) -> Response | None:
    link_page = route in LINK_ROUTES
    match exc:
        case errors.Unauthorized():
            response = RedirectResponse(f"{root_path(request)}/ui/sign-in", status_code=303)
            # A cookie that came along is stale or its key revoked: drop it. One that did not come (SameSite=Strict
            # withholds it on a navigation from another site) may be perfectly good: leave it alone.
            if SESSION_COOKIE in request.cookies:
                end_session(response, request)
            return response
        case errors.NotFound() if link_page:
            return _error(request, 404, "Link not found", "Check that you have the whole link, exactly as it was sent.")
        case errors.Gone(reason=reason):
            title, message = GONE_PAGES[reason]
            return _error(request, 410, title, message, gone=True)
        case errors.PasswordRequired() | errors.RateLimited() if route == DOWNLOAD_ROUTE:
            return await _password_page(request, exc)
        case errors.NotFound() | errors.Forbidden() | errors.InvalidInput():
            status = {errors.NotFound: 404, errors.Forbidden: 403}.get(type(exc), 400)
            return _error(request, status, HTTPStatus(status).phrase, exc.message)
    return None


async def _password_page(request: Request, exc: errors.LapseError) -> Response | None:
    """The landing page again, with the password form and what went wrong: the browser stays on a page it
    can act on. The link is looked up anew: it may have died in between."""
    runtime = get_runtime(request)
    token = request.path_params["token"]
    try:
        target = await runtime.downloads.resolve(token, grant=None, now=utc_now())
    except (errors.NotFound, errors.Gone) as dead:  # it died in between
        return await render_error(request, dead)
    if isinstance(exc, errors.RateLimited):
        minutes = max(1, -(-exc.retry_after // 60))
        message = f"Too many wrong passwords. Try again in {minutes} minute{'s' if minutes > 1 else ''}."
        headers = {"Retry-After": str(exc.retry_after)}
        return landing_page(request, token, target, status=429, error=message, headers=headers)
    # A GET without a password is not a mistake; a POST with a wrong (or empty) one is.
    error = exc.message if request.method == "POST" else None
    return landing_page(request, token, target, status=401, error=error, headers={"WWW-Authenticate": FORM_CHALLENGE})
