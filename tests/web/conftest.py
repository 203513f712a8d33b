"""Browsers for the in-process app (see tests/web/helpers.py): fresh ones, and ones signed in as alice or admin."""

from collections.abc import AsyncIterator
from contextlib import AsyncExitStack

import httpx
import pytest
from starlette.types import ASGIApp

from tests.helpers import ApiClient
from tests.web.helpers import ORIGIN, Browser, NewBrowser, signed_in


@pytest.fixture
async def new_browser(app: ASGIApp) -> AsyncIterator[NewBrowser]:
    """Browsers of their own (own cookie jars) on the same app."""
    async with AsyncExitStack() as stack:

        async def make() -> Browser:
            transport = httpx.ASGITransport(app=app)
            client = httpx.AsyncClient(transport=transport, base_url=ORIGIN)
            return Browser(await stack.enter_async_context(client))

        yield make


@pytest.fixture
async def alice_web(new_browser: NewBrowser, alice: ApiClient) -> Browser:
    return await signed_in(new_browser, alice)


@pytest.fixture
async def admin_web(new_browser: NewBrowser, admin: ApiClient) -> Browser:
    return await signed_in(new_browser, admin)
