"""lapse.logs.redact by itself: secrets go by shape and by parameter name, whatever the path."""

import logging

import pytest

from lapse.logs import RedactTokens, redact
from lapse.tokens import new_api_key, new_id, new_link_token

# Fixed, in the shapes tokens.py makes: test ids must be the same in every xdist worker.
TOKEN = "S02TkZzClZwDOWopBXD1E80xcVkdD-tU"
KEY = "lapse_FSs5yOfEUpH6ICa03YKAVyt2svP27F3fRz0Ch2c2do4"
GRANT = "3a88d8ab25b158dcd88f.1796304158.5ZgolzyIVu36t8A33HF--ByuuP-jGPbkjqwYhJvacy0"


def test_the_fixed_secrets_have_the_shapes_lapse_makes() -> None:
    assert (len(TOKEN), len(KEY), len(GRANT.split(".")[0])) == (
        len(new_link_token()),
        len(new_api_key()),
        len(new_id()),
    )
    assert KEY[:6] == new_api_key()[:6]


@pytest.mark.parametrize(
    ("target", "expected"),
    [
        (f"/d/{TOKEN}", "/d/…"),
        (f"/d//{TOKEN}", "/d//…"),
        (f"/d/./{TOKEN}", "/d/./…"),
        (f"/d/%2e%2e/{TOKEN}", "/d/%2e%2e/…"),
        (f"/s//{TOKEN}", "/s//…"),
        (f"/anything/{TOKEN}.zip", "/anything/…"),
        ("/d/" + "".join(f"%{ord(c):02x}" for c in TOKEN), "/d/…"),
        ("/d/" + "".join(f"%25{ord(c):02x}" for c in TOKEN), "/d/…"),  # encoded twice
        (f"/d/{TOKEN}?api_key={KEY}", "/d/…?api_key=…"),
        ("/x?API_KEY=short", "/x?API_KEY=…"),
        ("/x?api%5Fkey=short", "/x?api%5Fkey=…"),
        ("/x?password=hunter2&page=2", "/x?password=…&page=2"),
        (
            "/x?X-Amz-Signature=abc&X-Amz-Credential=AKID%2F2026",
            "/x?X-Amz-Signature=…&…=…",
        ),  # a long name is masked too
        (f"/d/{TOKEN}?grant={GRANT}", "/d/…?grant=…"),
        (f"/x/{GRANT}", "/x/…"),
        (f"/x?q={KEY}", "/x?q=…"),
        ("/x?token=", "/x?token="),  # nothing to hide
        ("/api/v1/files/0a20a170fcf07e2b0e6b/links?limit=50", "/api/v1/files/0a20a170fcf07e2b0e6b/links?limit=50"),
        ("/static/lapse.css", "/static/lapse.css"),
        ("/healthz", "/healthz"),
    ],
)
def test_redact(target: str, expected: str) -> None:
    assert redact(target) == expected


def _format(msg: str, args: object) -> str:
    record = logging.LogRecord("uvicorn.access", logging.INFO, __file__, 1, msg, args, None)  # type: ignore[arg-type]
    RedactTokens().filter(record)
    return record.getMessage()


def test_filter_redacts_arguments_and_bare_messages() -> None:
    access = _format('%s - "%s %s HTTP/%s" %d', ("127.0.0.1:5000", "GET", f"/d//{TOKEN}", "1.1", 404))
    assert access == '127.0.0.1:5000 - "GET /d//… HTTP/1.1" 404'
    assert TOKEN not in _format(f"served /d/./{TOKEN}", ())
    assert TOKEN not in _format("%(path)s", ({"path": f"/s//{TOKEN}"},))


def test_a_secret_value_ends_where_the_next_part_of_the_target_begins() -> None:
    """uvicorn 0.55 logs `;jsessionid=1?probe=2` as one path: the query after the value stays readable."""
    assert redact("/d/x;jsessionid=1?probe=2") == "/d/x;jsessionid=…?probe=2"
