"""LAPSE_STORAGE_URL and the S3 settings: read, checked, and turned into the backend they name."""

from datetime import timedelta
from pathlib import Path

import pytest
from pydantic import ValidationError

from lapse.settings import Settings
from lapse.storage import LocalStorage, open_storage
from lapse.storage.s3 import S3Storage


def settings(tmp_path: Path, **values: object) -> Settings:
    return Settings(_env_file=None, data_dir=tmp_path / "data", **values)  # type: ignore[call-arg, arg-type]


def test_by_default_blobs_live_in_the_data_dir(tmp_path: Path) -> None:
    storage = open_storage(settings(tmp_path))
    assert isinstance(storage, LocalStorage)
    assert storage.root == tmp_path / "data" / "blobs"


def test_a_file_url_names_the_folder(tmp_path: Path) -> None:
    storage = open_storage(settings(tmp_path, storage_url=f"file://{tmp_path}/else%20where"))
    assert isinstance(storage, LocalStorage)
    assert storage.root == tmp_path / "else where"


def test_an_s3_url_names_bucket_and_prefix(tmp_path: Path) -> None:
    chosen = settings(
        tmp_path,
        storage_url="s3://my-bucket/lapse/blobs/",
        s3_endpoint="http://127.0.0.1:9000/",
        s3_region="eu-west-3",
        s3_path_style=True,
        s3_part_size="16MiB",
        redirect_ttl="30s",
    )
    storage = open_storage(chosen)
    assert isinstance(storage, S3Storage)
    assert (storage.bucket, storage.prefix, storage.endpoint) == ("my-bucket", "lapse/blobs/", "http://127.0.0.1:9000")
    assert (storage.region, storage.part_size, storage.redirect_ttl) == (
        "eu-west-3",
        16 * 1024**2,
        timedelta(seconds=30),
    )
    bare = open_storage(settings(tmp_path, storage_url="s3://my-bucket"))
    assert isinstance(bare, S3Storage)
    assert (bare.prefix, bare.endpoint, bare.part_size) == ("", None, 8 * 1024**2)
    assert bare.redirect_ttl == timedelta(seconds=60)


@pytest.mark.parametrize(
    ("values", "says"),
    [
        ({"storage_url": "s3://a/x"}, "a bucket is named"),
        ({"storage_url": "s3://UPPER/x"}, "a bucket is named"),
        ({"storage_url": "s3://bucket/a//b"}, "no query, fragment or empty folder"),
        ({"storage_url": "s3://bucket/a/../b"}, "no . or .. folder"),
        ({"storage_url": "s3://bucket/./b"}, "no . or .. folder"),
        ({"storage_url": "s3://bucket/.."}, "no . or .. folder"),
        ({"s3_region": "eu west"}, "must be a region name"),
        ({"s3_region": ""}, "must be a region name"),
        ({"s3_region": "-eu"}, "must be a region name"),
        ({"storage_url": "file://host/path"}, "file:///absolute/path"),
        ({"storage_url": "/just/a/path"}, "must be file:///path or s3://bucket/prefix"),
        ({"s3_part_size": "4MiB"}, "greater than or equal to 5242880"),
        ({"redirect_ttl": "0s"}, "must be positive"),
        ({"redirect_ttl": "8d"}, "at most 7 days"),
        ({"s3_endpoint": "not a url"}, "URL"),
        ({"storage_url": "s3://bucket", "max_upload_size": "100GiB"}, "more than S3's 10000 parts"),
        ({"storage_url": "s3://bucket/a+b", "delivery": "accel"}, "may hold only letters, digits"),
        ({"storage_url": "s3://bucket/a%20b", "delivery": "accel"}, "may hold only letters, digits"),
        ({"accel_s3_prefix": "/_lapse/s3"}, "starts and ends with /"),
    ],
)
def test_bad_values_are_refused(tmp_path: Path, values: dict[str, object], says: str) -> None:
    with pytest.raises(ValidationError, match=says):
        settings(tmp_path, **values)


def test_a_large_upload_limit_fits_with_larger_parts(tmp_path: Path) -> None:
    chosen = settings(tmp_path, storage_url="s3://bucket", max_upload_size="100GiB", s3_part_size="16MiB")
    assert chosen.max_upload_size == 100 * 1024**3
    assert settings(tmp_path, max_upload_size="100GiB").max_upload_size == 100 * 1024**3  # a folder has no such cap


def test_accel_on_s3_takes_a_prefix_nginx_sends_as_signed(tmp_path: Path) -> None:
    """nginx escapes fewer characters than SigV4: other prefixes are refused for accel, and only for accel."""
    chosen = settings(tmp_path, storage_url="s3://bucket/Lapse_blobs-1.0~x/", delivery="accel")
    assert (chosen.storage.prefix, chosen.accel_s3_prefix) == ("Lapse_blobs-1.0~x/", "/_lapse/s3/")
    assert settings(tmp_path, storage_url="s3://bucket/a+b", delivery="redirect").storage.prefix == "a+b/"
