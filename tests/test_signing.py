"""Grants, web sessions, sign-in forms and CSRF tokens share one signer, each under its own purpose: a value of one
kind is never accepted as another, and a tampered or expired value is refused."""

import itertools
from datetime import UTC, datetime, timedelta

import pytest
from starlette.requests import Request
from starlette.responses import Response

from lapse.db.models import ApiKey
from lapse.errors import Forbidden
from lapse.tokens import GrantSigner, new_id, purpose_signer
from lapse.web import csrf
from lapse.web.session import (
    SESSION_COOKIE,
    SESSION_TTL,
    SIGN_IN_COOKIE,
    SIGN_IN_TTL,
    read_session,
    remember_sign_in_nonce,
    sign_in_nonce,
    start_session,
)

SECRET = b"signing-tests-" + b"s" * 40
NOW = datetime(2026, 6, 1, 12, 0, 0, tzinfo=UTC)
LINK_ID = new_id()


def request_with(cookie: str | None = None) -> Request:
    headers = [(b"cookie", cookie.encode("latin-1"))] if cookie is not None else []
    return Request({"type": "http", "method": "GET", "scheme": "http", "path": "/", "headers": headers})


def set_cookie_value(response: Response, name: str) -> str:
    for header in response.headers.getlist("set-cookie"):
        if header.startswith(f"{name}="):
            return header.split(";", 1)[0].removeprefix(f"{name}=")
    raise AssertionError(f"no {name} cookie set")


def session_value(key_id: str, now: datetime = NOW) -> str:
    response = Response()
    start_session(response, request_with(), SECRET, ApiKey(id=key_id), now)
    return set_cookie_value(response, SESSION_COOKIE)


def sign_in_value(nonce: str, now: datetime = NOW) -> str:
    response = Response()
    remember_sign_in_nonce(response, request_with(), SECRET, nonce, now)
    return set_cookie_value(response, SIGN_IN_COOKIE)


def as_session(value: str, now: datetime = NOW) -> str | None:
    session = read_session(request_with(f"{SESSION_COOKIE}={value}"), SECRET, now)
    return None if session is None else session.key_id


def as_grant(value: str, link_id: str = LINK_ID, now: datetime = NOW) -> bool:
    return GrantSigner(SECRET).verify(value, link_id=link_id, now=now)


def test_a_grant_shaped_like_a_session_is_not_a_session() -> None:
    key_id = new_id()
    session = session_value(key_id)
    assert as_session(session) == key_id  # the real one is accepted: the refusal below is the signer's doing
    sid = session.split(".")[0]
    # A grant whose link id is `sid.key_id` has exactly a session's fields: sid, key id, a timestamp, a signature.
    grant = GrantSigner(SECRET).sign(f"{sid}.{key_id}", NOW + timedelta(minutes=5))
    assert len(grant.split(".")) == len(session.split("."))
    assert as_session(grant) is None
    assert as_session(grant, now=NOW + timedelta(minutes=10)) is None


def test_a_session_or_sign_in_cookie_is_not_a_grant() -> None:
    grant = GrantSigner(SECRET).sign(LINK_ID, NOW + timedelta(minutes=5))
    assert as_grant(grant)
    # The sign-in cookie has a grant's fields: `<nonce>.<unix seconds>.<signature>`; name the link, date it ahead.
    sign_in = sign_in_value(LINK_ID, now=NOW + timedelta(minutes=5))
    assert sign_in.split(".")[:2] == grant.split(".")[:2]
    assert not as_grant(sign_in)
    assert not as_grant(session_value(LINK_ID))


def test_csrf_tokens_and_signatures_of_other_kinds_are_not_interchangeable() -> None:
    grant = GrantSigner(SECRET).sign(LINK_ID, NOW + timedelta(minutes=5))
    payload, signature = grant.rsplit(".", 1)
    csrf.verify_token(SECRET, payload, csrf.token_for(SECRET, payload))  # the real token passes
    with pytest.raises(Forbidden):
        csrf.verify_token(SECRET, payload, signature)  # a grant's signature of the same text is no CSRF token
    assert not as_grant(f"{payload}.{csrf.token_for(SECRET, payload)}")


