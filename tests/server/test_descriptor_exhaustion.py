"""A server out of file descriptors never passes off a cut transfer as a whole one: a download that cannot get
what it needs is refused before it is counted (503 + Retry-After), and one that fails once its headers are out is
aborted, so the client sees a truncated transfer — and the link's count is exactly what the clients got."""

import os
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import anyio
import pytest

from tests.process import fresh_database
from tests.server.api import fresh_client, link_info, share
from tests.server.limited import LimitedServer, Transfer, transfer
from tests.server.services import Service, serving

pytestmark = [pytest.mark.anyio, pytest.mark.server]

NOFILE = 256
REQUESTS = 120
SIZE = 4 * 1024 * 1024


@pytest.fixture
def starved(kind: str, tmp_path: Path) -> Iterator[Service]:
    """One worker (every request meets the same limit) that may hold NOFILE descriptors."""
    with fresh_database(kind, tmp_path) as url:
        server = LimitedServer(tmp_path, url, workers=1, nofile=NOFILE)
        key = server.create_key("starved")
        with serving(server):
            yield Service(server, key)


async def test_downloads_out_of_descriptors_are_refused_or_aborted_and_counted_exactly(starved: Service) -> None:
    data = os.urandom(SIZE)
    with anyio.fail_after(180):
        async with fresh_client(starved.url) as api:
            link = (await share(api, starved.key, data, "big.bin", max_downloads=10 * REQUESTS))["link"]
        transfers: list[Transfer] = []

        async def fetch() -> None:
            transfers.append(await transfer("127.0.0.1", starved.server.port, link["path"]))

        async with anyio.create_task_group() as group:
            for _ in range(REQUESTS):
                group.start_soon(fetch)

        complete = [t for t in transfers if t.complete]
        aborted = [t for t in transfers if t.reset]
        refused = [t for t in transfers if t.status == 503 and t.complete]
        outcomes = Counter(
            (t.status, "complete" if t.complete else "reset" if t.reset else "closed short") for t in transfers
        )
        # Nothing else: above all no transfer closed cleanly short of its Content-Length, which a client reading
        # to the end of the connection would take for a whole file.
        assert len(complete) + len(aborted) == REQUESTS, outcomes
        assert all(t.body == data for t in complete if t.status == 200), outcomes  # byte for byte
        assert {t.status for t in complete} <= {200, 503}, outcomes
        for t in refused:
            assert t.headers["content-type"] == "application/problem+json"
            assert int(t.headers["retry-after"]) > 0
        served = len(complete) - len(refused)
        assert served > 0, outcomes  # the limit slows the stampede; it must not stop it

        async with fresh_client(starved.url) as api:
            after = await link_info(api, starved.key, link["id"])
            # A 503 counts nothing; an answer reset after its status line was counted. One reset before any status
            # line may have been counted (the answer could not start) or not (the connection could not be taken).
            unanswered = sum(1 for t in aborted if t.status is None)
            assert served + len(aborted) - unanswered <= after["downloads"] <= served + len(aborted), outcomes
            # Once the stampede is over, the server has its descriptors back.
            assert (await api.get(link["path"])).content == data
