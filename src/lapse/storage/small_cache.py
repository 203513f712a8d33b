"""The stats and bytes of recently sent small blobs, by storage key: a hot 1 KiB file costs no thread hop.

A stored blob never changes under its storage key (each upload gets a new random key), so an entry is never stale;
a deleted file is refused by its row (or, for a link remembered by links.recent, by the counting UPDATE) before
any of its bytes are sent. Only the event loop's thread touches this.
"""

from cachetools import LRUCache

from lapse.storage.base import BlobStat

MAX_BYTES = 16 * 1024 * 1024  # per worker, bodies and bookkeeping together
# What an entry costs besides its body: the key, the BlobStat, the bytes object and the cache's own records
# (~300 bytes measured with tracemalloc, rounded up). Counted, so that many tiny or empty files stay bounded too.
ENTRY_OVERHEAD = 512


def _footprint(stat: BlobStat) -> int:
    return ENTRY_OVERHEAD + len(stat.body or b"")


class SmallFileCache:
    def __init__(self, max_bytes: int = MAX_BYTES) -> None:
        self._entries: LRUCache[str, BlobStat] = LRUCache(maxsize=max_bytes, getsizeof=_footprint)

    def get(self, storage_key: str) -> BlobStat | None:
        return self._entries.get(storage_key)

    def keep(self, storage_key: str, stat: BlobStat) -> None:
        """Remember `stat` if it carries the whole blob's bytes; a large blob (no bytes) is not kept."""
        if stat.body is None or _footprint(stat) > self._entries.maxsize:
            return
        self._entries[storage_key] = stat
