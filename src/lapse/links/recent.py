"""Links found live lately, by token hash: a popular link's counted download skips the lookup's thread hop.

Safe because the row is only trusted where it cannot be stale or where the database checks it again:

- what never changes after a link is made (`TRUSTED_COLUMNS`, and its file's) — no route can change them, and
  tests/test_invariants.py fails the day one can;
- whether it is live, only for a GET that will be counted: the counting UPDATE (links.repository.REDEEM)
  re-checks revocation, expiry, the download limit and the file's deletion on the newest row, so a stale entry
  can only lead to a refusal (then answered from a fresh read), never to bytes the link no longer allows.

Everything else reads the row afresh: HEAD (it reports the downloads left), a grant (it outlives expiry and the
last download, but not a revocation, and nothing re-checks that), and any entry that no longer looks live.
Only the event loop's thread touches this.
"""

from cachetools import LRUCache

from lapse.db.models import File, Link

MAX_ENTRIES = 1024  # per worker; a Link and its File are ~2 KiB together
# Read from a remembered link without asking the database again.
TRUSTED_COLUMNS = frozenset({"id", "file_id", "token_hash", "password_hash", "owner_id", "created_at"})
TRUSTED_FILE_COLUMNS = frozenset({"id", "name", "size", "sha256", "content_type", "storage_key", "created_at"})


class RecentLinks:
    def __init__(self, max_entries: int = MAX_ENTRIES) -> None:
        self._entries: LRUCache[str, tuple[Link, File]] = LRUCache(maxsize=max_entries)

    def get(self, token_hash: str) -> tuple[Link, File] | None:
        return self._entries.get(token_hash)

    def keep(self, token_hash: str, link: Link, file: File) -> None:
        self._entries[token_hash] = (link, file)

    def forget(self, token_hash: str) -> None:
        self._entries.pop(token_hash, None)
