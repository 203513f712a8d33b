"""/api/v1/keys: admin only. A new key is shown once; only its HMAC is kept."""

from fastapi import APIRouter, Request

from lapse.api.deps import AdminDep, RuntimeDep, SessionDep, json_body, read_json
from lapse.api.problems import responses
from lapse.db.base import utc_now
from lapse.keys import service as keys_service
from lapse.keys.schemas import KeyCreate, KeyCreated, KeyList, KeyRead

router = APIRouter(prefix="/api/v1/keys", tags=["keys"])


@router.post("", status_code=201, responses=responses(401, 403, 413, 422, 503), openapi_extra=json_body(KeyCreate))
async def create_key(request: Request, _: AdminDep, session: SessionDep, runtime: RuntimeDep) -> KeyCreated:
    data = await read_json(request, KeyCreate)  # only now, the key checked
    key, raw = await keys_service.create_key(session, secret=runtime.secret, name=data.name, admin=data.admin)
    return KeyCreated.of(key, raw)


@router.get("", responses=responses(401, 403, 503))
async def list_keys(_: AdminDep, session: SessionDep) -> KeyList:
    return KeyList(items=[KeyRead.model_validate(k) for k in await keys_service.list_keys(session)])


@router.delete("/{key_id}", responses=responses(401, 403, 404, 503))
async def revoke_key(key_id: str, _: AdminDep, session: SessionDep) -> KeyRead:
    return KeyRead.model_validate(await keys_service.revoke_key(session, key_id=key_id, now=utc_now()))
