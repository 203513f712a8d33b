"""Where bytes live. `base.Storage` is the protocol; `local.LocalStorage` the folder backend."""

from pathlib import Path

from lapse.storage.base import BlobInfo, Storage, StoredBlob
from lapse.storage.local import LocalStorage

__all__ = ["BlobInfo", "LocalStorage", "Storage", "StoredBlob", "open_storage"]


def open_storage(data_dir: Path) -> Storage:
    return LocalStorage(data_dir / "blobs")
