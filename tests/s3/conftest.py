"""A real Ceph RGW for the S3 tests (tests/s3/rgw.py): one per test session (or per xdist worker), one bucket in
it, and a fresh key prefix per test so that tests never see each other's objects."""

import secrets
from collections.abc import AsyncIterator, Iterator
from datetime import timedelta
from typing import Any

import botocore.session
import pytest
from botocore.config import Config
from pydantic import AnyHttpUrl

from lapse.settings import Settings
from lapse.storage.s3 import S3Storage
from tests.s3.rgw import Rgw, RgwCluster

BUCKET = "lapse-test"
PART_SIZE = 5 * 1024 * 1024  # S3's smallest: multipart uploads with few bytes in RAM


@pytest.fixture(scope="session")
def rgw(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Rgw]:
    cluster = RgwCluster(tmp_path_factory.mktemp("rgw"))
    store = cluster.start()
    try:
        s3_client(store).create_bucket(Bucket=BUCKET)
        yield store
    finally:
        cluster.stop()


def s3_client(store: Rgw) -> Any:
    """A plain (sync) botocore client, to look at the bucket behind the code under test's back."""
    return botocore.session.get_session().create_client(
        "s3",
        endpoint_url=store.endpoint,
        region_name=store.region,
        aws_access_key_id=store.access_key,
        aws_secret_access_key=store.secret_key,
        config=Config(
            s3={"addressing_style": "path"},
            request_checksum_calculation="when_required",
            response_checksum_validation="when_required",
        ),
    )


@pytest.fixture
def s3(rgw: Rgw) -> Any:
    return s3_client(rgw)


@pytest.fixture
def aws_env(rgw: Rgw, monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory) -> None:
    """The RGW user's keys where the client library's standard chain looks first; nothing else of the machine's."""
    nowhere = tmp_path_factory.getbasetemp() / "no-aws-config"
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", rgw.access_key)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", rgw.secret_key)
    monkeypatch.delenv("AWS_SESSION_TOKEN", raising=False)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(nowhere))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(nowhere))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")


@pytest.fixture
def prefix(s3: Any) -> Iterator[str]:
    """A fresh key prefix; whatever a test left under it is removed after (memstore keeps objects in RAM)."""
    made = f"t-{secrets.token_hex(4)}/"
    yield made
    for item in s3.list_objects_v2(Bucket=BUCKET, Prefix=made).get("Contents", []):
        s3.delete_object(Bucket=BUCKET, Key=item["Key"])
    for upload in s3.list_multipart_uploads(Bucket=BUCKET, Prefix=made).get("Uploads", []):
        s3.abort_multipart_upload(Bucket=BUCKET, Key=upload["Key"], UploadId=upload["UploadId"])


def make_storage(
    store: Rgw,
    prefix: str,
    *,
    endpoint: str | None = None,
    bucket: str = BUCKET,
    redirect_ttl: timedelta = timedelta(seconds=60),
    check_ttl: float = 5.0,
    list_page_size: int = 1000,
) -> S3Storage:
    return S3Storage(
        bucket=bucket,
        prefix=prefix,
        endpoint=endpoint or store.endpoint,
        region=store.region,
        path_style=True,
        part_size=PART_SIZE,
        redirect_ttl=redirect_ttl,
        check_ttl=check_ttl,
        list_page_size=list_page_size,
    )


@pytest.fixture
async def storage(rgw: Rgw, aws_env: None, prefix: str) -> AsyncIterator[S3Storage]:
    made = make_storage(rgw, prefix)
    try:
        yield made
    finally:
        await made.aclose()


@pytest.fixture
def s3_settings(settings: Settings, rgw: Rgw, aws_env: None, prefix: str) -> Settings:
    """The tests' usual settings (SQLite and PostgreSQL), with blobs in the RGW bucket under a fresh prefix."""
    return settings.model_copy(
        update={
            "storage_url": f"s3://{BUCKET}/{prefix}",
            "s3_endpoint": AnyHttpUrl(rgw.endpoint),
            "s3_region": rgw.region,
            "s3_path_style": True,
            "s3_part_size": PART_SIZE,
            "max_upload_size": 16 * 1024 * 1024,
        }
    )
