"""Keyset pagination: newest first, with an opaque cursor naming the last row seen."""

import base64
import binascii
import json
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Select, tuple_
from sqlalchemy.orm import InstrumentedAttribute

from lapse.errors import InvalidInput

DEFAULT_LIMIT = 50
MAX_LIMIT = 200


def encode_cursor(created_at: datetime, row_id: str) -> str:
    raw = json.dumps([created_at.isoformat(), row_id]).encode()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def decode_cursor(cursor: str) -> tuple[datetime, str]:
    invalid = InvalidInput("The cursor is not valid; use the `next_cursor` of a previous page.")
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        created, row_id = json.loads(raw)
        created_at = datetime.fromisoformat(created)
        if created_at.tzinfo is None:  # ours always carry one; a naive one was made up
            raise invalid
        created_at = created_at.astimezone(UTC)  # as stored; an instant UTC cannot hold (year 1 at +05:00) overflows
    except (ValueError, TypeError, OverflowError, binascii.Error, RecursionError) as exc:
        raise invalid from exc
    return created_at, str(row_id)


def page(
    stmt: Select[Any],
    *,
    created_at: InstrumentedAttribute[datetime],
    row_id: InstrumentedAttribute[str],
    cursor: str | None,
    limit: int,
) -> Select[Any]:
    """Order newest first and start after the cursor; fetches one extra row to know whether more follow.

    The cursor is a row comparison, `(created_at, id) < (…, …)`: both planners read it as a range of the
    (…, created_at, id) indexes (an OR of the two cases they would not)."""
    if cursor:
        after_created, after_id = decode_cursor(cursor)
        stmt = stmt.where(tuple_(created_at, row_id) < tuple_(after_created, after_id))
    return stmt.order_by(created_at.desc(), row_id.desc()).limit(limit + 1)
