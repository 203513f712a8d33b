"""The served Content-Type is an allowlist: a declared type a browser might run, or any type we do not know to be
inert, goes out as application/octet-stream, however it is spelled."""

import pytest

from lapse.content_types import served_type

OCTET = "application/octet-stream"

# Types a browser runs, renders as a document, or treats as script or style: every one must come back opaque.
HOSTILE = [
    "text/html",
    "application/xhtml+xml",
    "image/svg+xml",
    "image/svg+XML",  # Jirafeau CVE-2024-12326: case
    "IMAGE/SVG+XML",
    "application/x-javascript",
    "text/x-javascript",
    "text/jscript",
    "application/x-ecmascript",
    "text/livescript",
    "text/javascript",
    "application/javascript",
    "text/ecmascript",
    "application/ecmascript",
    "text/javascript1.5",
    "module",
    "application/rss+xml",
    "application/atom+xml",
    "application/xslt+xml",
    "application/xml",
    "text/xml",
    "text/xsl",
    "application/mathml+xml",
    "text/css",
    "text/vtt",
    "application/wasm",
    "application/x-shockwave-flash",
    "multipart/x-mixed-replace",
    "message/rfc822",
    "application/pdf",
    "text/cache-manifest",
    "application/manifest+json",
    "application/vnd.apple.mpegurl",
    "text/x-foo",
    "application/x-anything-new",
    "image/x-unknown",
    "image",  # CVE-2026-1466: no subtype, and the browser sniffs
    "image/",
    "/png",
    "*/*",
    "image/*",
    "",
    "   ",
    "image/png,text/html",  # CVE-2025-7066: a list; browsers may take either
    "text/html,image/png",
    "image/png, text/html",
    "image/png\ttext/html",
    "image/png text/html",
    "image/png\r\nX-Evil: 1",
    "image/png\nSet-Cookie: a=b",
    "image/png\x00",
    "\x00image/png",
    "image/pn\u212a",  # KELVIN SIGN lower-cases to ASCII k
    "\u0131mage/png",  # DOTLESS I
    "image/png\u00a0",
    "image/svg+xml; charset=utf-8",
    "text/html; charset=utf-8",
    "text/html;charset=utf-8",
    "image/png/../text/html",
    "image//png",
    "text/plain/html",
    "x" * 300,
    "image/" + "p" * 300,
]

# Declared → served: inert types come back canonical (lower case, bare type/subtype), whatever the spelling.
INERT = [
    ("image/png", "image/png"),
    ("IMAGE/PNG", "image/png"),
    ("  image/png  ", "image/png"),
    ("image/png;", "image/png"),
    ("image/png ; q=1", "image/png"),
    ('image/png; x="a;text/html"', "image/png"),  # only the bare type goes out, never a parameter
    ("image/jpeg", "image/jpeg"),
    ("image/gif", "image/gif"),
    ("image/webp", "image/webp"),
    ("image/avif", "image/avif"),
    ("audio/mpeg", "audio/mpeg"),
    ("audio/ogg", "audio/ogg"),
    ("video/mp4", "video/mp4"),
    ("video/webm", "video/webm"),
    ("text/plain", "text/plain"),
    ("text/plain; charset=utf-8", "text/plain"),
    ("Text/Plain;Charset=UTF-7", "text/plain"),  # the parameter is dropped: no charset a browser could misuse
    ("text/csv", "text/csv"),
    ("application/json", "application/json"),
    ("application/zip", "application/zip"),
    ("application/gzip", "application/gzip"),
    ("application/x-tar", "application/x-tar"),
    ("application/vnd.openxmlformats-officedocument.wordprocessingml.document", None),
    ("application/vnd.oasis.opendocument.spreadsheet", None),
    ("application/octet-stream", OCTET),
]


@pytest.mark.parametrize("declared", HOSTILE)
def test_anything_not_known_inert_is_served_as_opaque_bytes(declared: str) -> None:
    assert served_type(declared) == OCTET


@pytest.mark.parametrize(("declared", "served"), INERT)
def test_inert_types_are_served_canonical(declared: str, served: str | None) -> None:
    assert served_type(declared) == (served or declared)


def test_served_types_are_bare_ascii_tokens() -> None:
    """Whatever comes in, what goes out is a header-safe `type/subtype` with no parameters."""
    for declared in [*HOSTILE, *(d for d, _ in INERT)]:
        served = served_type(declared)
        assert served.isascii()
        assert served == served.strip().lower()
        assert served.count("/") == 1
        assert not set(served) & set(" \t\r\n;,\x00")
