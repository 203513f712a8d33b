"""Redis gone (LAPSE_REDIS_URL set, nothing answering): password checks cannot be counted, so none is made —
503 with Retry-After (fail closed), never a 500. Links without a password do not need Redis."""

import httpx
import pytest

from lapse.settings import Settings
from tests.helpers import ApiClient

pytestmark = [pytest.mark.anyio, pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)]


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return settings.model_copy(update={"redis_url": "redis://127.0.0.1:1/0"})  # port 1: refused at once


async def test_a_password_download_is_503_while_redis_is_away(alice: ApiClient, http: httpx.AsyncClient) -> None:
    guarded = await alice.share(b"closed", password="pw", max_downloads=1)
    for answer in (
        await http.post(guarded["path"], data={"password": "pw"}),
        await http.get(guarded["path"], auth=("", "pw")),
    ):
        assert answer.status_code == 503, answer.text
        assert answer.headers["content-type"] == "application/problem+json"
        assert int(answer.headers["retry-after"]) > 0
    info = await alice.request("GET", f"/api/v1/links/{guarded['id']}")
    assert info.json()["downloads"] == 0

    plain = await alice.share(b"open", max_downloads=1)
    assert (await http.get(plain["path"])).content == b"open"
