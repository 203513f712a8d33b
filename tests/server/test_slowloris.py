"""Connections that never finish a request (lapse.protocol): closed after the head timeout, and never able to lock
other clients out — directly against `lapse serve`, even at a low descriptor limit, and behind nginx."""

import os
import time
from collections.abc import Iterator
from contextlib import suppress
from pathlib import Path

import anyio
import pytest
from anyio.abc import SocketStream

from tests.process import LapseServer, fresh_database
from tests.server.api import fresh_client, read_response_head, share
from tests.server.limited import LimitedServer
from tests.server.nginx import Nginx
from tests.server.services import Service, serving
from tests.server.slowloris import slowloris

pytestmark = [pytest.mark.anyio, pytest.mark.server]

HEADER_TIMEOUT = 1.0  # seconds, as LAPSE_HEADER_TIMEOUT below
SIZE = 4 * 1024 * 1024


async def _still_serving(url: str, key: str) -> None:
    """/healthz answers, and a 4 MiB file goes up and comes down whole."""
    data = os.urandom(SIZE)
    async with fresh_client(url) as client:
        assert (await client.get("/healthz")).status_code == 200
        link = (await share(client, key, data, "while-attacked.bin", max_downloads=5))["link"]
    async with fresh_client(url) as client:
        response = await client.get(link["path"])
        assert response.status_code == 200
        assert response.content == data


@pytest.fixture
def quick(tmp_path: Path) -> Iterator[Service]:
    with fresh_database("sqlite", tmp_path) as url:
        server = LapseServer(tmp_path, url, workers=1, env={"LAPSE_HEADER_TIMEOUT": f"{HEADER_TIMEOUT:.0f}s"})
        key = server.create_key("quick")
        with serving(server):
            yield Service(server, key)


async def test_connections_that_never_finish_a_head_are_closed_after_the_header_timeout(quick: Service) -> None:
    started = time.monotonic()
    with anyio.fail_after(60):
        async with slowloris(quick.server.port, idle=100, dribbling=100, every=0.1) as attack:
            connected = time.monotonic()
            await attack.wait_all_closed()
            # Not at once: each had its full header timeout (measured from before the first one connected).
            assert time.monotonic() - started >= HEADER_TIMEOUT
        for loris in attack.connections:
            if loris.dribble:  # it began a request: told why it is closed
                assert loris.answer.startswith(b"HTTP/1.1 408 "), loris.answer
            else:
                assert loris.answer == b""
        # Dribbling did not buy time: all went within the timeout (and some slack) of their start.
        assert time.monotonic() - connected < HEADER_TIMEOUT + 15
        await _still_serving(quick.url, quick.key)


async def test_a_keep_alive_connection_gets_the_header_timeout_again_after_each_answer(quick: Service) -> None:
    with anyio.fail_after(30):
        async with await anyio.connect_tcp("127.0.0.1", quick.server.port) as stream:
            await stream.send(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
            status, headers = await read_response_head(stream)
            assert status.split(" ")[1] == "200"
            assert "close" not in headers.get("connection", "")
            await stream.send(b"GET /healthz HTTP/1.1\r\nHo")  # a second head, never finished
            assert (await _until_closed(stream)).startswith(b"HTTP/1.1 408 ")


async def _until_closed(stream: SocketStream) -> bytes:
    received = b""
    with suppress(anyio.EndOfStream):
        while True:
            received += await stream.receive()
    return received


@pytest.fixture
def starved(tmp_path: Path) -> Iterator[Service]:
    """256 descriptors, one worker, and a head timeout far longer than the test: only the cap can help."""
    with fresh_database("sqlite", tmp_path) as url:
        server = LimitedServer(tmp_path, url, workers=1, nofile=256, env={"LAPSE_HEADER_TIMEOUT": "10m"})
        key = server.create_key("starved")
        with serving(server):
            yield Service(server, key)


async def test_a_slowloris_at_a_low_descriptor_limit_locks_nobody_out(starved: Service) -> None:
    with anyio.fail_after(90):
        async with slowloris(starved.server.port, idle=150, dribbling=150, every=1.0) as attack:
            await _still_serving(starved.url, starved.key)
            # The oldest waiting connections made room; the cap (half of 256) holds the rest.
            assert attack.open() <= 128
            evicted = [loris for loris in attack.connections if loris.closed.is_set()]
            assert evicted
            for loris in evicted:  # closed, with a 408 if its head had begun to arrive
                assert loris.answer == b"" or loris.answer.startswith(b"HTTP/1.1 408 "), loris.answer


@pytest.fixture
def proxied(tmp_path: Path) -> Iterator[tuple[Nginx, str]]:
    with fresh_database("sqlite", tmp_path) as url:
        lapse = LapseServer(tmp_path, url, workers=1)
        key = lapse.create_key("proxied")
        with serving(lapse):
            nginx = Nginx(
                tmp_path / "nginx", lapse, replace={"client_header_timeout 10s;": "client_header_timeout 1s;"}
            )
            nginx.start()
            try:
                yield nginx, key
            finally:
                nginx.stop()
                print(nginx.logs())


async def test_behind_nginx_a_slowloris_locks_nobody_out_and_is_closed(proxied: tuple[Nginx, str]) -> None:
    nginx, key = proxied
    with anyio.fail_after(90):
        async with slowloris(nginx.port, idle=150, dribbling=150, every=0.1) as attack:
            await _still_serving(nginx.url, key)
            await attack.wait_all_closed()  # deploy/nginx/lapse.conf's client_header_timeout (1 s here)
        await _still_serving(nginx.url, key)
