"""Links found live lately, by token hash: a popular link's counted download skips the lookup's thread hop.

Safe because the row is only trusted where it cannot be stale or where the database checks it again:

- what never changes after a link is made — its id, its file's id, name, type, sha256, storage key and creation
  date, and its password hash (none of them can be changed through the API);
- whether it is live, only for a GET that will be counted: `REDEEM`'s conditional UPDATE re-checks revocation,
  expiry, the download limit and the file's deletion on the newest row, so a stale entry can only lead to a
  refusal (then answered from a fresh read), never to bytes the link no longer allows.

Everything else reads the row afresh: HEAD (it reports the downloads left), a grant (it outlives expiry and the
last download, but not a revocation, and nothing re-checks that), and any entry that no longer looks live.
Only the event loop's thread touches this. Why by hand: as `storage.small_cache`, entries must be dropped on demand.
"""

from collections import OrderedDict

from lapse.db.models import File, Link

MAX_ENTRIES = 1024  # per worker; a Link and its File are ~2 KiB together


class RecentLinks:
    def __init__(self, max_entries: int = MAX_ENTRIES) -> None:
        self.max_entries = max_entries
        self._entries: OrderedDict[str, tuple[Link, File]] = OrderedDict()

    def get(self, token_hash: str) -> tuple[Link, File] | None:
        entry = self._entries.get(token_hash)
        if entry is not None:
            self._entries.move_to_end(token_hash)
        return entry

    def keep(self, token_hash: str, link: Link, file: File) -> None:
        self._entries[token_hash] = (link, file)
        self._entries.move_to_end(token_hash)
        if len(self._entries) > self.max_entries:
            self._entries.popitem(last=False)

    def forget(self, token_hash: str) -> None:
        self._entries.pop(token_hash, None)
