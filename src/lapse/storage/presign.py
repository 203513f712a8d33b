"""AWS Signature Version 4 in the query string, for presigned GETs: the one S3 call made on every redirected
download, so it is done here in a few HMACs rather than through the client library's request machinery (several
times the CPU per URL). Checked against botocore's own output in tests/s3/test_presign.py.
"""

import hashlib
import hmac
from dataclasses import dataclass
from datetime import UTC, datetime
from urllib.parse import quote

from lapse.settings import MAX_EXPIRES  # S3 refuses longer presigned URLs

ALGORITHM = "AWS4-HMAC-SHA256"


@dataclass(frozen=True, slots=True)
class Credentials:
    access_key: str
    secret_key: str
    token: str | None = None


def _encode(value: str) -> str:
    """RFC 3986 percent-encoding, as SigV4 wants it (only A-Z a-z 0-9 - _ . ~ left as they are)."""
    return quote(value, safe="-_.~")


class Presigner:
    """Presigned GET URLs for objects of one bucket at one endpoint (`base` is scheme://host[:port], plus
    `/bucket` for path-style addressing)."""

    def __init__(self, *, base: str, region: str) -> None:
        scheme, _, rest = base.partition("://")
        host, slash, path = rest.partition("/")
        self.scheme = scheme
        self.host = host
        self.base_path = (slash + path).rstrip("/")
        self.region = region
        self._keys: dict[tuple[str, str], bytes] = {}  # (secret, day) → signing key: one derivation a day

    def _signing_key(self, secret: str, day: str) -> bytes:
        key = self._keys.get((secret, day))
        if key is None:
            key = ("AWS4" + secret).encode()
            for part in (day, self.region, "s3", "aws4_request"):
                key = hmac.new(key, part.encode(), hashlib.sha256).digest()
            self._keys = {(secret, day): key}  # older days are never asked for again
        return key

    def url(
        self,
        key: str,
        *,
        credentials: Credentials,
        expires_in: int,
        now: datetime,
        params: dict[str, str] | None = None,
    ) -> str:
        """A URL for GET `key`, valid `expires_in` seconds from `now`; `params` (e.g. response-content-type) are
        signed into it, so the store answers with them and nobody can change them."""
        if not 1 <= expires_in <= MAX_EXPIRES:
            raise ValueError(f"expires_in must be 1 to {MAX_EXPIRES} seconds")
        stamp = now.astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")
        day = stamp[:8]
        scope = f"{day}/{self.region}/s3/aws4_request"
        query = {
            "X-Amz-Algorithm": ALGORITHM,
            "X-Amz-Credential": f"{credentials.access_key}/{scope}",
            "X-Amz-Date": stamp,
            "X-Amz-Expires": str(expires_in),
            "X-Amz-SignedHeaders": "host",
            **(params or {}),
        }
        if credentials.token is not None:
            query["X-Amz-Security-Token"] = credentials.token
        canonical_query = "&".join(f"{_encode(k)}={_encode(v)}" for k, v in sorted(query.items()))
        path = f"{self.base_path}/{quote(key, safe='/-_.~')}"
        canonical = f"GET\n{path}\n{canonical_query}\nhost:{self.host}\n\nhost\nUNSIGNED-PAYLOAD"
        to_sign = f"{ALGORITHM}\n{stamp}\n{scope}\n{hashlib.sha256(canonical.encode()).hexdigest()}"
        signature = hmac.new(self._signing_key(credentials.secret_key, day), to_sign.encode(), hashlib.sha256)
        return f"{self.scheme}://{self.host}{path}?{canonical_query}&X-Amz-Signature={signature.hexdigest()}"
