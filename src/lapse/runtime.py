"""What one running app holds: built once by the lifespan (or the CLI), shared by every request."""

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from lapse.batch_thread import BatchThread
from lapse.db.session import create_engine, session_factory
from lapse.keys.authenticator import Authenticator, SessionAuthenticator, SqliteAuthenticator
from lapse.links.minter import Minter, SessionMinter, SqliteMinter
from lapse.links.recent import RecentLinks
from lapse.links.redeemer import AsyncpgRedeemer, Redeemer, SessionRedeemer, SqliteRedeemer
from lapse.links.service import ExpiryPolicy
from lapse.ratelimit import RateLimiter, make_rate_limiter
from lapse.settings import Settings
from lapse.storage import Storage, open_storage
from lapse.storage.small_cache import SmallFileCache
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
    file_io: BatchThread  # the download hot path's stat and small reads, batched on one thread
    small_files: SmallFileCache  # and the small files it read lately
    recent_links: RecentLinks  # and the live links it found lately (links.recent)


@asynccontextmanager
async def open_runtime(settings: Settings) -> AsyncIterator[Runtime]:
    secret = settings.resolved_secret()
    engine = create_engine(settings.database_url)
    limiter = make_rate_limiter(
        settings.redis_url, attempts=settings.password_attempts, window=settings.password_window
    )
    sessions = session_factory(engine)
    url = engine.url
    redeemer: Redeemer
    keys: Authenticator = SessionAuthenticator(sessions, secret)
    minter: Minter = SessionMinter(sessions)
    if url.get_backend_name() == "postgresql":
        redeemer = AsyncpgRedeemer(url)
    elif url.database and url.database != ":memory:":
        # Lean SQL on the redeemer's two threads; its writer commits links and redemptions in shared groups.
        sqlite = SqliteRedeemer(url.database)
        redeemer = sqlite
        keys = SqliteAuthenticator(sqlite.reader, sqlite.writer, secret)
        minter = SqliteMinter(sqlite.writer)
    else:  # an in-memory SQLite exists only on the ORM's own connection
        redeemer = SessionRedeemer(sessions)
    file_io = BatchThread(name="lapse-files")
    try:
        yield Runtime(
            settings=settings,
            engine=engine,
            sessions=sessions,
            storage=open_storage(settings.data_dir),
            secret=secret,
            grants=GrantSigner(secret),
            limiter=limiter,
            expiry=ExpiryPolicy(default_ttl=settings.default_ttl, max_ttl=settings.max_ttl),
            redeemer=redeemer,
            keys=keys,
            minter=minter,
            file_io=file_io,
            small_files=SmallFileCache(),
            recent_links=RecentLinks(),
        )
    finally:
        await asyncio.to_thread(file_io.close)
        await redeemer.aclose()
        await limiter.aclose()
        await engine.dispose()
