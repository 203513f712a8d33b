"""Secrets that travel: link tokens, API keys, grants and the web page's signed values. Only HMACs of tokens and
keys are stored."""

import functools
import hashlib
import hmac
import re
import secrets
from datetime import UTC, datetime

from itsdangerous import BadSignature, Signer

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


class PurposeSigner:
    """Dotted fields plus an HMAC-SHA256, for one purpose only: grants, web sessions, sign-in forms and CSRF
    tokens each sign under a salt of their own, so a value of one kind never verifies as another.

    itsdangerous does the signing (key derivation, base64url, constant-time compare) rather than an HMAC scheme
    per use; expiry stays with each caller, whose rules differ (a grant names its end, a session its start).
    """

    def __init__(self, server_secret: bytes, purpose: str) -> None:
        # itsdangerous's "hmac" key derivation, done once here: it would redo it on every call, and a grant is
        # checked on every download.
        key = hmac.new(server_secret, f"lapse.{purpose}.v2".encode(), hashlib.sha256).digest()
        self._signer = Signer(key, key_derivation="none", digest_method=hashlib.sha256)

    def sign(self, *fields: str) -> str:
        return self._signer.sign(".".join(fields)).decode()

    def unsign(self, value: str, *, fields: int) -> list[str] | None:
        """The fields, if the value is ours, for this purpose, unaltered and has that many; else None."""
        if not value.isascii():  # every value we sign is; anything else is forged (and want_bytes could raise)
            return None
        try:
            parts = self._signer.unsign(value).decode().split(".")
        except BadSignature:
            return None
        return parts if len(parts) == fields else None

    def mac(self, value: str) -> str:
        """Just the signature, for a token that stands for a value the server already knows (CSRF)."""
        return self._signer.get_signature(value).decode()

    def verify_mac(self, value: str, presented: str) -> bool:
        return presented.isascii() and self._signer.verify_signature(value, presented)


@functools.lru_cache(maxsize=32)  # a few purposes per secret; deriving the signer on every request is waste
def purpose_signer(server_secret: bytes, purpose: str) -> PurposeSigner:
    return PurposeSigner(server_secret, purpose)


class GrantSigner:
    """A grant lets one link's holder resume with Range requests for a while without spending a download.

    Format: `<link_id>.<expiry unix seconds>.<signature>`; it names the link, so a grant for one link is
    worthless on another.
    """

    def __init__(self, server_secret: bytes) -> None:
        self._signer = purpose_signer(server_secret, "grant")

    def sign(self, link_id: str, expires_at: datetime) -> str:
        """A grant for the link that ends at `ends(expires_at)`."""
        return self._signer.sign(link_id, str(int(expires_at.timestamp())))

    @staticmethod
    def ends(expires_at: datetime) -> datetime:
        """When a grant signed to expire at `expires_at` ends: the grant carries whole seconds."""
        return datetime.fromtimestamp(int(expires_at.timestamp()), UTC)

    def verify(self, grant: str, *, link_id: str, now: datetime) -> bool:
        return self.valid_until(grant, link_id=link_id, now=now) is not None

    def valid_until(self, grant: str, *, link_id: str, now: datetime) -> datetime | None:
        """When the grant ends, if it is a live grant for this link; else None."""
        parts = self._signer.unsign(grant, fields=2)
        # ASCII digits only, and few: str.isdigit() also takes "²", which int() refuses.
        if parts is None or parts[0] != link_id or not _EXPIRY.fullmatch(parts[1]):
            return None
        until = datetime.fromtimestamp(int(parts[1]), UTC)
        return until if until > now else None
