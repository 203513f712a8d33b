"""The S3 tests' bucket, clients and settings. The real Ceph RGW itself (tests/s3/rgw.py: one per test session or
xdist worker, one bucket in it) and the fresh key prefix per test are fixtures of tests/conftest.py, since the
download tests outside this folder run on it too (their `storage_mode`)."""

from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import pytest
from pydantic import AnyHttpUrl

from lapse.settings import Settings
from lapse.storage.s3 import S3Storage
from tests.s3.rgw import Rgw

BUCKET = "lapse-test"
PART_SIZE = 5 * 1024 * 1024  # S3's smallest: multipart uploads with few bytes in RAM


def s3_client(store: Rgw) -> Any:
    """A plain (sync) botocore client, to look at the bucket behind the code under test's back."""
    return store.plain_client()


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


def s3_settings_for(settings: Settings, rgw: Rgw, prefix: str, **more: Any) -> Settings:
    """`settings` with blobs in the RGW bucket under `prefix` (and any other setting in `more`)."""
    return settings.model_copy(
        update={
            "storage_url": f"s3://{BUCKET}/{prefix}",
            "s3_endpoint": AnyHttpUrl(rgw.endpoint),
            "s3_region": rgw.region,
            "s3_path_style": True,
            "s3_part_size": PART_SIZE,
            **more,
        }
    )


@pytest.fixture
def s3_settings(settings: Settings, rgw: Rgw, aws_env: None, prefix: str) -> Settings:
    """The tests' usual settings (SQLite and PostgreSQL), with blobs in the RGW bucket under a fresh prefix."""
    return s3_settings_for(settings, rgw, prefix, max_upload_size=16 * 1024 * 1024)
