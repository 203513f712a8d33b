"""Where bytes live. `base.Storage` is the protocol a backend implements; `local.LocalStorage` the folder backend."""

from pathlib import Path

from lapse.storage.base import BlobInfo, BlobStat, LocalFile, OpenBlob, Storage, StoredBlob
from lapse.storage.local import LocalStorage

__all__ = ["BlobInfo", "BlobStat", "LocalFile", "LocalStorage", "OpenBlob", "Storage", "StoredBlob", "open_storage"]


def open_storage(data_dir: Path) -> Storage:
    """The backend the settings name; today the local folder `data_dir/blobs`."""
    return LocalStorage(data_dir / "blobs")
