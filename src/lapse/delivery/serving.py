"""HTTP details of sending a stored file: safe headers, Content-Disposition, preconditions and Range.

Starlette's FileResponse does the byte work (Range, multipart/byteranges, HEAD, pathsend). It falls short of
RFC 9110 in three places we fix around it: it has no If-None-Match / If-Modified-Since (304), it answers 400
where a malformed Range must be ignored, and its `filename*` has no ASCII fallback. So the request is judged
here first, and FileResponse only ever sees a Range it will accept as we decided.
"""

import functools
import re
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from email.utils import format_datetime, parsedate_to_datetime
from urllib.parse import quote

from starlette.datastructures import Headers

from lapse.content_types import served_type as served_type  # re-exported: the download modules call it here

MAX_RANGES = 16  # more, or a malformed set, and the whole file is sent (CVE-2011-3192)
MAX_RANGE_HEADER = 1024

SAFE_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "Content-Security-Policy": "sandbox",
    "Cache-Control": "private, no-store",
    "Referrer-Policy": "no-referrer",
    "X-Robots-Tag": "noindex, nofollow",
}

# RFC 8187 attr-char: what may stand literally in `filename*`; everything else is percent-encoded.
_ATTR_CHARS = "!#$&+-.^_`|~"
_NOT_TOKEN_SAFE = re.compile(r'[^\x20-\x7e]|["\\;%/]')


@functools.lru_cache(maxsize=4096)  # pure, and the same few names are served again and again
def content_disposition(filename: str) -> str:
    """`attachment; filename="ascii"; filename*=UTF-8''utf8` per RFC 6266 §4.3 and RFC 8187, never interpolated raw."""
    name = unicodedata.normalize("NFC", filename).replace("/", "_").replace("\\", "_")
    fallback = _NOT_TOKEN_SAFE.sub("_", name).strip() or "download"
    encoded = quote(name.encode("utf-8"), safe=_ATTR_CHARS)
    return f"attachment; filename=\"{fallback}\"; filename*=UTF-8''{encoded}"


@functools.lru_cache(maxsize=4096)  # pure; a file's dates repeat on every download of it
def http_date(moment: datetime) -> str:
    return format_datetime(moment.replace(microsecond=0), usegmt=True)


@dataclass(frozen=True, slots=True)
class Representation:
    etag: str  # strong: the content's sha256, so every process and replica agrees
    last_modified: datetime
    size: int

    @property
    def last_modified_header(self) -> str:
        return http_date(self.last_modified)


class Decision:
    """What to answer before (and instead of) sending bytes."""


@dataclass(frozen=True, slots=True)
class NotModified(Decision):
    pass


@dataclass(frozen=True, slots=True)
class PreconditionFailed(Decision):
    pass


@dataclass(frozen=True, slots=True)
class RangeNotSatisfiable(Decision):
    pass


@dataclass(frozen=True, slots=True)
class Send(Decision):
    ranges: list[tuple[int, int]] | None  # inclusive byte positions; None: the whole file


def _etags(header: str) -> list[str]:
    return [tag.strip() for tag in header.split(",") if tag.strip()]


def _strong_match(header: str, etag: str) -> bool:
    return any(tag == "*" or tag == etag for tag in _etags(header))


def _weak_match(header: str, etag: str) -> bool:
    return any(tag == "*" or tag.removeprefix("W/") == etag for tag in _etags(header))


def _parse_date(value: str) -> datetime | None:
    try:
        parsed = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError, OverflowError):  # a year past datetime's range overflows
        return None
    return parsed if parsed.tzinfo is not None else None


def evaluate(method: str, headers: Headers, rep: Representation) -> Decision:
    """RFC 9110 §13.2.2, in its order: If-Match, If-Unmodified-Since, If-None-Match, If-Modified-Since, Range."""
    last_modified = rep.last_modified.replace(microsecond=0)
    if (if_match := headers.get("if-match")) is not None:
        if not _strong_match(if_match, rep.etag):
            return PreconditionFailed()
    elif (ius := headers.get("if-unmodified-since")) is not None:
        since = _parse_date(ius)
        if since is not None and last_modified > since:
            return PreconditionFailed()
    if (inm := headers.get("if-none-match")) is not None:
        if _weak_match(inm, rep.etag):
            return NotModified()
    elif (ims := headers.get("if-modified-since")) is not None:
        since = _parse_date(ims)
        if since is not None and last_modified <= since:
            return NotModified()
    if method != "GET" or (range_header := headers.get("range")) is None:
        return Send(ranges=None)
    if (if_range := headers.get("if-range")) is not None and not _if_range_matches(if_range.strip(), rep):
        return Send(ranges=None)
    return parse_range(range_header, rep.size)


def _if_range_matches(if_range: str, rep: Representation) -> bool:
    """Only a strong validator counts (§13.1.5): the exact ETag, or the exact Last-Modified date."""
    if if_range.startswith('"') or if_range.startswith("W/"):
        return if_range == rep.etag
    return if_range == rep.last_modified_header


_RANGE_SPEC = re.compile(r"^(\d*)\s*-\s*(\d*)$")


def parse_range(header: str, size: int) -> Decision:
    """A byte-range set → the ranges to send, 416 when none can be, or the whole file when it must be ignored."""
    unit, _, spec = header.partition("=")
    if unit.strip().lower() != "bytes" or not spec.strip() or len(header) > MAX_RANGE_HEADER:
        return Send(ranges=None)  # unknown unit or malformed: ignore (§14.2)
    ranges: list[tuple[int, int]] = []
    parts = [part.strip() for part in spec.split(",") if part.strip()]
    if not parts or len(parts) > MAX_RANGES:
        return Send(ranges=None)
    for part in parts:
        match = _RANGE_SPEC.match(part)
        if match is None or match.group(0) == "-" or not (match.group(1) or match.group(2)):
            return Send(ranges=None)
        first, last = match.group(1), match.group(2)
        if first:
            start = int(first)
            if last and int(last) < start:
                return Send(ranges=None)  # inverted: invalid, so ignored
            if start >= size:
                continue  # unsatisfiable on its own; others may still be
            end = min(int(last), size - 1) if last else size - 1
        else:
            suffix = int(last)
            if suffix == 0 or size == 0:
                continue
            start, end = max(size - suffix, 0), size - 1
        ranges.append((start, end))
    if not ranges:
        return RangeNotSatisfiable()
    return Send(ranges=ranges)


def range_header(ranges: list[tuple[int, int]]) -> str:
    """The canonical form handed to FileResponse, which then sends exactly these ranges."""
    return "bytes=" + ",".join(f"{start}-{end}" for start, end in ranges)


def representation_headers(rep: Representation, *, filename: str, content_type: str) -> dict[str, str]:
    return {
        **SAFE_HEADERS,
        "Content-Type": served_type(content_type),
        "Content-Disposition": content_disposition(filename),
        "ETag": rep.etag,
        "Last-Modified": rep.last_modified_header,
        "Accept-Ranges": "bytes",
    }


def scope_with_headers(scope: Mapping[str, object], **replace: str | None) -> dict[str, object]:
    """A copy of the ASGI scope with some request headers replaced or (None) removed."""
    names = {name.replace("_", "-").encode() for name in replace}
    raw = [(k, v) for k, v in scope["headers"] if k not in names]  # type: ignore[attr-defined]
    raw += [(k.replace("_", "-").encode(), v.encode()) for k, v in replace.items() if v is not None]
    return {**scope, "headers": raw}
