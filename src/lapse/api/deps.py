"""Dependencies as `Annotated` aliases, chained: RuntimeDep → SessionDep, RuntimeDep → OwnerDep → AdminDep."""

import json
from collections.abc import AsyncIterator
from typing import Annotated, Any, TypeVar

from fastapi import Depends, Request, Security
from fastapi.exceptions import RequestValidationError
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel, ValidationError
from sqlalchemy.ext.asyncio import AsyncSession

from lapse.db.base import utc_now
from lapse.db.models import ApiKey
from lapse.errors import Forbidden, TooLarge
from lapse.runtime import Runtime

MAX_JSON_BODY = 64 * 1024  # the API's JSON bodies are a few hundred bytes; a note of 1000 characters fits many times
Model = TypeVar("Model", bound=BaseModel)


def get_runtime(request: Request) -> Runtime:
    runtime: Runtime = request.state.runtime
    return runtime


async def _runtime_dependency(request: Request) -> Runtime:
    # async although it never awaits: FastAPI runs a plain `def` dependency on a worker thread, a thread hop
    # on every request for one attribute read.
    return get_runtime(request)


RuntimeDep = Annotated[Runtime, Depends(_runtime_dependency)]


async def get_session(runtime: RuntimeDep) -> AsyncIterator[AsyncSession]:
    """One transaction per request, committed before the response starts: scope="function" runs this teardown
    when the endpoint returns, not after the body is sent, so no counted download is ever left uncommitted
    and no connection is held while bytes stream."""
    async with runtime.sessions() as session:
        try:
            yield session
        except BaseException:
            await session.rollback()
            raise
        await session.commit()


SessionDep = Annotated[AsyncSession, Depends(get_session, scope="function")]


def presented_key(request: Request) -> str | None:
    scheme, _, credentials = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() == "bearer" and credentials.strip():
        return credentials.strip()
    return request.headers.get("x-api-key")


# The two ways to present a key, as OpenAPI security schemes (either one will do). They only document: the key is
# read by `presented_key`, which the paths in front of the framework share.
BEARER = HTTPBearer(scheme_name="bearer", auto_error=False, description="`Authorization: Bearer <API key>`")
API_KEY = APIKeyHeader(name="X-API-Key", scheme_name="apiKey", auto_error=False, description="The API key itself.")


async def get_owner(
    request: Request,
    runtime: RuntimeDep,
    _bearer: Annotated[HTTPAuthorizationCredentials | None, Security(BEARER)],
    _api_key: Annotated[str | None, Security(API_KEY)],
) -> ApiKey:
    """Authenticate in a short transaction of its own, committed at once: an upload then streams its body with
    no transaction open, so it holds neither SQLite's write lock nor the key row's lock on PostgreSQL."""
    return await runtime.keys.authenticate(presented_key(request), utc_now())


OwnerDep = Annotated[ApiKey, Depends(get_owner)]


async def get_admin(owner: OwnerDep) -> ApiKey:
    if not owner.is_admin:
        raise Forbidden("This needs an admin key.")
    return owner


AdminDep = Annotated[ApiKey, Depends(get_admin)]


def public_base_url(request: Request, runtime: Runtime) -> str:
    """Where links point: LAPSE_PUBLIC_URL, else this request's scheme, host and root path (proxy-corrected)."""
    if runtime.settings.public_url is not None:
        return str(runtime.settings.public_url).rstrip("/") + "/"
    return str(request.base_url)


def declared_length(request: Request) -> int | None:
    declared = request.headers.get("content-length", "")
    return int(declared) if declared.isdigit() else None


async def read_json(request: Request, model: type[Model]) -> Model:
    """The request's JSON body as `model`. A route calls this itself, after its key dependency has run: a body
    parameter would make FastAPI read the whole body before any dependency, for anyone. The cap is judged on the
    declared length first (nothing read, no `100 Continue`), then on the bytes as they arrive."""
    if (declared := declared_length(request)) is not None and declared > MAX_JSON_BODY:
        raise TooLarge(f"The body is larger than the limit of {MAX_JSON_BODY} bytes.")
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_JSON_BODY:
            raise TooLarge(f"The body is larger than the limit of {MAX_JSON_BODY} bytes.")
    media_type = request.headers.get("content-type", "application/json").split(";", 1)[0].strip().lower()
    if not (
        media_type == "application/json" or (media_type.startswith("application/") and media_type.endswith("+json"))
    ):
        # What FastAPI answered to a body parameter sent as another type: a 422 saying what to send.
        error = {"loc": ("body",), "msg": "Send the body as application/json.", "type": "content_type"}
        raise RequestValidationError([error])
    try:
        return validate_json(model, bytes(body))
    except ValidationError as exc:
        raise RequestValidationError(
            [{**error, "loc": ("body", *error["loc"])} for error in exc.errors(include_input=False)]
        ) from None


def _json_number(literal: str) -> int | float:
    number = float(literal)
    return int(number) if number.is_integer() else number


def validate_json(model: type[Model], body: bytes) -> Model:
    """`body` as `model`, by the rules of the documented JSON Schema: strictly typed (`"admin": 0` is no boolean,
    `"expires_in": "5"` no integer), where a number with no fraction (`5.0`) is an integer, as JSON Schema says.
    Raises ValidationError."""
    try:
        document = json.loads(body or b"null", parse_float=_json_number)
    except ValueError:  # not JSON (or not UTF-8): pydantic says so in its own words
        return model.model_validate_json(body, strict=True)
    return model.model_validate_json(json.dumps(document), strict=True)


def json_body(model: type[BaseModel], **rules: Any) -> dict[str, Any]:
    """The OpenAPI `requestBody` of a route that reads its body with `read_json`: FastAPI sees no body parameter,
    so it would document none. Inline, as the body models nest no others; `rules` adds what the model's validators
    check and its fields cannot say (JSON Schema keywords such as `not`)."""
    schema = model.model_json_schema(mode="validation") | rules
    if "$defs" in schema:
        raise TypeError(f"{model.__name__} nests models: reference them from components instead")
    return {"requestBody": {"required": True, "content": {"application/json": {"schema": schema}}}}
