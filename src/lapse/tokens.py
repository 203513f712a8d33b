"""Secrets that travel: link tokens, API keys and grants. Only HMACs of tokens and keys are stored."""

import base64
import hashlib
import hmac
import re
import secrets
from datetime import datetime

_EXPIRY = re.compile(r"[0-9]{1,12}")
TOKEN_BYTES = 24  # 192 bits: far past the 128 that make guessing hopeless
KEY_PREFIX = "lapse_"


def new_id() -> str:
    """Public ids of files, links and keys: random, so they say nothing about how many exist."""
    return secrets.token_hex(10)


def new_link_token() -> str:
    return secrets.token_urlsafe(TOKEN_BYTES)


def new_api_key() -> str:
    return KEY_PREFIX + secrets.token_urlsafe(32)


_TOKEN_SHAPE = re.compile(r"[A-Za-z0-9_-]{16,64}")


def looks_like_token(value: str) -> bool:
    """Cheap shape check so a malformed token never reaches the database."""
    return _TOKEN_SHAPE.fullmatch(value) is not None


def same_secret(expected: str, presented: str) -> bool:
    """Constant-time equality for values that came from a client. `hmac.compare_digest` raises TypeError on
    non-ASCII str, which a hostile cookie or header would turn into a 500; bytes never do."""
    return hmac.compare_digest(expected.encode(), presented.encode("utf-8", "surrogateescape"))


def hash_secret(server_secret: bytes, value: str) -> str:
    """HMAC-SHA256, so a stolen database cannot be matched against guessed tokens without the server secret."""
    return hmac.new(server_secret, value.encode(), hashlib.sha256).hexdigest()


class GrantSigner:
    """A grant lets one link's holder resume with Range requests for a while without spending a download.

    Format: `<link_id>.<expiry unix seconds>.<base64url HMAC>`; it names the link, so a grant for one link is
    worthless on another.
    """

    def __init__(self, server_secret: bytes) -> None:
        self._key = hmac.new(server_secret, b"lapse-grant-v1", hashlib.sha256).digest()

    def _mac(self, link_id: str, expires: int) -> str:
        digest = hmac.new(self._key, f"{link_id}.{expires}".encode(), hashlib.sha256).digest()
        return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()

    def sign(self, link_id: str, expires_at: datetime) -> str:
        expires = int(expires_at.timestamp())
        return f"{link_id}.{expires}.{self._mac(link_id, expires)}"

    def verify(self, grant: str, *, link_id: str, now: datetime) -> bool:
        parts = grant.split(".")
        # ASCII digits only, and few: str.isdigit() also takes "²", which int() refuses.
        if len(parts) != 3 or parts[0] != link_id or not _EXPIRY.fullmatch(parts[1]):
            return False
        expires = int(parts[1])
        if expires <= now.timestamp():
            return False
        return same_secret(self._mac(link_id, expires), parts[2])
