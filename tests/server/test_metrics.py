"""/metrics on `lapse serve --workers 2`: a scrape reaches one worker, and every worker reports the counts of all
(lapse.metrics: prometheus-client's multiprocess mode, in a folder `lapse serve` makes for the workers)."""

import os

import anyio
import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.server.api import fresh_client, share
from tests.server.services import Service

pytestmark = [pytest.mark.anyio, pytest.mark.server]

DOWNLOADS = 40
SCRAPES = 8


async def downloads_reported(base_url: str) -> float:
    async with fresh_client(base_url) as client:  # a new connection: whichever worker accepts it answers
        response = await client.get("/metrics")
    assert response.status_code == 200
    samples = [s for f in text_string_to_metric_families(response.text) for s in f.samples]
    return next(s.value for s in samples if s.name == "lapse_downloads_total")


async def test_every_worker_reports_the_downloads_of_all(shared: Service) -> None:
    data = os.urandom(1000)
    with anyio.fail_after(120):
        async with fresh_client(shared.url) as api:
            link = (await share(api, shared.key, data, "counted.bin", max_downloads=1000))["link"]
        before = await downloads_reported(shared.url)
        limits = httpx.Limits(max_connections=DOWNLOADS, max_keepalive_connections=DOWNLOADS)
        statuses: list[int] = []
        async with fresh_client(shared.url, limits=limits) as client:  # one connection each: both workers serve

            async def fetch() -> None:
                statuses.append((await client.get(link["path"])).status_code)

            async with anyio.create_task_group() as group:
                for _ in range(DOWNLOADS):
                    group.start_soon(fetch)
        assert statuses == [200] * DOWNLOADS
        reported = [await downloads_reported(shared.url) for _ in range(SCRAPES)]
    assert reported == [before + DOWNLOADS] * SCRAPES
