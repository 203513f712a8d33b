"""Small files that hold secrets (the API key, a download's grant): written whole and private, or not at all."""

import os
import secrets
from pathlib import Path


def write_private(path: Path, text: str) -> None:
    """Write `text` to `path` with mode 0600, atomically: a reader sees the old file or the new, never half.

    The temp file is created 0600 (O_EXCL, so never someone else's file), so the secret is never readable by
    others, not even for a moment; the umask can only take permissions away.
    """
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(6)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as file:
            file.write(text)
            file.flush()
            os.fsync(file.fileno())
        tmp.replace(path)
    finally:
        tmp.unlink(missing_ok=True)
