"""Sign-in with an API key, and sign-out. The key is checked once, here; the session cookie then names it by id."""

import secrets

from fastapi import APIRouter, Request, Response
from starlette.responses import RedirectResponse

from lapse.api.deps import RuntimeDep, SessionDep
from lapse.db.base import utc_now
from lapse.errors import Forbidden, Unauthorized
from lapse.keys import service as keys_service
from lapse.web import csrf
from lapse.web.render import FORM_CHALLENGE, page, root_path
from lapse.web.session import (
    FormDep,
    end_session,
    read_session,
    remember_sign_in_nonce,
    sign_in_nonce,
    start_session,
)

router = APIRouter(include_in_schema=False)


def _sign_in_form(request: Request, runtime: RuntimeDep, *, status: int = 200, error: str | None = None) -> Response:
    """The form, its token bound to a fresh nonce that a cookie of its own carries back with the POST."""
    nonce = secrets.token_urlsafe(18)
    headers = {"WWW-Authenticate": FORM_CHALLENGE} if status == 401 else None
    token = csrf.token_for(runtime.secret, f"sign-in:{nonce}")
    response = page(request, "sign_in.html", status=status, headers=headers, error=error, csrf_token=token)
    remember_sign_in_nonce(response, request, runtime.secret, nonce, utc_now())
    return response


@router.get("/ui/sign-in")
async def sign_in_page(request: Request, runtime: RuntimeDep) -> Response:
    if read_session(request, runtime.secret, utc_now()) is not None:
        return RedirectResponse(f"{root_path(request)}/", status_code=303)
    return _sign_in_form(request, runtime)


@router.post("/ui/sign-in")
async def sign_in(request: Request, runtime: RuntimeDep, session: SessionDep) -> Response:
    csrf.check_origin(request, public_url=runtime.settings.public_url)
    fields = await csrf.read_form(request)
    now = utc_now()
    nonce = sign_in_nonce(request, runtime.secret, now)
    if nonce is None:  # no sign-in cookie, or a stale one: this form was not served to this browser lately
        raise Forbidden(csrf.REFUSED)
    csrf.verify_token(runtime.secret, f"sign-in:{nonce}", fields.get(csrf.CSRF_FIELD))
    try:
        key = await keys_service.authenticate(
            session, secret=runtime.secret, raw_key=fields.get("key", "").strip() or None, now=now
        )
    except Unauthorized:
        return _sign_in_form(request, runtime, status=401, error="That API key is not valid, or it was revoked.")
    response = RedirectResponse(f"{root_path(request)}/", status_code=303)
    start_session(response, request, runtime.secret, key, now)
    return response


@router.post("/ui/sign-out")
async def sign_out(request: Request, _: FormDep) -> Response:
    response = RedirectResponse(f"{root_path(request)}/ui/sign-in", status_code=303)
    end_session(response, request)
    return response
