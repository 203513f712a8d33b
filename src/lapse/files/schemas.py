from datetime import datetime

from pydantic import BaseModel, ConfigDict

from lapse.links.schemas import LinkRead


class FileRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: str
    name: str
    size: int
    sha256: str
    content_type: str
    created_at: datetime


class FileUploaded(FileRead):
    link: LinkRead | None = None


class FileList(BaseModel):
    items: list[FileRead]
    next_cursor: str | None
