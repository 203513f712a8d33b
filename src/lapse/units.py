"""Parsing of the human units people type into settings and the CLI: sizes and durations."""

import re
from datetime import timedelta

_SIZE = re.compile(r"^\s*(\d+)\s*([kmgt]?i?b?)?\s*$", re.IGNORECASE)
_SIZE_FACTORS = {"": 1, "k": 1024, "m": 1024**2, "g": 1024**3, "t": 1024**4}

_DURATION = re.compile(r"(\d+)\s*([smhdw])", re.IGNORECASE)
_DURATION_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_size(value: str | int) -> int:
    """`1048576`, `512K`, `100MB`, `2GiB` → bytes (binary multiples: a MB here is 1024² bytes)."""
    if isinstance(value, int):
        return value
    match = _SIZE.match(value)
    if match is None:
        raise ValueError(f"not a size: {value!r} (try 100M or 2G)")
    unit = (match.group(2) or "").lower()[:1]
    return int(match.group(1)) * _SIZE_FACTORS[unit]


def parse_duration(value: str | int | float | timedelta) -> timedelta:
    """`3600`, `90s`, `30m`, `1h30m`, `2d`, `1w` → timedelta."""
    if isinstance(value, timedelta):
        return value
    if isinstance(value, int | float):
        return timedelta(seconds=value)
    text = value.strip()
    if text.isdigit():
        return timedelta(seconds=int(text))
    parts = _DURATION.findall(text)
    if not parts or _DURATION.sub("", text).strip():
        raise ValueError(f"not a duration: {value!r} (try 30m, 1h or 2d)")
    return timedelta(seconds=sum(int(n) * _DURATION_SECONDS[u.lower()] for n, u in parts))
