"""The ASGI app: `create_app(settings)`; `app_from_env()` is the factory the server imports in each worker."""

import asyncio
import contextlib
import gc
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from starlette.types import Receive, Scope, Send

from lapse import __version__, sweeper, web
from lapse.api import download, fast_download, fast_link, files, keys, links, ops, problems
from lapse.logs import redact_access_logs
from lapse.middleware import DefaultHeadersMiddleware, ProxyHeadersMiddleware, TrustedProxies
from lapse.runtime import open_runtime
from lapse.settings import Settings

DESCRIPTION = """Temporary download links: upload a file, mint links that stop working after a time, a number
of downloads, or a revocation. Authenticate with `Authorization: Bearer <key>` (or `X-API-Key`). Errors are
`application/problem+json` (RFC 9457)."""


class LapseApp(FastAPI):
    """FastAPI, with plain downloads and new links answered before its middleware stack (api.fast_download,
    api.fast_link)."""

    proxies: TrustedProxies
    fast_paths: bool = True

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if not self.fast_paths:
            await super().__call__(scope, receive, send)
            return
        if await fast_download.answer(scope, receive, send, proxies=self.proxies):
            return
        passed_on = await fast_link.answer(scope, receive, send, proxies=self.proxies)
        if passed_on is not None:
            await super().__call__(scope, passed_on, send)


def create_app(
    settings: Settings, *, sweep: bool = True, freeze_heap: bool = False, fast_paths: bool = True
) -> LapseApp:
    """`freeze_heap`: for a server process (`app_from_env`), see `lifespan`. `fast_paths=False`: every request
    through the framework's whole stack (the tests compare the answers both ways)."""

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[dict[str, object]]:
        async with open_runtime(settings) as runtime:
            if freeze_heap:
                # What exists now (modules, the app, the runtime) lives as long as the process: frozen, the cycle
                # collector's full passes skip it. Each pass over it stalled the event loop 70-80 ms under load
                # (create-link p99 ~77 ms; 16-18 ms frozen, and +2-6% req/s). Not for tests: their many apps would
                # never be collected.
                gc.freeze()
            task = None
            if sweep:
                task = asyncio.create_task(
                    sweeper.run_periodically(
                        runtime.sessions,
                        runtime.storage,
                        interval=settings.sweep_interval,
                        grace=settings.sweep_grace,
                        lock_path=settings.data_dir / "sweeper.lock",
                    )
                )
            try:
                yield {"runtime": runtime}
            finally:
                if task is not None:
                    task.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await task

    redact_access_logs()
    app = LapseApp(title="Lapse", version=__version__, description=DESCRIPTION, lifespan=lifespan)
    app.proxies = TrustedProxies(settings.trusted_proxies)
    app.fast_paths = fast_paths
    problems.install(app)
    for module in (files, links, keys, download, ops):
        app.include_router(module.router)
    web.install(app)
    app.add_middleware(DefaultHeadersMiddleware)
    app.add_middleware(ProxyHeadersMiddleware, proxies=app.proxies)
    return app


def app_from_env() -> LapseApp:
    return create_app(Settings(), freeze_heap=True)
