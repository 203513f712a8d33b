"""Settings, read from `LAPSE_*` environment variables and `.env`.

Built by `create_app` and the CLI, never at import time, so tests and several apps in one process each get their own.
"""

import contextlib
import os
import re
import secrets
from dataclasses import dataclass
from datetime import timedelta
from ipaddress import IPv4Network, IPv6Network, ip_network
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import unquote, urlsplit

from pydantic import AnyHttpUrl, BeforeValidator, Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from lapse.units import parse_duration, parse_size

Network = IPv4Network | IPv6Network


def _split_networks(value: Any) -> Any:
    if isinstance(value, str):
        return [ip_network(part.strip(), strict=False) for part in value.split(",") if part.strip()]
    return value


Duration = Annotated[timedelta, BeforeValidator(parse_duration)]
# A path prefix that goes out in a response header: no spaces, quotes or control characters, however configured.
_ACCEL_PREFIX = re.compile(r"/([A-Za-z0-9._~-]+/)+")
# What nginx sends on exactly as SigV4 signed it (it escapes fewer characters than SigV4 does).
_PROXY_SAFE_PREFIX = re.compile(r"[A-Za-z0-9._~/-]*")
Size = Annotated[int, BeforeValidator(parse_size), Field(gt=0)]
S3_MIN_PART = 5 * 1024**2  # S3 refuses smaller parts (but the last)
S3_MAX_PART = 5 * 1024**3
S3_MAX_PARTS = 10_000  # parts in one multipart upload
MAX_EXPIRES = 7 * 24 * 3600  # seconds: the longest presigned URL S3 signs
# S3's rules for a bucket's name (lower case, digits, dots, hyphens; 3 to 63 characters)
_BUCKET = re.compile(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]")
# A region name as the client library takes it (a host label, not all digits); it refuses others deep inside.
_REGION = re.compile(r"(?![0-9]+$)(?!-)[a-zA-Z0-9-]{1,63}(?<!-)")


@dataclass(frozen=True, slots=True)
class StorageLocation:
    """LAPSE_STORAGE_URL, read: a folder (`path`), or an S3 bucket and a key prefix (`bucket`, `prefix`)."""

    scheme: Literal["file", "s3"]
    path: Path | None = None
    bucket: str = ""
    prefix: str = ""


