"""/api/v1/links and /api/v1/files/{id}/links: mint, list, read, change, revoke."""

from typing import Annotated

from fastapi import APIRouter, Query, Request

from lapse.api.deps import OwnerDep, RuntimeDep, SessionDep, json_body, public_base_url, read_json
from lapse.api.problems import responses
from lapse.db.base import utc_now
from lapse.db.models import ApiKey
from lapse.links import service as links_service
from lapse.links.schemas import LinkCreate, LinkList, LinkRead, LinkUpdate
from lapse.pagination import DEFAULT_LIMIT, MAX_LIMIT, encode_cursor
from lapse.runtime import Runtime

router = APIRouter(prefix="/api/v1", tags=["links"])
# What `_LinkTerms._one_expiry` enforces, for the documented schema: not both expiries at once (null counts as absent).
ONE_EXPIRY = {
    "not": {
        "required": ["expires_in", "expires_at"],
        "properties": {"expires_in": {"type": "integer"}, "expires_at": {"type": "string"}},
    }
}


@router.post(
    "/files/{file_id}/links",
    status_code=201,
    responses=responses(400, 401, 404, 413, 422, 503),
    openapi_extra=json_body(LinkCreate, **ONE_EXPIRY),
)
async def create_link(file_id: str, request: Request, owner: OwnerDep, runtime: RuntimeDep) -> LinkRead:
    """Mint a link. Its `url` is in this answer only: the server keeps just a hash of the token."""
    data = await read_json(request, LinkCreate)  # only now, the key checked
    return await mint_link(request, runtime, owner=owner, file_id=file_id, data=data)


async def mint_link(request: Request, runtime: Runtime, *, owner: ApiKey, file_id: str, data: LinkCreate) -> LinkRead:
    """The route's work, also done by api.fast_link in front of the framework."""
    now = utc_now()
    new, token = await links_service.new_link(data, policy=runtime.expiry, secret=runtime.secret, now=now)
    link = await runtime.minter.mint(owner=owner, file_id=file_id, new=new, now=now)
    return links_service.describe(link, now=now, base_url=public_base_url(request, runtime), token=token)


@router.get("/links", responses=responses(400, 401, 404, 422, 503))
async def list_links(
    owner: OwnerDep,
    session: SessionDep,
    file_id: str | None = None,
    cursor: str | None = None,
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = DEFAULT_LIMIT,
) -> LinkList:
    links = await links_service.list_links(session, owner=owner, file_id=file_id, cursor=cursor, limit=limit)
    page = links[:limit]
    next_cursor = encode_cursor(page[-1].created_at, page[-1].id) if len(links) > limit else None
    now = utc_now()
    return LinkList(items=[links_service.describe(link, now=now) for link in page], next_cursor=next_cursor)


@router.get("/links/{link_id}", responses=responses(401, 404, 503))
async def read_link(link_id: str, owner: OwnerDep, session: SessionDep) -> LinkRead:
    link = await links_service.get_link(session, owner=owner, link_id=link_id)
    return links_service.describe(link, now=utc_now())


@router.patch(
    "/links/{link_id}",
    responses=responses(400, 401, 404, 410, 413, 422, 503),
    openapi_extra=json_body(LinkUpdate, **ONE_EXPIRY),
)
async def update_link(
    link_id: str, request: Request, owner: OwnerDep, session: SessionDep, runtime: RuntimeDep
) -> LinkRead:
    """Extend or shorten the expiry (capped at the server maximum), raise or lower the download limit."""
    data = await read_json(request, LinkUpdate)  # only now, the key checked
    now = utc_now()
    link = await links_service.update_link(
        session, owner=owner, link_id=link_id, data=data, policy=runtime.expiry, now=now
    )
    return links_service.describe(link, now=now)


@router.delete("/links/{link_id}", responses=responses(401, 404, 503))
async def revoke_link(link_id: str, owner: OwnerDep, session: SessionDep) -> LinkRead:
    """Revoke at once: the next request on the link answers 410, and grants stop working too."""
    now = utc_now()
    link = await links_service.revoke_link(session, owner=owner, link_id=link_id, now=now)
    return links_service.describe(link, now=now)
