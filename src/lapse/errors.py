"""Domain errors. They carry no HTTP: `api/problems.py` maps them to problem+json, the CLI to messages.

LapseError
├── NotFound               unknown id or token, or one that belongs to another owner
├── Gone                   link expired, exhausted, revoked, or its file deleted (`reason` says which)
├── Unauthorized           missing, unknown or revoked API key
├── Forbidden              a key without admin rights asked for an admin action
├── NotAllowed             a method this resource does not take here; `allow` lists those it does
├── PasswordRequired       password link without (or with a wrong) password
├── RateLimited            too many attempts; `retry_after` seconds
├── InvalidInput           a request the schema accepted but the rules do not
├── TooLarge               upload over LAPSE_MAX_UPLOAD_SIZE
├── UnsupportedMedia       upload body of a type we do not take
└── Unavailable            database or storage unreachable; `retry_after` seconds
    └── InsufficientStorage  the disk is full
"""

from enum import StrEnum


class LapseError(Exception):
    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class NotFound(LapseError):
    pass


class GoneReason(StrEnum):
    EXPIRED = "expired"
    EXHAUSTED = "exhausted"
    REVOKED = "revoked"
    FILE_DELETED = "file_deleted"


class Gone(LapseError):
    def __init__(self, reason: GoneReason) -> None:
        super().__init__(f"This link is no longer available: {reason.value.replace('_', ' ')}.")
        self.reason = reason


class Unauthorized(LapseError):
    pass


class Forbidden(LapseError):
    pass


class NotAllowed(LapseError):
    def __init__(self, message: str, *, allow: str) -> None:
        super().__init__(message)
        self.allow = allow


class PasswordRequired(LapseError):
    pass


class RateLimited(LapseError):
    def __init__(self, message: str, *, retry_after: int) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class InvalidInput(LapseError):
    pass


class TooLarge(LapseError):
    pass


class UnsupportedMedia(LapseError):
    pass


class Unavailable(LapseError):
    def __init__(self, message: str, *, retry_after: int = 5) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class InsufficientStorage(Unavailable):
    pass