def test_each_purpose_refuses_the_others() -> None:
    purposes = ["grant", "session", "sign-in", "csrf"]
    for signed_for, read_as in itertools.permutations(purposes, 2):
        value = purpose_signer(SECRET, signed_for).sign("a", "b")
        assert purpose_signer(SECRET, signed_for).unsign(value, fields=2) == ["a", "b"]
        assert purpose_signer(SECRET, read_as).unsign(value, fields=2) is None, (signed_for, read_as)
        assert not purpose_signer(SECRET, read_as).verify_mac("a.b", value.rsplit(".", 1)[1])
    assert purpose_signer(b"another secret" * 4, "grant").unsign(value, fields=2) is None


def tampered(value: str) -> list[str]:
    payload, signature = value.rsplit(".", 1)
    fields = payload.split(".")
    # The first character: the last one of base64 also carries padding bits, and flipping only those decodes to
    # the same signature (a one-in-four chance that made this test fail now and then).
    flipped = ("A" if signature[0] != "A" else "B") + signature[1:]
    later = [*fields[:-1], str(int(fields[-1]) + 3600)]
    return [
        f"{payload}.{flipped}",
        ".".join([*later, signature]),  # a moved timestamp
        ".".join(["x" + fields[0], *fields[1:], signature]),
        f"{payload}.",
        payload,
        f"{payload}.{signature}.{signature}",
        f"{payload}.{signature}x",
        f"{payload}.{signature[:-2]}",
        f"{payload}.{signature}²",  # non-ASCII
        f"{payload}.{signature.upper()}",
        "",
        ".",
    ]


def test_a_tampered_grant_is_refused() -> None:
    grant = GrantSigner(SECRET).sign(LINK_ID, NOW + timedelta(minutes=5))
    assert as_grant(grant)
    assert not as_grant(grant, link_id=new_id())  # another link's
    for forged in tampered(grant):
        assert not as_grant(forged), forged


def test_a_tampered_session_is_refused() -> None:
    key_id = new_id()
    session = session_value(key_id)
    assert as_session(session) == key_id
    sid, _, issued, signature = session.split(".")
    forged_key = f"{sid}.{new_id()}.{issued}.{signature}"  # someone else's key, same signature
    for forged in [*tampered(session), forged_key]:
        assert as_session(forged) is None, forged


def test_a_tampered_sign_in_nonce_or_csrf_token_is_refused() -> None:
    value = sign_in_value("nonce-1")
    assert sign_in_nonce(request_with(f"{SIGN_IN_COOKIE}={value}"), SECRET, NOW) == "nonce-1"
    for forged in tampered(value):
        assert sign_in_nonce(request_with(f"{SIGN_IN_COOKIE}={forged}"), SECRET, NOW) is None, forged
    token = csrf.token_for(SECRET, "sid-1")
    for forged in [token[:-1], token + "A", token.upper(), "", "é" + token, csrf.token_for(SECRET, "sid-2")]:
        with pytest.raises(Forbidden):
            csrf.verify_token(SECRET, "sid-1", forged)


def test_grant_expiry_is_its_named_end() -> None:
    grant = GrantSigner(SECRET).sign(LINK_ID, NOW + timedelta(seconds=60))
    assert as_grant(grant, now=NOW + timedelta(seconds=59))
    assert not as_grant(grant, now=NOW + timedelta(seconds=60))
    assert not as_grant(grant, now=NOW + timedelta(days=1))


@pytest.mark.parametrize(
    ("read_at", "accepted"),
    [
        (timedelta(0), True),
        (SESSION_TTL - timedelta(seconds=1), True),
        (SESSION_TTL, False),
        (SESSION_TTL + timedelta(days=1), False),
        (-timedelta(seconds=1), False),  # issued in the future: not ours
    ],
)
def test_session_expiry_counts_from_sign_in(read_at: timedelta, accepted: bool) -> None:
    key_id = new_id()
    assert (as_session(session_value(key_id), now=NOW + read_at) == key_id) is accepted


def test_sign_in_nonce_expires_after_its_ttl() -> None:
    value = sign_in_value("nonce-2")
    cookie = f"{SIGN_IN_COOKIE}={value}"
    assert sign_in_nonce(request_with(cookie), SECRET, NOW + SIGN_IN_TTL - timedelta(seconds=1)) == "nonce-2"
    assert sign_in_nonce(request_with(cookie), SECRET, NOW + SIGN_IN_TTL) is None
