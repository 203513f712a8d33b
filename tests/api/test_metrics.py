"""GET /metrics: Prometheus counters of what Lapse did (lapse.metrics). Counters are per process and the tests
share one, so each test reads them before and after."""

import os

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from lapse.runtime import Runtime
from tests.helpers import ApiClient, stored_files

pytestmark = pytest.mark.anyio


async def counters(http: httpx.AsyncClient) -> dict[str, float]:
    response = await http.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain; version=")  # Prometheus text format
    return {
        sample.name: sample.value
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
        if sample.name.startswith("lapse_") and sample.name.endswith("_total")
    }


async def test_uploads_links_and_counted_downloads(alice: ApiClient, http: httpx.AsyncClient) -> None:
    before = await counters(http)
    body = os.urandom(1234)
    link = await alice.share(body, max_downloads=1)
    assert (await http.get(link["path"])).content == body
    assert (await http.get(link["path"])).content == body  # the grant's resumption: not another download
    http.cookies.clear()
    assert (await http.get(link["path"])).status_code == 410  # refused: not a download
    after = await counters(http)
    delta = {name: after[name] - before.get(name, 0.0) for name in after}
    assert delta == {
        "lapse_uploads_total": 1,
        "lapse_upload_bytes_total": 1234,
        "lapse_links_total": 1,
        "lapse_downloads_total": 1,
        "lapse_unavailable_total": 0,
        "lapse_swept_files_total": 0,
        "lapse_swept_blobs_total": 0,
        "lapse_swept_intents_total": 0,
        "lapse_swept_tombstones_total": 0,
    }


async def test_links_made_in_front_of_the_framework_are_counted(alice: ApiClient, http: httpx.AsyncClient) -> None:
    file = await alice.upload(b"x")
    before = await counters(http)
    for _ in range(3):
        await alice.link(file["id"], expires_in=60)  # api.fast_link answers these
    assert (await counters(http))["lapse_links_total"] - before["lapse_links_total"] == 3


async def test_a_503_is_counted(alice: ApiClient, http: httpx.AsyncClient, runtime: Runtime) -> None:
    link = await alice.share(b"bytes that go missing", max_downloads=2)
    for blob in stored_files(runtime.settings.data_dir / "blobs"):
        blob.unlink()
    before = await counters(http)
    response = await http.get(link["path"])
    assert response.status_code == 503
    after = await counters(http)
    assert after["lapse_unavailable_total"] - before["lapse_unavailable_total"] == 1
    assert after["lapse_downloads_total"] == before["lapse_downloads_total"]  # fail closed: nothing counted
