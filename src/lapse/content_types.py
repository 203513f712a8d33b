"""Which Content-Type a download may carry: an allowlist of types browsers never run, and opaque bytes for the rest.

A blocklist of active types cannot be complete (`text/livescript`, `application/x-ecmascript`, every `+xml` type a
browser renders as a document…), so only types known to be inert are echoed; anything else, and anything oddly
spelled, is served as application/octet-stream. Written by hand: the stdlib and our dependencies parse media types
but none judges which ones are safe to serve.
"""

import functools
import re

OCTET_STREAM = "application/octet-stream"
MAX_LENGTH = 255  # the column's size; longer is not a media type we stored

# RFC 9110 §8.3.1: type "/" subtype, both tokens; lower case here, since we compare after lower-casing.
_MEDIA_TYPE = re.compile(r"[a-z0-9][a-z0-9!#$&^_.+-]{0,63}/[a-z0-9][a-z0-9!#$&^_.+-]{0,126}")

# application/pdf is left out: browsers open PDFs in a built-in viewer that runs the document's JavaScript and
# forms, and the attachment + sandbox headers are the only thing between that and the user; as octet-stream it
# downloads just the same.
INERT_TYPES = frozenset(
    {
        # images, SVG excepted (it is a document with script)
        "image/png",
        "image/jpeg",
        "image/gif",
        "image/webp",
        "image/avif",
        "image/bmp",
        "image/tiff",
        "image/heic",
        "image/heif",
        "image/jxl",
        "image/x-icon",
        "image/vnd.microsoft.icon",
        # audio and video
        "audio/mpeg",
        "audio/mp4",
        "audio/aac",
        "audio/ogg",
        "audio/opus",
        "audio/wav",
        "audio/x-wav",
        "audio/webm",
        "audio/flac",
        "audio/x-flac",
        "video/mp4",
        "video/webm",
        "video/ogg",
        "video/mpeg",
        "video/quicktime",
        "video/x-matroska",
        "video/x-msvideo",
        "video/3gpp",
        # text and data formats no browser executes (nosniff keeps them from being read as script)
        "text/plain",
        "text/csv",
        "text/tab-separated-values",
        "text/markdown",
        "application/json",
        # archives
        "application/zip",
        "application/gzip",
        "application/x-gzip",
        "application/x-tar",
        "application/x-bzip2",
        "application/x-xz",
        "application/zstd",
        "application/x-7z-compressed",
        "application/vnd.rar",
        "application/x-rar-compressed",
        # office documents and books
        "application/msword",
        "application/vnd.ms-excel",
        "application/vnd.ms-powerpoint",
        "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
        "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
        "application/vnd.openxmlformats-officedocument.presentationml.presentation",
        "application/vnd.oasis.opendocument.text",
        "application/vnd.oasis.opendocument.spreadsheet",
        "application/vnd.oasis.opendocument.presentation",
        "application/rtf",
        "application/epub+zip",
        OCTET_STREAM,
    }
)


def media_type(declared: str | None) -> str | None:
    """The bare `type/subtype` of a declared Content-Type, lower case; None if it is not exactly one well-formed
    media type. A list (`image/png,text/html`) is refused rather than picked from: browsers disagree on which
    member wins. Parameters are dropped."""
    if not declared or len(declared) > MAX_LENGTH or not declared.isascii() or "," in declared:
        return None
    bare = declared.split(";", 1)[0].strip(" \t").lower()
    return bare if _MEDIA_TYPE.fullmatch(bare) else None


@functools.lru_cache(maxsize=1024)  # pure, and on every download; the stored types are few
def served_type(declared: str | None) -> str:
    """What a download's Content-Type says: an allowlisted bare type, or application/octet-stream."""
    bare = media_type(declared)
    return bare if bare in INERT_TYPES else OCTET_STREAM
