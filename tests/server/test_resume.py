"""Grants over a real server (docs/api.md): a one-time link's interrupted transfer resumes for free; without a
grant every GET counts. In every storage mode: redirected, the client follows to the store as a browser would, and
a resume under the grant gets a fresh URL, uncounted."""

import os

import anyio
import pytest

from tests.helpers import SHARED_IN_EVERY_STORAGE, browsing, lapse_answer, store_of
from tests.server.api import fresh_client, link_info, share
from tests.server.services import Service

pytestmark = [pytest.mark.anyio, pytest.mark.server, SHARED_IN_EVERY_STORAGE]

SIZE = 1024 * 1024
CUT = 100_000


async def test_interrupted_download_resumes_with_its_grant_without_counting(shared: Service) -> None:
    data = os.urandom(SIZE)
    with anyio.fail_after(60):
        async with fresh_client(shared.url, **browsing(shared.server.extra_env)) as client:
            link = (await share(client, shared.key, data, "resume.bin", max_downloads=1))["link"]

            first = await client.get(link["path"], headers={"Range": f"bytes=0-{CUT - 1}"})
            assert first.status_code == 206, first.text
            assert first.headers["content-range"] == f"bytes 0-{CUT - 1}/{SIZE}"
            assert first.content == data[:CUT]
            grant = lapse_answer(first).headers["lapse-grant"]
            assert (await link_info(client, shared.key, link["id"]))["downloads"] == 1

            rest = await client.get(link["path"], headers={"Range": f"bytes={CUT}-", "Lapse-Grant": grant})
            assert rest.status_code == 206, rest.text
            assert rest.headers["content-range"] == f"bytes {CUT}-{SIZE - 1}/{SIZE}"
            assert first.content + rest.content == data
            hops = 0 if store_of(shared.server.extra_env) is None else 1  # redirected: both, the resume to a new URL
            assert (len(first.history), len(rest.history)) == (hops, hops)
            after = await link_info(client, shared.key, link["id"])
            assert (after["downloads"], after["remaining"], after["state"]) == (1, 0, "exhausted")

            # A forged grant is no grant: it would have to redeem, and the one download is spent.
            forged = grant[:-4] + ("AAAA" if not grant.endswith("AAAA") else "BBBB")
            refused = await client.get(link["path"], headers={"Range": f"bytes={CUT}-", "Lapse-Grant": forged})
            assert refused.status_code == 410
            assert refused.json()["reason"] == "exhausted"

            stranger = await client.get(link["path"])
            assert stranger.status_code == 410
            assert stranger.headers["content-type"] == "application/problem+json"
            assert stranger.json()["reason"] == "exhausted"
            assert (await link_info(client, shared.key, link["id"]))["downloads"] == 1


async def test_a_grant_is_for_its_own_link_only(shared: Service) -> None:
    with anyio.fail_after(60):
        async with fresh_client(shared.url, **browsing(shared.server.extra_env)) as client:
            spent = (await share(client, shared.key, b"first", "a.txt", max_downloads=1))["link"]
            other = (await share(client, shared.key, b"second", "b.txt", max_downloads=1))["link"]
            grant = lapse_answer(await client.get(spent["path"])).headers["lapse-grant"]
            assert (await client.get(other["path"])).status_code == 200  # spends other's only download

            # spent's grant does not open `other`, not even relabelled with other's id (the signature covers
            # it): the request would have to redeem, and nothing is left.
            _, expires, signature = grant.split(".")
            for borrowed in (grant, f"{other['id']}.{expires}.{signature}"):
                refused = await client.get(other["path"], headers={"Lapse-Grant": borrowed})
                assert refused.status_code == 410
                assert refused.json()["reason"] == "exhausted"
            assert (await link_info(client, shared.key, other["id"]))["downloads"] == 1


async def test_every_get_without_a_grant_counts_on_an_unlimited_link(shared: Service) -> None:
    data = os.urandom(4096)
    with anyio.fail_after(60):
        async with fresh_client(shared.url, **browsing(shared.server.extra_env)) as client:
            link = (await share(client, shared.key, data, "many.bin", expires_in=3600))["link"]
            assert link["max_downloads"] is None

            grant = ""
            for expected in (1, 2):
                response = await client.get(link["path"])
                assert response.status_code == 200
                assert response.content == data
                grant = lapse_answer(response).headers["lapse-grant"]
                info = await link_info(client, shared.key, link["id"])
                assert (info["downloads"], info["remaining"], info["state"]) == (expected, None, "active")

            # ...while the grant from the last one fetches again for free.
            again = await client.get(link["path"], headers={"Lapse-Grant": grant})
            assert again.status_code == 200
            assert again.content == data
            assert (await link_info(client, shared.key, link["id"]))["downloads"] == 2
