from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field


class KeyCreate(BaseModel):
    name: str = Field(min_length=1, max_length=200)
    admin: bool = False


class KeyRead(BaseModel):
    model_config = ConfigDict(from_attributes=True, validate_by_name=True, validate_by_alias=True)

    id: str
    name: str
    admin: bool = Field(validation_alias="is_admin")
    created_at: datetime
    last_used_at: datetime | None
    revoked_at: datetime | None


class KeyCreated(KeyRead):
    key: str = Field(description="The API key itself. Shown only this once; only its hash is kept.")

    @classmethod
    def of(cls, key: object, raw: str) -> "KeyCreated":
        return cls.model_validate({**KeyRead.model_validate(key).model_dump(), "key": raw})


class KeyList(BaseModel):
    items: list[KeyRead]
