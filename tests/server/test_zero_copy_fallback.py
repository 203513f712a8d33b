"""A uvicorn without the private hook lapse.zerocopy extends (gone, or with another signature): `lapse serve` warns
once and serves files through uvicorn's ordinary sending, byte for byte, whole and in ranges.

The server runs with a `sitecustomize` that changes uvicorn's class before anything imports Lapse — in the parent
and in every worker it spawns."""

import os
import textwrap
from collections.abc import Iterator
from pathlib import Path

import anyio
import pytest

from tests.process import LapseServer, fresh_database
from tests.server.api import fresh_client, share
from tests.server.services import Service, serving

pytestmark = [pytest.mark.anyio, pytest.mark.server]

WARNING = "zerocopy.unavailable"
SIZE = 3 * 1024 * 1024 + 17  # far past the small files kept in memory: sent by JudgedFileResponse
SHIMS = {
    # Gone from the class (instances still find it, so that this uvicorn itself keeps working).
    "missing": """
        hook = HttpToolsProtocol.__dict__["_start_asgi_task"]
        del HttpToolsProtocol._start_asgi_task

        def __getattr__(self, name):
            if name == "_start_asgi_task":
                return hook.__get__(self)
            raise AttributeError(name)

        HttpToolsProtocol.__getattr__ = __getattr__
    """,
    # Another signature.
    "changed": """
        hook = HttpToolsProtocol._start_asgi_task

        def _start_asgi_task(self, cycle, app, context=None):
            hook(self, cycle, app)

        HttpToolsProtocol._start_asgi_task = _start_asgi_task
    """,
    "intact": "",  # the control: the warning is about the hook, nothing else
}


@pytest.fixture(params=sorted(SHIMS))
def shimmed(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[str, Service]]:
    shim = tmp_path / "shim"
    shim.mkdir()
    body = textwrap.dedent(SHIMS[request.param])
    (shim / "sitecustomize.py").write_text(
        "from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol\n" + body
    )
    env = {"PYTHONPATH": os.pathsep.join(filter(None, [str(shim), os.environ.get("PYTHONPATH")]))}
    with fresh_database("sqlite", tmp_path) as url:
        server = LapseServer(tmp_path, url, workers=2, env=env)
        key = server.create_key("fallback")
        with serving(server):
            yield request.param, Service(server, key)


async def test_without_the_hook_lapse_serve_warns_once_and_sends_files_exactly(
    shimmed: tuple[str, Service],
) -> None:
    shim, service = shimmed
    data = os.urandom(SIZE)
    with anyio.fail_after(60):
        async with fresh_client(service.url) as client:
            link = (await share(client, service.key, data, "fallback.bin", max_downloads=10))["link"]
            whole = await client.get(link["path"])
            assert whole.status_code == 200
            assert whole.content == data
            grant = {"Lapse-Grant": whole.headers["lapse-grant"]}
            one = await client.get(link["path"], headers={"Range": "bytes=1000-2097151"} | grant)
            assert one.status_code == 206
            assert one.content == data[1000:2097152]
            tail = await client.get(link["path"], headers={"Range": "bytes=-17"} | grant)
            assert tail.content == data[-17:]
            several = await client.get(link["path"], headers={"Range": "bytes=0-9,3000000-3000009"} | grant)
            assert several.status_code == 206
            assert data[:10] in several.content
            assert data[3000000:3000010] in several.content
    stderr = service.server.stderr_path.read_text()
    assert stderr.count(WARNING) == (0 if shim == "intact" else 1), stderr
