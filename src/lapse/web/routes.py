"""The dashboard: files and their links, uploads, making and revoking links, deleting files.

Every action is a POST through `FormDep` (session, Origin and CSRF token checked) or, for uploads, `XhrUserDep`
(the token in a header, so the body can stream). Each route calls the same services as the API.
"""

from dataclasses import dataclass
from typing import Annotated

import segno
from fastapi import APIRouter, Query, Request, Response
from pydantic import ValidationError
from starlette.responses import JSONResponse, RedirectResponse

from lapse.api.deps import RuntimeDep, SessionDep, public_base_url
from lapse.api.files import MULTIPART_OVERHEAD
from lapse.api.multipart import MultipartFile
from lapse.db.base import utc_now
from lapse.db.models import File
from lapse.errors import InvalidInput, TooLarge
from lapse.files import service as files_service
from lapse.files.schemas import FileRead
from lapse.links import service as links_service
from lapse.links.schemas import LinkCreate, LinkRead
from lapse.pagination import encode_cursor
from lapse.web.render import page, root_path
from lapse.web.session import FormDep, WebUserDep, XhrUserDep

router = APIRouter(include_in_schema=False)

FILES_PER_PAGE = 25
LINKS_PER_FILE = 20
EXPIRY_PRESETS = {"10m": 600, "1h": 3600, "1d": 86400, "7d": 7 * 86400}
CUSTOM_UNITS = {"minutes": 60, "hours": 3600, "days": 86400}


@dataclass(frozen=True, slots=True)
class FileCard:
    file: File
    links: list[LinkRead]
    more_links: bool


@router.get("/")
async def dashboard(
    request: Request,
    user: WebUserDep,
    session: SessionDep,
    runtime: RuntimeDep,
    cursor: Annotated[str | None, Query()] = None,
) -> Response:
    files = await files_service.list_files(session, owner=user.key, cursor=cursor, limit=FILES_PER_PAGE)
    shown = files[:FILES_PER_PAGE]
    now = utc_now()
    newest = await links_service.newest_links_of_files(
        session, owner=user.key, files=shown, limit=LINKS_PER_FILE + 1
    )  # one query for the page, one more than shown to know whether there are more
    cards = []
    for file in shown:
        links = newest[file.id]
        described = [links_service.describe(link, now=now) for link in links[:LINKS_PER_FILE]]
        cards.append(FileCard(file=file, links=described, more_links=len(links) > LINKS_PER_FILE))
    next_cursor = encode_cursor(shown[-1].created_at, shown[-1].id) if len(files) > FILES_PER_PAGE else None
    return page(
        request,
        "dashboard.html",
        user=user,
        cards=cards,
        next_cursor=next_cursor,
        first_page=cursor is None,
        max_upload_size=runtime.settings.max_upload_size,
        presets=EXPIRY_PRESETS,
    )


@router.post("/ui/files")
async def upload(request: Request, user: XhrUserDep, session: SessionDep, runtime: RuntimeDep) -> Response:
    """The page's uploader (XHR, for its progress events): the API's streaming path, with session + CSRF header
    in place of a Bearer key."""
    max_size = runtime.settings.max_upload_size
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > max_size + MULTIPART_OVERHEAD:
        raise TooLarge(f"The upload is larger than the limit of {max_size} bytes.")
    form = await MultipartFile(request, max_body=max_size + MULTIPART_OVERHEAD).open()
    file = await files_service.upload(
        session,
        sessions=runtime.sessions,
        storage=runtime.storage,
        owner=user.key,
        filename=form.filename,
        content_type=form.content_type,
        chunks=form.chunks(),
        max_size=max_size,
    )
    return JSONResponse(FileRead.model_validate(file).model_dump(mode="json"), status_code=201)


@router.post("/ui/files/{file_id}/delete")
async def delete_file(
    file_id: str, request: Request, form: FormDep, session: SessionDep, runtime: RuntimeDep
) -> Response:
    storage_key = await files_service.delete_file(session, owner=form.user.key, file_id=file_id)
    await session.commit()  # row and tombstone, then bytes, as the API does
    await files_service.remove_bytes(runtime.sessions, runtime.storage, storage_key)
    return RedirectResponse(f"{root_path(request)}/", status_code=303)


def _whole_number(value: str, what: str) -> int | None:
    if not value:
        return None
    try:
        return int(value)
    except ValueError:
        raise InvalidInput(f"{what} must be a whole number.") from None


def link_terms(form: FormDep) -> LinkCreate:
    """The form's preset or custom expiry, limit, password and note, checked by the API's own schema."""
    expiry = form.get("expires") or "1h"
    if expiry == "custom":
        amount = _whole_number(form.get("custom_amount"), "The custom time")
        unit = CUSTOM_UNITS.get(form.get("custom_unit"))
        if amount is None or amount < 1 or unit is None:
            raise InvalidInput("Give the custom time as a whole number of minutes, hours or days.")
        expires_in = amount * unit
    elif expiry in EXPIRY_PRESETS:
        expires_in = EXPIRY_PRESETS[expiry]
    else:
        raise InvalidInput("Pick how long the link should work.")
    try:
        return LinkCreate(
            expires_in=expires_in,
            max_downloads=_whole_number(form.get("max_downloads"), "The download limit"),
            password=form.fields.get("password") or None,  # not stripped: spaces may be part of it
            note=form.get("note") or None,
        )
    except ValidationError as exc:
        first = exc.errors()[0]
        field = str(first["loc"][-1]).replace("_", " ") if first["loc"] else "form"
        raise InvalidInput(f"{field}: {first['msg']}") from None


def qr_code(url: str) -> str:
    """An SVG made on the server, as a data: URI for an <img>: an image cannot run script."""
    code = segno.make(url, error="m")
    uri: str = code.svg_data_uri(scale=6, border=2, dark="#111827", light="#ffffff")
    return uri


@router.post("/ui/files/{file_id}/links")
async def create_link(
    file_id: str, request: Request, form: FormDep, session: SessionDep, runtime: RuntimeDep
) -> Response:
    """Answers with a page, not a redirect: the token exists only in this answer (the server keeps its hash),
    so this is the one time its URLs and QR code can be shown."""
    now = utc_now()
    link, token = await links_service.create_link(
        session,
        owner=form.user.key,
        file_id=file_id,
        data=link_terms(form),
        policy=runtime.expiry,
        secret=runtime.secret,
        now=now,
    )
    file = await files_service.get_file(session, owner=form.user.key, file_id=file_id)
    base = public_base_url(request, runtime)
    share_url, download_url = f"{base}s/{token}", f"{base}d/{token}"
    return page(
        request,
        "link_created.html",
        status=201,
        user=form.user,
        file=file,
        link=links_service.describe(link, now=now),
        share_url=share_url,
        download_url=download_url,
        qr=qr_code(share_url),
    )


@router.post("/ui/links/{link_id}/revoke")
async def revoke_link(link_id: str, request: Request, form: FormDep, session: SessionDep) -> Response:
    link = await links_service.revoke_link(session, owner=form.user.key, link_id=link_id, now=utc_now())
    anchor = f"#file-{link.file_id}" if link.file_id else ""
    return RedirectResponse(f"{root_path(request)}/{anchor}", status_code=303)
