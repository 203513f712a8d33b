"""The browser's session: a signed cookie that names an API key by id — never the key itself.

Cookie value: `<sid>.<key id>.<issued unix seconds>.<signature>`, signed by lapse.tokens.purpose_signer for this
purpose alone, so it cannot be forged or altered, a grant or CSRF token is never taken for one, and every replica
with the same secret accepts it. The key is loaded again on every request, so revoking it ends its sessions at
once. `sid` is random per sign-in: the CSRF token is derived from it, and a new sign-in never reuses an old
session's (no session fixation).
"""

import re
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Annotated

from fastapi import Depends, Request, Response

from lapse.api.deps import RuntimeDep, SessionDep
from lapse.db.base import utc_now
from lapse.db.models import ApiKey
from lapse.errors import Forbidden, Unauthorized
from lapse.keys import service as keys_service
from lapse.tokens import purpose_signer
from lapse.web import csrf
from lapse.web.render import root_path

SESSION_COOKIE = "lapse_session"
# A sign-in form's own CSRF binding, before any session exists; a separate cookie, so that showing the sign-in
# page never overwrites a live session (SameSite=Strict hides it on cross-site navigations).
SIGN_IN_COOKIE = "lapse_sign_in"
SESSION_TTL = timedelta(hours=12)
SIGN_IN_TTL = timedelta(hours=1)


@dataclass(frozen=True, slots=True)
class WebSession:
    sid: str
    key_id: str
    issued_at: int


_SECONDS = re.compile(r"[0-9]{1,12}")  # ASCII digits: str.isdigit() also takes "²", which int() refuses


def _issued_in_time(issued: str, ttl: timedelta, now: datetime) -> bool:
    return _SECONDS.fullmatch(issued) is not None and 0 <= now.timestamp() - int(issued) < ttl.total_seconds()


def read_session(request: Request, server_secret: bytes, now: datetime) -> WebSession | None:
    value = request.cookies.get(SESSION_COOKIE)
    parts = purpose_signer(server_secret, "session").unsign(value, fields=3) if value else None
    if parts is None or not _issued_in_time(parts[2], SESSION_TTL, now):
        return None
    return WebSession(sid=parts[0], key_id=parts[1], issued_at=int(parts[2]))


def _cookie_path(request: Request) -> str:
    return root_path(request) + "/"


def _set(response: Response, request: Request, name: str, value: str, *, ttl: timedelta, path: str) -> None:
    response.set_cookie(
        name,
        value,
        max_age=int(ttl.total_seconds()),
        path=path,
        secure=request.url.scheme == "https",
        httponly=True,
        samesite="strict",
    )


def start_session(response: Response, request: Request, server_secret: bytes, key: ApiKey, now: datetime) -> None:
    value = purpose_signer(server_secret, "session").sign(secrets.token_urlsafe(18), key.id, str(int(now.timestamp())))
    _set(response, request, SESSION_COOKIE, value, ttl=SESSION_TTL, path=_cookie_path(request))
    response.delete_cookie(SIGN_IN_COOKIE, path=sign_in_path(request))


def end_session(response: Response, request: Request) -> None:
    response.delete_cookie(SESSION_COOKIE, path=_cookie_path(request), httponly=True, samesite="strict")


# --- the sign-in form's CSRF binding -------------------------------------------------------------------------------
def sign_in_path(request: Request) -> str:
    return root_path(request) + "/ui/sign-in"


def sign_in_nonce(request: Request, server_secret: bytes, now: datetime) -> str | None:
    value = request.cookies.get(SIGN_IN_COOKIE)
    parts = purpose_signer(server_secret, "sign-in").unsign(value, fields=2) if value else None
    if parts is None or not _issued_in_time(parts[1], SIGN_IN_TTL, now):
        return None
    return parts[0]


def remember_sign_in_nonce(
    response: Response, request: Request, server_secret: bytes, nonce: str, now: datetime
) -> None:
    value = purpose_signer(server_secret, "sign-in").sign(nonce, str(int(now.timestamp())))
    _set(response, request, SIGN_IN_COOKIE, value, ttl=SIGN_IN_TTL, path=sign_in_path(request))


# --- dependencies ------------------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class WebUser:
    key: ApiKey
    session: WebSession
    csrf_token: str


async def get_web_user(request: Request, runtime: RuntimeDep, session: SessionDep) -> WebUser:
    web = read_session(request, runtime.secret, utc_now())
    if web is None:
        raise Unauthorized("Sign in first.")
    key = await keys_service.get_active_key(session, key_id=web.key_id)
    # End the read at once (as the API's key check does): an upload then streams with no transaction open,
    # holding neither SQLite's write lock nor a PostgreSQL snapshot.
    await session.commit()
    return WebUser(key=key, session=web, csrf_token=csrf.token_for(runtime.secret, web.sid))


WebUserDep = Annotated[WebUser, Depends(get_web_user)]


async def get_admin_user(user: WebUserDep) -> WebUser:
    if not user.key.is_admin:
        raise Forbidden("Only admin keys manage API keys.")
    return user


AdminUserDep = Annotated[WebUser, Depends(get_admin_user)]


@dataclass(frozen=True, slots=True)
class WebForm:
    """A signed-in user's POSTed form, its origin and CSRF token already checked."""

    user: WebUser
    fields: dict[str, str]

    def get(self, name: str) -> str:
        return self.fields.get(name, "").strip()


async def _checked_form(request: Request, user: WebUser, runtime: RuntimeDep) -> WebForm:
    csrf.check_origin(request, public_url=runtime.settings.public_url)
    fields = await csrf.read_form(request)
    csrf.verify_token(runtime.secret, user.session.sid, fields.get(csrf.CSRF_FIELD))
    return WebForm(user=user, fields=fields)


async def get_form(request: Request, user: WebUserDep, runtime: RuntimeDep) -> WebForm:
    return await _checked_form(request, user, runtime)


async def get_admin_form(request: Request, user: AdminUserDep, runtime: RuntimeDep) -> WebForm:
    return await _checked_form(request, user, runtime)


FormDep = Annotated[WebForm, Depends(get_form)]
AdminFormDep = Annotated[WebForm, Depends(get_admin_form)]


async def get_xhr_user(request: Request, user: WebUserDep, runtime: RuntimeDep) -> WebUser:
    """For fetch/XHR from our own page (uploads): the token travels in a header, the body stays a stream."""
    csrf.check_origin(request, public_url=runtime.settings.public_url)
    csrf.verify_token(runtime.secret, user.session.sid, request.headers.get(csrf.CSRF_HEADER))
    return user


XhrUserDep = Annotated[WebUser, Depends(get_xhr_user)]
