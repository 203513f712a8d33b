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
