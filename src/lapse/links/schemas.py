from datetime import datetime
from enum import StrEnum
from typing import Self

from pydantic import AwareDatetime, BaseModel, Field, model_validator


class LinkState(StrEnum):
    ACTIVE = "active"
    EXPIRED = "expired"
    EXHAUSTED = "exhausted"
    REVOKED = "revoked"
    FILE_DELETED = "file_deleted"


class _LinkTerms(BaseModel):
    """What a link's owner may set at creation and change later."""

    expires_in: int | None = Field(default=None, gt=0, description="Seconds from now; capped at the server maximum.")
    expires_at: AwareDatetime | None = Field(default=None, description="Absolute expiry; capped likewise.")
    max_downloads: int | None = Field(default=None, ge=1, le=2**31 - 1, description="null: unlimited")
    note: str | None = Field(default=None, max_length=1000)

    @model_validator(mode="after")
    def _one_expiry(self) -> Self:
        if self.expires_in is not None and self.expires_at is not None:
            raise ValueError("give expires_in or expires_at, not both")
        return self


class LinkCreate(_LinkTerms):
    password: str | None = Field(default=None, min_length=1, max_length=1024)


class LinkUpdate(_LinkTerms):
    """Only the fields sent change; `max_downloads: null` makes the link unlimited."""


class LinkRead(BaseModel):
    id: str
    file_id: str | None
    url: str | None = Field(
        default=None,
        description="The download itself (each GET spends one download). Only in the answer that created the link.",
    )
    page_url: str | None = Field(
        default=None,
        description="The link's landing page, which never spends a download: share this one where chat or mail "
        "previews could fetch the link. Only in the answer that created the link.",
    )
    expires_at: datetime
    max_downloads: int | None
    downloads: int
    remaining: int | None = Field(description="Downloads left; null when unlimited.")
    state: LinkState
    has_password: bool
    note: str | None
    created_at: datetime
    revoked_at: datetime | None


class LinkList(BaseModel):
    items: list[LinkRead]
    next_cursor: str | None
