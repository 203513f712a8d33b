"""Tables. Ids are random hex (tokens.new_id); tokens and keys are stored only as HMACs."""

from datetime import datetime

from sqlalchemy import BigInteger, Boolean, CheckConstraint, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from lapse.db.base import Base, UTCDateTime, utc_now
from lapse.tokens import new_id


class ApiKey(Base):
    __tablename__ = "api_keys"

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    name: Mapped[str] = mapped_column(String(200))
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    is_admin: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utc_now)
    last_used_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)


class File(Base):
    __tablename__ = "files"
    # Each listing's filter and order (pagination.page): an index range, never a sort of the table.
    __table_args__ = (
        Index("ix_files_owner_id_created_at_id", "owner_id", "created_at", "id"),
        Index("ix_files_created_at_id", "created_at", "id"),
    )

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    owner_id: Mapped[str] = mapped_column(ForeignKey("api_keys.id"))
    name: Mapped[str] = mapped_column(String(255))
    size: Mapped[int] = mapped_column(BigInteger)
    sha256: Mapped[str] = mapped_column(String(64))
    content_type: Mapped[str] = mapped_column(String(255))
    storage_key: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utc_now)


class Link(Base):
    __tablename__ = "links"
    __table_args__ = (
        Index("ix_links_owner_id_created_at_id", "owner_id", "created_at", "id"),
        Index("ix_links_file_id_created_at_id", "file_id", "created_at", "id"),
        Index("ix_links_created_at_id", "created_at", "id"),
        CheckConstraint("downloads >= 0", name="downloads_non_negative"),
        CheckConstraint("max_downloads IS NULL OR max_downloads >= 1", name="max_downloads_positive"),
    )

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    # A deleted file leaves its links behind with file_id NULL, so their tokens answer 410, not 404.
    file_id: Mapped[str | None] = mapped_column(ForeignKey("files.id", ondelete="SET NULL"))
    owner_id: Mapped[str] = mapped_column(ForeignKey("api_keys.id"))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    max_downloads: Mapped[int | None] = mapped_column(Integer, default=None)
    downloads: Mapped[int] = mapped_column(Integer, default=0)
    # Set by the redemption that used the last download: the sweeper's grace period counts from it.
    exhausted_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    password_hash: Mapped[str | None] = mapped_column(String(255), default=None)
    note: Mapped[str | None] = mapped_column(Text, default=None)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utc_now)


class UploadIntent(Base):
    """An upload in progress, committed before its first byte is stored: if the process dies, the sweeper finds
    the key here once the heartbeat has gone stale and aborts whatever the storage holds under it."""

    __tablename__ = "upload_intents"
    __table_args__ = (Index("ix_upload_intents_heartbeat_at", "heartbeat_at"),)

    storage_key: Mapped[str] = mapped_column(String(64), primary_key=True)
    started_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utc_now)
    heartbeat_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utc_now)


class BlobTombstone(Base):
    """A blob whose file row is gone, written in the same transaction as the row's DELETE (the delete outbox): the
    bytes are removed after the commit, and a crash in between only delays it to the sweeper's next pass."""

    __tablename__ = "blob_tombstones"
    __table_args__ = (Index("ix_blob_tombstones_due_at", "due_at"),)

    storage_key: Mapped[str] = mapped_column(String(64), primary_key=True)
    due_at: Mapped[datetime] = mapped_column(UTCDateTime)


class Lease(Base):
    """A named job that one replica at a time may run (the sweeper's safety-net listing): `holder` took it, and
    nobody takes it again before `until`."""

    __tablename__ = "leases"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    holder: Mapped[str] = mapped_column(String(64))
    until: Mapped[datetime] = mapped_column(UTCDateTime)
