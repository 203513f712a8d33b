"""The server's logs never hold a working link: access-log lines show /d/… and /s/… without their tokens."""

import anyio
import pytest

from tests.server.api import fresh_client, share
from tests.server.services import Service

pytestmark = [pytest.mark.anyio, pytest.mark.server]


async def test_access_log_redacts_tokens(shared: Service) -> None:
    async with fresh_client(shared.url) as client:
        link = (await share(client, shared.key, b"secret bytes", "log.txt", max_downloads=3))["link"]
        token = link["path"].rsplit("/", 1)[1]
        assert (await client.get(link["path"])).status_code == 200
        assert (await client.get(f"/s/{token}")).status_code == 200
        assert (await client.get(f"/d/{token}x")).status_code == 404
    server = shared.server

    def logged() -> str:
        return server.stdout_path.read_text() + server.stderr_path.read_text()

    with anyio.fail_after(10):
        while '"GET /s/… HTTP/1.1" 200' not in logged():  # noqa: ASYNC110 - another process writes the log
            await anyio.sleep(0.05)
    assert '"GET /d/… HTTP/1.1" 200' in logged()
    assert token not in logged()
