import httpx
import pytest

from tests.helpers import ApiClient

pytestmark = pytest.mark.anyio


async def test_upload_link_download_round_trip(alice: ApiClient, http: httpx.AsyncClient) -> None:
    link = await alice.share(b"hello world\n", max_downloads=1)
    first = await http.get(link["path"])
    assert first.status_code == 200
    assert first.content == b"hello world\n"
    # The grant cookie from the first answer lets the same client fetch again without counting...
    again = await http.get(link["path"])
    assert again.status_code == 200
    # ...but a client without it is refused: the one download is spent.
    http.cookies.clear()
    refused = await http.get(link["path"])
    assert refused.status_code == 410
    assert refused.json()["reason"] == "exhausted"
