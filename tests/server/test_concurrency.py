"""Exactly-k against a real server with two worker processes: 200 strangers at once, k bytes served — by the server,
or by the store its k redirects point to — in every storage mode."""

import os
from collections import Counter

import anyio
import httpx
import pytest

from tests.helpers import DATABASES, Browser, check_lapse_answer, store_of
from tests.server.api import fresh_client, link_info, share
from tests.server.services import Service

pytestmark = [pytest.mark.anyio, pytest.mark.server]

REQUESTS = 200
S3_MODES = ("s3-inline", "s3-redirect")


async def _stampede(base_url: str, path: str, count: int) -> list[httpx.Response]:
    """`count` GETs at once, each on its own connection, none carrying a cookie or a grant."""
    limits = httpx.Limits(max_connections=count, max_keepalive_connections=count)
    responses: list[httpx.Response] = []
    async with fresh_client(base_url, limits=limits) as client:

        async def fetch() -> None:
            responses.append(await client.get(path))

        async with anyio.create_task_group() as group:
            for _ in range(count):
                group.start_soon(fetch)
        assert not client.cookies, "the client kept a cookie: later requests were not strangers"
    return responses


@pytest.mark.parametrize(
    ("shared", "max_downloads"),
    # Both races on local storage; one (five winners, each URL fetched) per S3 mode and database: a server each.
    [(db, k) for db in DATABASES for k in (1, 5)] + [(f"{db}-{mode}", 5) for mode in S3_MODES for db in DATABASES],
    indirect=["shared"],
)
async def test_simultaneous_downloads_serve_exactly_max_downloads(shared: Service, max_downloads: int) -> None:
    data = os.urandom(64 * 1024)
    store = store_of(shared.server.extra_env)
    served = 200 if store is None else 302
    with anyio.fail_after(120):
        async with fresh_client(shared.url) as api:
            uploaded = await share(api, shared.key, data, "burst.bin", max_downloads=max_downloads)
            link = uploaded["link"]
            assert link["downloads"] == 0
            assert link["remaining"] == max_downloads

            responses = await _stampede(shared.url, link["path"], REQUESTS)

            statuses = Counter(r.status_code for r in responses)
            assert statuses == {served: max_downloads, 410: REQUESTS - max_downloads}, statuses
            for response in responses:
                assert "cookie" not in response.request.headers
                assert "lapse-grant" not in response.request.headers
                if response.status_code == served:
                    assert response.headers["lapse-grant"]
                    if store is None:
                        assert response.content == data
                        continue
                    await check_lapse_answer(response, store)
                    async with Browser(store).client(trust_env=False) as browser:  # as each stranger's browser
                        fetched = await browser.get(response.headers["location"])
                    assert (fetched.status_code, fetched.content) == (200, data)
                else:
                    assert response.headers["content-type"] == "application/problem+json"
                    assert response.headers["cache-control"] == "no-store"
                    assert response.json()["reason"] == "exhausted"
                    assert "lapse-grant" not in response.headers

            after = await link_info(api, shared.key, link["id"])
    assert after["downloads"] == max_downloads
    if store is not None:  # the redirects' access-log lines are written, and no presigned URL reached a log

        def logged() -> str:
            return shared.server.stdout_path.read_text() + shared.server.stderr_path.read_text()

        with anyio.fail_after(20):
            while f'HTTP/1.1" {served}' not in logged():  # noqa: ASYNC110 - another process writes it
                await anyio.sleep(0.05)
        assert "X-Amz-" not in logged()
    assert after["remaining"] == 0
    assert after["state"] == "exhausted"
