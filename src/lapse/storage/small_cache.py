"""The path, stat and bytes of recently sent small files, by storage key: a hot 1 KiB file costs no thread hop
(nor the pathlib work of finding it, a twentieth of a small download's CPU).

Why by hand: functools.lru_cache bounds entries, not bytes, and cannot skip caching a large file's stat. A stored
blob never changes under its storage key (each upload gets a new random key: storage.local.LocalStorage), so an
entry is never stale; a deleted file is refused by its row (or, for a link remembered by links.recent, by the
counting UPDATE) before any of its bytes are sent. Only the event loop's thread touches this.
"""

import os
from collections import OrderedDict
from pathlib import Path

Opened = tuple[os.stat_result, bytes | None]
Kept = tuple[Path, os.stat_result, bytes]

MAX_BYTES = 16 * 1024 * 1024  # per worker


class SmallFileCache:
    def __init__(self, max_bytes: int = MAX_BYTES) -> None:
        self.max_bytes = max_bytes
        self._entries: OrderedDict[str, Kept] = OrderedDict()
        self._bytes = 0

    def get(self, storage_key: str) -> Kept | None:
        entry = self._entries.get(storage_key)
        if entry is not None:
            self._entries.move_to_end(storage_key)
        return entry

    def keep(self, storage_key: str, path: Path, opened: Opened) -> None:
        """Remember `opened` if it carries the whole file's bytes; a large file (no bytes) is not kept."""
        stat, body = opened
        if body is None or len(body) > self.max_bytes or storage_key in self._entries:
            return
        self._entries[storage_key] = (path, stat, body)
        self._bytes += len(body)
        while self._bytes > self.max_bytes:
            _, (_, _, dropped) = self._entries.popitem(last=False)
            self._bytes -= len(dropped)
