"""A store that fails in the middle of an inline download, under a real `lapse serve`: the transfer is cut (a
reset, which no client takes for a whole file; the grant resumes it), and the server logs one warning, not a
traceback."""

import os
from pathlib import Path

import anyio.to_thread
import httpx
import pytest

from lapse.settings import Settings
from tests.helpers import ApiClient
from tests.process import LapseServer
from tests.s3.conftest import PART_SIZE
from tests.s3.forwarder import ForwarderThread
from tests.s3.rgw import Rgw

pytestmark = [pytest.mark.anyio, pytest.mark.server]

SIZE = 48 * 1024 * 1024  # more than the socket buffers between the store and the client hold


async def test_a_store_that_fails_mid_stream_cuts_the_transfer_and_logs_no_traceback(
    s3_settings: Settings, rgw: Rgw, tmp_path: Path
) -> None:
    line = ForwarderThread(rgw.port)  # the server's way to the store, which the test cuts
    line.start()
    env = {
        "LAPSE_STORAGE_URL": s3_settings.storage_url,
        "LAPSE_S3_ENDPOINT": line.endpoint,
        "LAPSE_S3_REGION": s3_settings.s3_region,
        "LAPSE_S3_PATH_STYLE": "true",
        "LAPSE_S3_PART_SIZE": str(PART_SIZE),
        "LAPSE_MAX_UPLOAD_SIZE": str(2 * SIZE),
        "LAPSE_DELIVERY": "inline",
    }
    root = tmp_path / "server"
    root.mkdir()
    server = LapseServer(root, s3_settings.database_url, workers=1, env=env)
    key = await anyio.to_thread.run_sync(server.create_key, "uploader")
    await anyio.to_thread.run_sync(server.start)
    try:
        async with httpx.AsyncClient(base_url=server.url, timeout=60, trust_env=False) as http:
            link = await ApiClient(http, key).share(os.urandom(SIZE), "big.bin", max_downloads=1)
            received = 0
            cut = None
            async with http.stream("GET", link["path"]) as response:
                assert response.status_code == 200
                assert response.headers["content-length"] == str(SIZE)
                try:
                    async for piece in response.aiter_raw():
                        if received == 0:
                            await anyio.to_thread.run_sync(line.stop)
                        received += len(piece)
                except httpx.TransportError as exc:
                    cut = exc
            assert cut is not None  # cut, never a clean end
            assert 0 < received < SIZE
        logs = server.logs(limit=100_000)
        assert "storage.s3.failed" in logs
        assert "Traceback" not in logs, logs
    finally:
        await anyio.to_thread.run_sync(server.stop)
        await anyio.to_thread.run_sync(line.close)
