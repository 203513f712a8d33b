"""Dependencies as `Annotated` aliases, chained: RuntimeDep → SessionDep, RuntimeDep → OwnerDep → AdminDep."""

from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy.ext.asyncio import AsyncSession

from lapse.db.base import utc_now
from lapse.db.models import ApiKey
from lapse.errors import Forbidden
from lapse.runtime import Runtime


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


async def get_owner(request: Request, runtime: RuntimeDep) -> ApiKey:
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