def parse_storage_url(value: str) -> StorageLocation:
    url = urlsplit(value)
    if url.scheme == "file":
        if url.netloc not in ("", "localhost") or not url.path.startswith("/") or url.query or url.fragment:
            raise ValueError(f"a folder is named file:///absolute/path (got {value!r})")
        return StorageLocation(scheme="file", path=Path(unquote(url.path)))
    if url.scheme == "s3":
        if not _BUCKET.fullmatch(url.netloc) or ".." in url.netloc:
            raise ValueError(f"a bucket is named s3://bucket-name/optional/prefix (got {value!r})")
        if url.query or url.fragment or "//" in url.path:
            raise ValueError(f"s3://bucket/prefix takes no query, fragment or empty folder (got {value!r})")
        prefix = url.path.strip("/")
        if any(folder in (".", "..") for folder in prefix.split("/")):
            # Clients resolve them in a URL's path (a browser following a redirect, nginx): not the object signed
            raise ValueError(f"s3://bucket/prefix takes no . or .. folder (got {value!r})")
        return StorageLocation(scheme="s3", bucket=url.netloc, prefix=f"{prefix}/" if prefix else "")
    raise ValueError(f"must be file:///path or s3://bucket/prefix (got {value!r})")


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="LAPSE_", env_file=".env", extra="ignore")

    data_dir: Path = Path("data")
    database_url: str = ""  # empty: a SQLite file in data_dir
    secret_key: SecretStr | None = None  # unset: generated once and kept in data_dir/secret_key (0600)
    public_url: AnyHttpUrl | None = None
    max_upload_size: Size = 1024**3
    default_ttl: Duration = timedelta(hours=1)
    max_ttl: Duration = timedelta(days=30)
    grant_ttl: Duration = timedelta(hours=1)
    file_grace: Duration = timedelta(hours=1)
    sweep_interval: Duration = timedelta(minutes=5)
    trusted_proxies: Annotated[list[Network], NoDecode, BeforeValidator(_split_networks)] = Field(
        default_factory=lambda: [ip_network("127.0.0.1/32"), ip_network("::1/128")]
    )
    redis_url: str | None = None
    password_attempts: int = Field(default=5, ge=1)
    password_window: Duration = timedelta(minutes=5)
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    # inline: the app sends the bytes; accel: it counts, then nginx sends them (X-Accel-Redirect; deploy/nginx);
    # redirect: it counts, then answers 302 to the store's presigned URL (inline where the store has none)
    delivery: Literal["inline", "accel", "redirect"] = "inline"
    accel_prefix: str = "/_lapse/blobs/"  # nginx's internal location for blobs (deploy/nginx/lapse.conf)
    # with S3 storage: nginx's internal location that proxies the store (deploy/nginx/lapse-s3-locations.conf)
    accel_s3_prefix: str = "/_lapse/s3/"
    # `lapse serve` (lapse.protocol): how long a connection may take to send a request's head, counted from its
    # start or its last answer; and open connections per worker (unset: half the process's descriptor limit).
    header_timeout: Annotated[Duration, Field(gt=timedelta(0))] = timedelta(seconds=10)
    max_connections: int | None = Field(default=None, ge=1)
    # Where blobs live: file:///path (default: data_dir/blobs) or s3://bucket/prefix (the `s3` extra; the
    # credentials come from the client library's usual chain: AWS_ACCESS_KEY_ID…, profiles, instance roles)
    storage_url: str = ""
    s3_endpoint: AnyHttpUrl | None = None  # unset: AWS's own endpoint for s3_region
    s3_region: str = "us-east-1"
    s3_path_style: bool = False  # http://host/bucket/key rather than http://bucket.host/key (most self-hosted stores)
    s3_part_size: Annotated[int, BeforeValidator(parse_size), Field(ge=S3_MIN_PART, le=S3_MAX_PART)] = 8 * 1024**2
    redirect_ttl: Duration = timedelta(seconds=60)  # a presigned URL's life (and never longer than the grant's)

    @field_validator("storage_url")
    @classmethod
    def _storage_url(cls, value: str) -> str:
        if value:
            parse_storage_url(value)
        return value

    @field_validator("redirect_ttl")
    @classmethod
    def _presignable(cls, value: timedelta) -> timedelta:
        if value > timedelta(seconds=MAX_EXPIRES):  # else every redirect under a grant that long fails with a 500
            raise ValueError("must be at most 7 days: S3 refuses to presign a URL for longer")
        return value

    @field_validator("s3_region")
    @classmethod
    def _region(cls, value: str) -> str:
        if not _REGION.fullmatch(value):
            raise ValueError(f"must be a region name such as eu-west-1 (got {value!r})")
        return value

    @field_validator("default_ttl", "max_ttl", "grant_ttl", "sweep_interval", "redirect_ttl")
    @classmethod
    def _positive(cls, value: timedelta) -> timedelta:
        if value <= timedelta(0):
            raise ValueError("must be positive")
        return value

    @field_validator("accel_prefix", "accel_s3_prefix")
    @classmethod
    def _accel_path(cls, value: str) -> str:
        if not _ACCEL_PREFIX.fullmatch(value):
            raise ValueError(f"must be a path that starts and ends with /, like /_lapse/blobs/ (got {value!r})")
        return value

    @field_validator("secret_key")
    @classmethod
    def _long_enough(cls, value: SecretStr | None) -> SecretStr | None:
        # Grants, sessions and CSRF tokens are HMACs under this key: a short one could be guessed offline.
        if value is not None and len(value.get_secret_value()) < 32:
            raise ValueError(
                "must be at least 32 characters (try: python3 -c 'import secrets; print(secrets.token_urlsafe(48))')"
            )
        return value

    @model_validator(mode="after")
    def _consistent(self) -> "Settings":
        if self.default_ttl > self.max_ttl:
            raise ValueError("LAPSE_DEFAULT_TTL is longer than LAPSE_MAX_TTL")
        if self.storage_url.startswith("s3:") and self.max_upload_size > S3_MAX_PARTS * self.s3_part_size:
            raise ValueError(
                f"LAPSE_MAX_UPLOAD_SIZE needs more than S3's {S3_MAX_PARTS} parts of LAPSE_S3_PART_SIZE: "
                "raise the part size"
            )
        s3_accel = self.delivery == "accel" and self.storage_url.startswith("s3:")
        if s3_accel and not _PROXY_SAFE_PREFIX.fullmatch(self.storage.prefix):
            raise ValueError(
                "with LAPSE_DELIVERY=accel, the prefix in LAPSE_STORAGE_URL may hold only letters, digits and "
                "- _ . ~ / (nginx would send other characters otherwise than they were signed)"
            )
        if not self.database_url:
            self.database_url = f"sqlite:///{self.data_dir.resolve() / 'lapse.db'}"
        return self

    @property
    def storage(self) -> StorageLocation:
        """Where blobs live (LAPSE_STORAGE_URL; unset: the data dir's blobs folder)."""
        if not self.storage_url:
            return StorageLocation(scheme="file", path=self.data_dir / "blobs")
        return parse_storage_url(self.storage_url)

    @property
    def sweep_grace(self) -> timedelta:
        """How long a file outlives its last live link: FILE_GRACE, and never less than a grant lives, so a
        transfer that may still resume keeps its bytes."""
        return max(self.file_grace, self.grant_ttl)

    def resolved_secret(self) -> bytes:
        """The server secret: the configured one, else the one kept in the data dir (made on first use)."""
        if self.secret_key is not None:
            return self.secret_key.get_secret_value().encode()
        return load_or_create_secret(self.data_dir / "secret_key")


def load_or_create_secret(path: Path) -> bytes:
    """Read the secret file, creating it once with mode 0600.

    The secret is written whole to a temp file and hard-linked into place, so workers starting together never
    read a half-written file and all end up with the same secret.
    """
    if path.exists():
        return _read_secret(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(8)}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(secrets.token_urlsafe(48).encode())
            f.flush()
            os.fsync(f.fileno())
        with contextlib.suppress(FileExistsError):  # another process won the race: use its secret
            os.link(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return _read_secret(path)


def _read_secret(path: Path) -> bytes:
    secret = path.read_bytes().strip()
    if len(secret) < 32:
        raise ValueError(f"{path} holds too short a secret; delete it or set LAPSE_SECRET_KEY")
    return secret
