"""The in-house SigV4 query presigner: the same URL as botocore's for the same instant, and one RGW honours with
the forced headers, then refuses once expired or changed."""

import os
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import botocore.auth
import botocore.session
import httpx
import pytest
from botocore.config import Config

from lapse.delivery.serving import content_disposition
from lapse.storage.presign import Credentials, Presigner
from lapse.storage.s3 import S3Storage
from tests.s3.conftest import BUCKET
from tests.s3.rgw import Rgw

pytestmark = pytest.mark.anyio

NOW = datetime(2026, 12, 3, 13, 5, 7, tzinfo=UTC)
NAME = 'report "final" été;, 100%.pdf'
FORCED = {
    "response-cache-control": "private, no-store",
    "response-content-disposition": content_disposition(NAME),
    "response-content-type": "application/octet-stream",
}


def botocore_url(
    endpoint: str, key: str, credentials: Credentials, *, path_style: bool, expires: int, region: str = "eu-west-3"
) -> str:
    client: Any = botocore.session.get_session().create_client(
        "s3",
        endpoint_url=endpoint,
        region_name=region,
        aws_access_key_id=credentials.access_key,
        aws_secret_access_key=credentials.secret_key,
        aws_session_token=credentials.token,
        config=Config(signature_version="s3v4", s3={"addressing_style": "path" if path_style else "virtual"}),
    )
    params = {
        "Bucket": "my-bucket",
        "Key": key,
        "ResponseCacheControl": FORCED["response-cache-control"],
        "ResponseContentDisposition": FORCED["response-content-disposition"],
        "ResponseContentType": FORCED["response-content-type"],
    }
    url: str = client.generate_presigned_url("get_object", Params=params, ExpiresIn=expires)
    return url


# (A bucket cannot be a subdomain of an IP address: the local endpoint is path-style only.)
@pytest.mark.parametrize(
    ("endpoint", "path_style"),
    [("https://s3.example.test", True), ("https://s3.example.test", False), ("http://127.0.0.1:7480", True)],
)
@pytest.mark.parametrize("token", [None, "session/token+with=odd&chars"])
def test_the_same_url_as_botocore_for_the_same_instant(
    monkeypatch: pytest.MonkeyPatch, path_style: bool, token: str | None, endpoint: str
) -> None:
    monkeypatch.setattr(botocore.auth, "get_current_datetime", lambda: NOW.replace(tzinfo=None))
    credentials = Credentials("AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", token)
    key = "some prefix/é+key~v1.bin"
    expected = botocore_url(endpoint, key, credentials, path_style=path_style, expires=45)
    scheme, _, host = endpoint.partition("://")
    base = f"{endpoint}/my-bucket" if path_style else f"{scheme}://my-bucket.{host}"
    ours = Presigner(base=base, region="eu-west-3").url(
        key, credentials=credentials, expires_in=45, now=NOW, params=FORCED
    )
    theirs, mine = urlsplit(expected), urlsplit(ours)
    assert (mine.scheme, mine.netloc, mine.path) == (theirs.scheme, theirs.netloc, theirs.path)
    assert sorted(parse_qsl(mine.query)) == sorted(parse_qsl(theirs.query))  # the signature among them


def test_expiry_is_bounded() -> None:
    signer = Presigner(base="https://s3.example.test/b", region="us-east-1")
    for bad in (0, 7 * 24 * 3600 + 1):
        with pytest.raises(ValueError, match="expires_in"):
            signer.url("k", credentials=Credentials("a", "b"), expires_in=bad, now=NOW)


@pytest.fixture
def object_key(s3: Any, prefix: str) -> tuple[str, bytes]:
    data = os.urandom(3000)
    s3.put_object(Bucket=BUCKET, Key=prefix + "b" * 32, Body=data, ContentType="text/html")
    return prefix + "b" * 32, data


def rgw_url(rgw: Rgw, key: str, *, now: datetime, expires: int, params: dict[str, str] | None = None) -> str:
    signer = Presigner(base=f"{rgw.endpoint}/{BUCKET}", region=rgw.region)
    credentials = Credentials(rgw.access_key, rgw.secret_key)
    return signer.url(
        key, credentials=credentials, expires_in=expires, now=now, params=FORCED if params is None else params
    )


async def test_rgw_serves_a_presigned_url_with_the_forced_headers(rgw: Rgw, object_key: tuple[str, bytes]) -> None:
    key, data = object_key
    url = rgw_url(rgw, key, now=datetime.now(UTC), expires=60)
    async with httpx.AsyncClient() as plain:
        whole = await plain.get(url)
        assert (whole.status_code, whole.content) == (200, data)
        assert whole.headers["content-disposition"] == content_disposition(NAME)
        assert whole.headers["content-type"] == "application/octet-stream"  # not the stored text/html
        assert whole.headers["cache-control"] == "private, no-store"
        part = await plain.get(url, headers={"Range": "bytes=100-199"})
        assert (part.status_code, part.content) == (206, data[100:200])


async def test_rgw_refuses_an_expired_or_changed_url(rgw: Rgw, object_key: tuple[str, bytes]) -> None:
    key, _ = object_key
    now = datetime.now(UTC)
    async with httpx.AsyncClient() as plain:
        # Signed ten seconds ago: for 60 s it is still good, for 5 s it has expired (no waiting needed).
        assert (await plain.get(rgw_url(rgw, key, now=now - timedelta(seconds=10), expires=60))).status_code == 200
        assert (await plain.get(rgw_url(rgw, key, now=now - timedelta(seconds=10), expires=5))).status_code == 403

        good = rgw_url(rgw, key, now=now, expires=60)
        signature = good[-64:]
        flipped = good[:-64] + ("0" if signature[0] != "0" else "1") + signature[1:]
        assert (await plain.get(flipped)).status_code == 403
        retyped = good.replace("application%2Foctet-stream", "text%2Fhtml")
        assert retyped != good
        assert (await plain.get(retyped)).status_code == 403
        longer = good.replace("X-Amz-Expires=60", "X-Amz-Expires=600")
        assert (await plain.get(longer)).status_code == 403
        elsewhere = good.replace("b" * 32, "c" * 32)
        assert (await plain.get(elsewhere)).status_code == 403


async def test_storage_presign_forces_headers_and_caps_the_lifetime(
    storage: S3Storage, object_key: tuple[str, bytes], prefix: str
) -> None:
    key, data = object_key
    grant_ends = datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=20)
    short = await storage.presign("b" * 32, until=grant_ends, filename=NAME, content_type="text/plain")
    query = dict(parse_qsl(urlsplit(short).query))
    signed = datetime.strptime(query["X-Amz-Date"], "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)
    assert signed + timedelta(seconds=int(query["X-Amz-Expires"])) == grant_ends  # the grant's end, when sooner
    assert query["response-content-type"] == "text/plain"
    later = datetime.now(UTC) + timedelta(hours=1)
    long = await storage.presign("b" * 32, until=later, filename=NAME, content_type="text/plain")
    assert dict(parse_qsl(urlsplit(long).query))["X-Amz-Expires"] == "60"  # LAPSE_REDIRECT_TTL
    async with httpx.AsyncClient() as plain:
        got = await plain.get(long)
    assert (got.status_code, got.content) == (200, data)
    assert got.headers["content-disposition"] == content_disposition(NAME)
    assert got.headers["content-type"] == "text/plain"
    assert got.headers["cache-control"] == "private, no-store"
    assert urlsplit(long).path == f"/{BUCKET}/{key}"
