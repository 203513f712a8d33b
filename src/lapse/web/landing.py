"""/s/{token}: the page a recipient opens. It only resolves the link — it never redeems — so link previews, mail
scanners and reloads cannot spend a one-time link; the Download button (a GET, or a password form POSTed to
/d/{token}) does that."""

from fastapi import APIRouter, Request, Response

from lapse.api.deps import RuntimeDep
from lapse.db.base import utc_now
from lapse.links.redemption import Target
from lapse.web.render import page

router = APIRouter(include_in_schema=False)


@router.get("/s/{token}")
async def landing(token: str, request: Request, runtime: RuntimeDep) -> Response:
    # grant=None: a recipient who already downloaded sees the link as everyone else does (e.g. used up).
    target = await runtime.downloads.resolve(token, grant=None, now=utc_now())
    return landing_page(request, token, target)


def landing_page(
    request: Request,
    token: str,
    target: Target,
    *,
    status: int = 200,
    error: str | None = None,
    headers: dict[str, str] | None = None,
) -> Response:
    link = target.link
    remaining = None if link.max_downloads is None else max(link.max_downloads - link.downloads, 0)
    return page(
        request,
        "landing.html",
        status=status,
        headers=headers,
        token=token,
        file=target.file,
        link=link,
        has_password=link.password_hash is not None,
        remaining=remaining,
        error=error,
    )
