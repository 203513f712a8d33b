"""What one running app holds: built once by the lifespan (or the CLI), shared by every request."""

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from lapse.db.session import create_engine, session_factory
from lapse.errors import Unavailable
from lapse.keys.authenticator import Authenticator, SessionAuthenticator, SqliteAuthenticator
from lapse.links.download import Downloads
from lapse.links.minter import AsyncpgMinter, Minter, SqliteMinter
from lapse.links.redeemer import AsyncpgRedeemer, Redeemer, SqliteRedeemer
from lapse.links.service import ExpiryPolicy
from lapse.ratelimit import RateLimiter, make_rate_limiter
from lapse.settings import Settings
from lapse.storage import LocalStorage, Storage, open_storage
from lapse.tokens import GrantSigner


@dataclass(frozen=True, slots=True)
class Runtime:
    settings: Settings
    engine: AsyncEngine
    sessions: async_sessionmaker[AsyncSession]
    storage: Storage
    secret: bytes
    grants: GrantSigner
    limiter: RateLimiter
    expiry: ExpiryPolicy
    redeemer: Redeemer  # the download hot path's SQL (links.redeemer)
    keys: Authenticator  # who is calling, for every API request (keys.authenticator)
    minter: Minter  # storing a new link (links.minter)
    downloads: Downloads  # the download service (links.download)


@asynccontextmanager
async def open_runtime(settings: Settings) -> AsyncIterator[Runtime]:
    secret = settings.resolved_secret()
    engine = create_engine(settings.database_url)
    url = engine.url
    if url.get_backend_name() != "postgresql" and (not url.database or url.database == ":memory:"):
        await engine.dispose()
        raise ValueError("An in-memory SQLite database is not supported: name a file (sqlite:///path/lapse.db).")
    storage = await _open_checked_storage(settings, engine)
    limiter = make_rate_limiter(
        settings.redis_url, attempts=settings.password_attempts, window=settings.password_window
    )
    sessions = session_factory(engine)
    if url.get_backend_name() == "postgresql":
        postgres = AsyncpgRedeemer(url)
        redeemer: Redeemer = postgres
        keys: Authenticator = SessionAuthenticator(sessions, secret)
        minter: Minter = AsyncpgMinter(postgres)
    else:  # lean SQL on the redeemer's two threads; its writer commits links and redemptions in shared groups
        sqlite = SqliteRedeemer(str(url.database))
        redeemer, keys, minter = (
            sqlite,
            SqliteAuthenticator(sqlite.reader, sqlite.writer, secret),
            SqliteMinter(sqlite.writer),
        )
    grants = GrantSigner(secret)
    downloads = Downloads(
        redeemer=redeemer,
        storage=storage,
        secret=secret,
        grants=grants,
        limiter=limiter,
        grant_ttl=settings.grant_ttl,
        delivery=settings.delivery,
        accel_prefix=settings.accel_prefix,
        accel_s3_prefix=settings.accel_s3_prefix,
    )
    try:
        yield Runtime(
            settings=settings,
            engine=engine,
            sessions=sessions,
            storage=storage,
            secret=secret,
            grants=grants,
            limiter=limiter,
            expiry=ExpiryPolicy(default_ttl=settings.default_ttl, max_ttl=settings.max_ttl),
            redeemer=redeemer,
            keys=keys,
            minter=minter,
            downloads=downloads,
        )
    finally:
        await storage.aclose()
        await redeemer.aclose()
        await limiter.aclose()
        await engine.dispose()


class CannotStart(SystemExit):
    """A setting names something that is not there: exit with this one line (no traceback), whoever started us."""


async def _open_checked_storage(settings: Settings, engine: AsyncEngine) -> Storage:
    """The storage the settings name. A remote one must answer now: better to refuse to start than to answer
    503 to every upload and download (a folder is made on first write, and /readyz reports on it)."""
    try:
        storage = open_storage(settings)
    except ValueError as exc:
        await engine.dispose()
        raise CannotStart(f"lapse: cannot start: {exc}") from exc
    if isinstance(storage, LocalStorage):
        return storage
    try:
        await storage.check()
    except Unavailable as exc:
        await storage.aclose()
        await engine.dispose()
        reason = exc.__cause__ or exc
        message = f"lapse: cannot start: LAPSE_STORAGE_URL={settings.storage_url} is not reachable: {reason}"
        raise CannotStart(message) from exc
    return storage
