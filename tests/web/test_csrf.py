"""The Origin check on its own, for what the in-process client cannot easily vary: LAPSE_PUBLIC_URL and proxies."""

import pytest
from pydantic import AnyHttpUrl, TypeAdapter
from starlette.requests import Request

from lapse.errors import Forbidden
from lapse.web.csrf import check_origin, token_for, verify_token

PUBLIC = TypeAdapter(AnyHttpUrl).validate_python("https://files.example.org/lapse/")


def request(host: str, scheme: str = "http", **headers: str) -> Request:
    raw = [(b"host", host.encode())] + [(k.replace("_", "-").encode(), v.encode()) for k, v in headers.items()]
    return Request({"type": "http", "method": "POST", "scheme": scheme, "path": "/", "headers": raw})


@pytest.mark.parametrize(
    ("origin", "public_url", "allowed"),
    [
        ("http://internal:8000", None, True),  # the request's own origin
        ("http://internal:8000", PUBLIC, True),
        ("https://files.example.org", PUBLIC, True),  # what users of a proxy with LAPSE_PUBLIC_URL send
        ("https://files.example.org", None, False),
        ("https://files.example.org:8443", PUBLIC, False),
        ("http://files.example.org", PUBLIC, False),
        ("https://evil.example", PUBLIC, False),
        ("null", PUBLIC, False),
    ],
)
def test_origin(origin: str, public_url: AnyHttpUrl | None, allowed: bool) -> None:
    incoming = request("internal:8000", origin=origin)
    if allowed:
        check_origin(incoming, public_url=public_url)
    else:
        with pytest.raises(Forbidden):
            check_origin(incoming, public_url=public_url)


def test_no_origin_leaves_it_to_the_token() -> None:
    check_origin(request("internal:8000"), public_url=None)


def test_tokens_are_bound_to_their_session_and_secret() -> None:
    token = token_for(b"s" * 40, "session-a")
    verify_token(b"s" * 40, "session-a", token)
    for secret, binding in ((b"s" * 40, "session-b"), (b"t" * 40, "session-a")):
        with pytest.raises(Forbidden):
            verify_token(secret, binding, token)
