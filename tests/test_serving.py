"""Unit tests of the HTTP helpers that FileResponse relies on us for."""

from datetime import UTC, datetime, timedelta

import pytest
from starlette.datastructures import Headers

from lapse.delivery import serving
from lapse.delivery.serving import NotModified, PreconditionFailed, RangeNotSatisfiable, Send

REP = serving.Representation(etag='"abc"', last_modified=datetime(2026, 1, 2, 3, 4, 5, 678, tzinfo=UTC), size=100)


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("bytes=0-9", Send([(0, 9)])),
        ("bytes=90-", Send([(90, 99)])),
        ("bytes=-10", Send([(90, 99)])),
        ("bytes=-1000", Send([(0, 99)])),
        ("bytes=50-5000", Send([(50, 99)])),
        ("BYTES=0-0", Send([(0, 0)])),  # the unit is case-insensitive
        ("bytes=0-0, 5-6", Send([(0, 0), (5, 6)])),
        ("bytes=100-", RangeNotSatisfiable()),
        ("bytes=100-200, 300-", RangeNotSatisfiable()),
        ("bytes=-0", RangeNotSatisfiable()),
        ("bytes=100-, 0-1", Send([(0, 1)])),
        ("bytes=5-4", Send(None)),
        ("bytes=a-b", Send(None)),
        ("bytes=-", Send(None)),
        ("lines=0-1", Send(None)),
        ("bytes=" + ",".join(["0-0"] * 17), Send(None)),
    ],
)
def test_parse_range(header: str, expected: object) -> None:
    assert serving.parse_range(header, 100) == expected


def test_any_range_of_an_empty_file_is_unsatisfiable() -> None:
    assert serving.parse_range("bytes=0-", 0) == RangeNotSatisfiable()
    assert serving.parse_range("bytes=-5", 0) == RangeNotSatisfiable()


def decide(method: str = "GET", **headers: str) -> object:
    return serving.evaluate(method, Headers({k.replace("_", "-"): v for k, v in headers.items()}), REP)


def test_precondition_order() -> None:
    assert decide(if_match='"x"', if_none_match='"abc"') == PreconditionFailed()
    assert decide(if_match='"abc"', if_none_match='"abc"') == NotModified()
    assert decide(if_match='W/"abc"') == PreconditionFailed()  # If-Match compares strongly
    assert decide(if_none_match='W/"abc"') == NotModified()  # If-None-Match weakly
    lm = REP.last_modified_header
    assert decide(if_modified_since=lm) == NotModified()
    assert decide(if_none_match='"x"', if_modified_since=lm) == Send(None)  # INM wins over IMS
    assert decide(if_unmodified_since="Thu, 01 Jan 2026 00:00:00 GMT") == PreconditionFailed()
    assert decide(if_unmodified_since=lm) == Send(None)
    assert decide(if_modified_since="not a date") == Send(None)


def test_range_only_on_get_and_only_with_matching_if_range() -> None:
    assert decide("HEAD", range="bytes=0-1") == Send(None)
    assert decide(range="bytes=0-1", if_range='"abc"') == Send([(0, 1)])
    assert decide(range="bytes=0-1", if_range='W/"abc"') == Send(None)
    assert decide(range="bytes=0-1", if_range=REP.last_modified_header) == Send([(0, 1)])
    later = serving.http_date(REP.last_modified + timedelta(seconds=1))
    assert decide(range="bytes=0-1", if_range=later) == Send(None)


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("plain.txt", "attachment; filename=\"plain.txt\"; filename*=UTF-8''plain.txt"),
        ('a"b\\c;d.txt', "attachment; filename=\"a_b_c_d.txt\"; filename*=UTF-8''a%22b_c%3Bd.txt"),
        ("x\r\ny.txt", "attachment; filename=\"x__y.txt\"; filename*=UTF-8''x%0D%0Ay.txt"),
        ("100%.txt", "attachment; filename=\"100_.txt\"; filename*=UTF-8''100%25.txt"),
        ("日本.txt", "attachment; filename=\"__.txt\"; filename*=UTF-8''%E6%97%A5%E6%9C%AC.txt"),
        (
            "report.csv; filename*=UTF-8''evil.html",
            "attachment; filename=\"report.csv_ filename*=UTF-8''evil.html\"; "
            "filename*=UTF-8''report.csv%3B%20filename%2A%3DUTF-8%27%27evil.html",
        ),
    ],
)
def test_content_disposition(name: str, expected: str) -> None:
    assert serving.content_disposition(name) == expected
