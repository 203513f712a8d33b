"""/ui/keys: admins issue, list and revoke API keys, as `POST/GET/DELETE /api/v1/keys` do."""

from fastapi import APIRouter, Request, Response
from starlette.responses import RedirectResponse

from lapse.api.deps import RuntimeDep, SessionDep
from lapse.db.base import utc_now
from lapse.errors import InvalidInput
from lapse.keys import service as keys_service
from lapse.web.render import page, root_path
from lapse.web.session import AdminFormDep, AdminUserDep

router = APIRouter(include_in_schema=False)


@router.get("/ui/keys")
async def keys_page(request: Request, user: AdminUserDep, session: SessionDep) -> Response:
    return page(request, "keys.html", user=user, keys=await keys_service.list_keys(session))


@router.post("/ui/keys")
async def create_key(request: Request, form: AdminFormDep, session: SessionDep, runtime: RuntimeDep) -> Response:
    """Answers with the key itself, this once: only its HMAC is kept."""
    name = form.get("name")
    if not name or len(name) > 200:
        raise InvalidInput("Give the key a name of at most 200 characters.")
    key, raw = await keys_service.create_key(session, secret=runtime.secret, name=name, admin=form.get("admin") == "on")
    return page(request, "key_created.html", status=201, user=form.user, key=key, raw_key=raw)


@router.post("/ui/keys/{key_id}/revoke")
async def revoke_key(key_id: str, request: Request, form: AdminFormDep, session: SessionDep) -> Response:
    await keys_service.revoke_key(session, key_id=key_id, now=utc_now())
    return RedirectResponse(f"{root_path(request)}/ui/keys", status_code=303)
