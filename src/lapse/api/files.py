"""/api/v1/files: upload (multipart or raw PUT), list, read, delete."""

from typing import Annotated

from fastapi import APIRouter, Path, Query, Request, Response
from fastapi.exceptions import RequestValidationError
from pydantic import AwareDatetime, ValidationError

from lapse.api.deps import OwnerDep, RuntimeDep, SessionDep, public_base_url
from lapse.api.multipart import MultipartFile
from lapse.api.problems import responses
from lapse.db.base import utc_now
from lapse.errors import TooLarge
from lapse.files import service as files_service
from lapse.files.schemas import FileList, FileRead, FileUploaded
from lapse.links import service as links_service
from lapse.links.schemas import LinkCreate
from lapse.pagination import DEFAULT_LIMIT, MAX_LIMIT, encode_cursor

router = APIRouter(prefix="/api/v1/files", tags=["files"])

# Room for the multipart boundaries and part headers around the file itself.
MULTIPART_OVERHEAD = 64 * 1024
UPLOAD_ERRORS = responses(400, 401, 413, 415, 422, 503, 507)
# The upload routes stream their bodies themselves (after the key is checked), so FastAPI sees no body parameter
# and would document none: these say what they take.
MULTIPART_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "properties": {"file": {"type": "string", "format": "binary"}},
                    "required": ["file"],
                }
            }
        },
    }
}
RAW_BODY = {
    "requestBody": {
        "required": True,
        "content": {"application/octet-stream": {"schema": {"type": "string", "format": "binary"}}},
    }
}
# The raw upload's name is one path segment: a `/` (encoded or not, the path is decoded before routing) makes it
# another path, so `PUT /api/v1/files/{id}/links` is never an upload named "links". Line breaks and the like may
# pass: `clean_filename` cleans them. The path template is the same as GET's and DELETE's (`{file_id}`): OpenAPI
# allows one template per path, and one Allow lists all three methods.
FILENAME = Path(
    alias="file_id",
    pattern="^[^/]+$",
    description="For PUT, the new file's name (one path segment), cleaned before use; not an id.",
)


def _reject_declared_oversize(request: Request, limit: int) -> None:
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise TooLarge(f"The upload is larger than the limit of {limit} bytes.")


@router.post("", status_code=201, responses=UPLOAD_ERRORS, openapi_extra=MULTIPART_BODY)
async def upload(request: Request, owner: OwnerDep, session: SessionDep, runtime: RuntimeDep) -> FileRead:
    """Upload one file as multipart/form-data (field `file`). The body is streamed, never buffered whole."""
    max_size = runtime.settings.max_upload_size
    _reject_declared_oversize(request, max_size + MULTIPART_OVERHEAD)
    form = await MultipartFile(request, max_body=max_size + MULTIPART_OVERHEAD).open()
    file = await files_service.upload(
        session,
        sessions=runtime.sessions,
        storage=runtime.storage,
        owner=owner,
        filename=form.filename,
        content_type=form.content_type,
        chunks=form.chunks(),
        max_size=max_size,
    )
    return FileRead.model_validate(file)


@router.put("/{file_id}", status_code=201, responses=UPLOAD_ERRORS, openapi_extra=RAW_BODY)
async def upload_raw(
    filename: Annotated[str, FILENAME],
    request: Request,
    owner: OwnerDep,
    session: SessionDep,
    runtime: RuntimeDep,
    expires_in: Annotated[int | None, Query(gt=0)] = None,
    expires_at: Annotated[AwareDatetime | None, Query()] = None,
    max_downloads: Annotated[int | None, Query(ge=1, le=2**31 - 1)] = None,
    note: Annotated[str | None, Query(max_length=1000)] = None,
) -> FileUploaded:
    """Upload the raw body (`curl -T file URL`). With `expires_in`, `expires_at` or `max_downloads` it also
    mints a link and answers with its `url`."""
    max_size = runtime.settings.max_upload_size
    _reject_declared_oversize(request, max_size)
    terms = _link_terms(expires_in=expires_in, expires_at=expires_at, max_downloads=max_downloads, note=note)
    file = await files_service.upload(
        session,
        sessions=runtime.sessions,
        storage=runtime.storage,
        owner=owner,
        filename=filename,
        content_type=request.headers.get("content-type"),
        chunks=request.stream(),
        max_size=max_size,
    )
    answer = FileUploaded.model_validate(file)
    if terms is not None:
        now = utc_now()
        link, token = await links_service.create_link(
            session,
            owner=owner,
            file_id=file.id,
            data=terms,
            policy=runtime.expiry,
            secret=runtime.secret,
            now=now,
        )
        answer.link = links_service.describe(link, now=now, base_url=public_base_url(request, runtime), token=token)
    return answer


def _link_terms(
    *, expires_in: int | None, expires_at: AwareDatetime | None, max_downloads: int | None, note: str | None
) -> LinkCreate | None:
    """The link a raw upload asks for, if any — judged before the body is read: terms that cannot make a link
    (both expiries, say) are a 422 before a byte is stored, not a failure after the whole upload."""
    if expires_in is None and expires_at is None and max_downloads is None:
        return None
    try:
        return LinkCreate(expires_in=expires_in, expires_at=expires_at, max_downloads=max_downloads, note=note)
    except ValidationError as exc:
        raise RequestValidationError(exc.errors()) from exc


@router.get("", responses=responses(400, 401, 422, 503))
async def list_files(
    owner: OwnerDep,
    session: SessionDep,
    cursor: str | None = None,
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = DEFAULT_LIMIT,
) -> FileList:
    files = await files_service.list_files(session, owner=owner, cursor=cursor, limit=limit)
    page = files[:limit]
    next_cursor = encode_cursor(page[-1].created_at, page[-1].id) if len(files) > limit else None
    return FileList(items=[FileRead.model_validate(f) for f in page], next_cursor=next_cursor)


@router.get("/{file_id}", responses=responses(401, 404, 503))
async def read_file(file_id: str, owner: OwnerDep, session: SessionDep) -> FileRead:
    return FileRead.model_validate(await files_service.get_file(session, owner=owner, file_id=file_id))


@router.delete("/{file_id}", status_code=204, responses=responses(401, 404, 503))
async def delete_file(file_id: str, owner: OwnerDep, session: SessionDep, runtime: RuntimeDep) -> Response:
    """Delete the file: its links answer 410 from now on, and its bytes are removed."""
    storage_key = await files_service.delete_file(session, owner=owner, file_id=file_id)
    await session.commit()  # row and tombstone first, then bytes: the sweeper finishes a delete a crash cut short
    await files_service.remove_bytes(runtime.sessions, runtime.storage, storage_key)
    return Response(status_code=204)
