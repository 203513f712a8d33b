"""Cleaning of the names and notes people send: what is kept is safe to show, store and put in a header."""

import re
import unicodedata

_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029\u200e\u200f\u202a-\u202e\u2066-\u2069]")


def clean_text(value: str, *, max_length: int) -> str:
    """NFC, no control or bidi-override characters, trimmed, at most max_length characters."""
    text = _CONTROL.sub("", unicodedata.normalize("NFC", value)).strip()
    return text[:max_length].strip()


def clean_filename(value: str, *, max_length: int = 255) -> str:
    """The original name as metadata: last path segment only, no controls, no leading dots, bounded length.

    Stored names are server-generated, so this is about safe display and Content-Disposition, not the disk.
    """
    text = _CONTROL.sub("", unicodedata.normalize("NFC", value))
    text = text.replace("\\", "/").rsplit("/", 1)[-1].strip().lstrip(".").strip()
    if len(text) > max_length:  # keep the extension, which is what tells a person the type
        stem, dot, ext = text.rpartition(".")
        if dot and 0 < len(ext) <= 16:
            text = stem[: max_length - len(ext) - 1].rstrip() + "." + ext
        else:
            text = text[:max_length]
    return text or "download"
