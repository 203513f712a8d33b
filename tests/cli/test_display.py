"""How sizes and times read in tables, and what --expires and --limit-rate accept."""

from datetime import UTC, datetime, timedelta

import pytest
import typer

from lapse.cli.client_common import Expiry, parse_expiry, parse_rate
from lapse.cli.display import human_size, relative, span


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (0, "0 s"),
        (45, "45 s"),
        (90, "2 min"),
        (11520, "3 h 12 min"),
        (3599, "1 h"),
        (7200, "2 h"),
        (86399, "1 d"),
        (3 * 86400 + 5 * 3600 + 59, "3 d 5 h"),
    ],
)
def test_spans_read_like_a_person_says_them(seconds: int, text: str) -> None:
    assert span(seconds) == text


def test_relative_times() -> None:
    now = datetime(2030, 1, 1, tzinfo=UTC)
    assert relative(now + timedelta(hours=3, minutes=12), now) == "in 3 h 12 min"
    assert relative(now - timedelta(minutes=5), now) == "5 min ago"


@pytest.mark.parametrize(("size", "text"), [(0, "0 B"), (1023, "1023 B"), (1536, "1.5 KiB"), (3 * 1024**3, "3.0 GiB")])
def test_sizes_in_binary_units(size: int, text: str) -> None:
    assert human_size(size) == text


def test_expires_takes_durations_and_zoned_times() -> None:
    assert parse_expiry("1h30m") == Expiry(seconds=5400)
    assert parse_expiry("2d") == Expiry(seconds=172800)
    assert parse_expiry("2099-01-31T18:00Z") == Expiry(at=datetime(2099, 1, 31, 18, tzinfo=UTC))
    for bad, why in [
        ("2099-01-31T18:00", "time zone"),
        ("2000-01-01T00:00Z", "past"),
        ("0s", "positive"),
        ("soon", "neither"),
    ]:
        with pytest.raises(typer.BadParameter, match=why):
            parse_expiry(bad)


def test_limit_rate_takes_sizes() -> None:
    assert parse_rate("500K") == 500 * 1024
    assert parse_rate("2M") == 2 * 1024 * 1024
    with pytest.raises(typer.BadParameter):
        parse_rate("fast")
