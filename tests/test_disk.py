"""A full or read-only disk answers 507 / 503 with Retry-After and leaves nothing behind (real tmpfs mounts)."""

import subprocess
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import anyio
import httpx
import pytest
from asgi_lifespan import LifespanManager

from lapse.app import create_app
from lapse.runtime import open_runtime
from lapse.settings import Settings
from tests.helpers import ApiClient, new_key, stored_files

pytestmark = pytest.mark.anyio


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 1 MiB tmpfs: as real as a full disk gets. Needs root, which the dev machines and CI have."""
    mount_point = tmp_path / "disk"
    mount_point.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mount_point)], check=True)
    try:
        yield mount_point
    finally:
        subprocess.run(["umount", "-l", str(mount_point)], check=True)


@pytest.fixture
async def disk_owner(small_disk: Path, settings: Settings) -> AsyncIterator[ApiClient]:
    on_small_disk = settings.model_copy(update={"data_dir": small_disk, "max_upload_size": 8 * 1024 * 1024})
    async with LifespanManager(create_app(on_small_disk, sweep=False)) as manager:
        transport = httpx.ASGITransport(app=manager.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
            admin = await http.post("/api/v1/keys")  # no key yet: 401, proves the app is up
            assert admin.status_code == 401
            async with open_runtime(on_small_disk) as runtime:
                yield ApiClient(http, await new_key(runtime, "disk"))


async def test_full_disk_is_507_and_leaves_nothing(disk_owner: ApiClient, small_disk: Path) -> None:
    response = await disk_owner.request("PUT", "/api/v1/files/big.bin", content=b"x" * (3 * 1024 * 1024))
    assert response.status_code == 507
    assert response.headers["retry-after"].isdigit()
    assert response.headers["content-type"] == "application/problem+json"
    assert stored_files(small_disk / "blobs") == []
    assert (await disk_owner.request("GET", "/api/v1/files")).json()["items"] == []
    small = await disk_owner.request("PUT", "/api/v1/files/small.bin", content=b"y" * 1000)
    assert small.status_code == 201  # the space was given back


async def test_read_only_disk_is_503(disk_owner: ApiClient, small_disk: Path) -> None:
    await anyio.run_process(["mount", "-o", "remount,ro", str(small_disk)])
    response = await disk_owner.request("PUT", "/api/v1/files/a.txt", content=b"abc")
    assert response.status_code == 503
    assert "retry-after" in response.headers
    ready = await disk_owner.http.get("/readyz")
    assert ready.status_code == 503
    assert ready.json()["detail"] == "The storage is not writable."
