"""A multipart boundary the parser will not take (longer than it allows) is the client's mistake: 400, never 500,
on the API's upload and on the web page's."""

import pytest

from tests.helpers import ApiClient
from tests.web.helpers import ORIGIN, Browser

pytestmark = pytest.mark.anyio


def _form(boundary: str) -> tuple[bytes, dict[str, str]]:
    body = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="a.txt"\r\n'
        f"Content-Type: text/plain\r\n\r\nhello\r\n--{boundary}--\r\n"
    ).encode()
    return body, {"Content-Type": f"multipart/form-data; boundary={boundary}"}


@pytest.mark.parametrize("length", [257, 1000, 70_000])
async def test_an_overlong_boundary_is_400_on_the_api(alice: ApiClient, length: int) -> None:
    body, headers = _form("b" * length)
    response = await alice.request("POST", "/api/v1/files", content=body, headers=headers)
    assert response.status_code == 400, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert "boundary" in response.json()["detail"]
    listed = await alice.request("GET", "/api/v1/files")
    assert listed.json()["items"] == []


async def test_a_boundary_within_the_limit_still_works(alice: ApiClient) -> None:
    body, headers = _form("b" * 256)
    response = await alice.request("POST", "/api/v1/files", content=body, headers=headers)
    assert response.status_code == 201, response.text
    assert response.json()["size"] == 5


async def test_an_overlong_boundary_is_400_on_the_web_page(alice_web: Browser) -> None:
    body, headers = _form("b" * 300)
    response = await alice_web.http.post(
        "/ui/files",
        content=body,
        # As the page's uploader sends it (static/upload.js), which shows the problem's `detail`.
        headers={**headers, "X-CSRF-Token": alice_web.csrf, "Origin": ORIGIN, "Accept": "application/json"},
    )
    assert response.status_code == 400, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert "boundary" in response.json()["detail"]
