"""Where bytes live. `base.Storage` is the protocol a backend implements; `local.LocalStorage` the folder backend,
`s3.S3Storage` an S3-compatible bucket (the `s3` extra)."""

from lapse.settings import Settings
from lapse.storage.base import BlobInfo, BlobStat, LocalFile, OpenBlob, Storage, StoredBlob, new_key
from lapse.storage.local import LocalStorage

__all__ = [
    "BlobInfo",
    "BlobStat",
    "LocalFile",
    "LocalStorage",
    "OpenBlob",
    "Storage",
    "StoredBlob",
    "new_key",
    "open_storage",
]


def open_storage(settings: Settings) -> Storage:
    """The backend LAPSE_STORAGE_URL names: a folder (by default the data dir's blobs), or an S3 bucket."""
    where = settings.storage
    if where.path is not None:
        return LocalStorage(where.path)
    try:
        from lapse.storage.s3 import S3Storage  # aiobotocore: only for those who use it
    except ImportError as exc:
        raise ValueError(f"LAPSE_STORAGE_URL is an S3 bucket: install lapse[s3] ({exc})") from exc
    return S3Storage(
        bucket=where.bucket,
        prefix=where.prefix,
        endpoint=str(settings.s3_endpoint).rstrip("/") if settings.s3_endpoint else None,
        region=settings.s3_region,
        path_style=settings.s3_path_style,
        part_size=settings.s3_part_size,
        redirect_ttl=settings.redirect_ttl,
    )
