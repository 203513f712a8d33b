"""Concurrent password guessing: however many guesses arrive at once, at most `password_attempts`
reach verification; the rest are 429 with Retry-After. PostgreSQL and Redis, as a scaled-out deployment runs."""

import asyncio
import secrets
from collections.abc import AsyncIterator

import httpx
import pytest
from redis.asyncio import Redis
from starlette.types import ASGIApp

from lapse.settings import Settings
from tests.helpers import ApiClient

pytestmark = [pytest.mark.anyio, pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)]
ATTEMPTS = 5


@pytest.fixture
def settings(settings: Settings, redis_url: str) -> Settings:
    return settings.model_copy(update={"redis_url": redis_url, "password_attempts": ATTEMPTS})


@pytest.fixture
async def guesser(app: ASGIApp, redis_url: str) -> AsyncIterator[httpx.AsyncClient]:
    """A client with an address of its own, so its per-client count in the shared Redis is this test's alone."""
    address = f"10.{secrets.randbelow(256)}.{secrets.randbelow(256)}.{secrets.randbelow(256)}"
    transport = httpx.ASGITransport(app=app, client=(address, 50000))
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        yield client
    redis = Redis.from_url(redis_url)
    await redis.delete(f"lapse:pw:client:{address}")
    await redis.aclose()


async def forget_link(redis_url: str, link: dict[str, str]) -> None:
    redis = Redis.from_url(redis_url)
    await redis.delete(f"lapse:pw:link:{link['id']}")
    await redis.aclose()


async def test_concurrent_wrong_guesses_reach_verification_at_most_the_limit(
    alice: ApiClient, guesser: httpx.AsyncClient, redis_url: str
) -> None:
    link = await alice.share(b"secret bytes", password="right")
    try:
        answers = await asyncio.gather(*(guesser.post(link["path"], data={"password": "wrong"}) for _ in range(20)))
        statuses = sorted(answer.status_code for answer in answers)
        assert statuses == [401] * ATTEMPTS + [429] * (20 - ATTEMPTS)
        assert all(int(a.headers["retry-after"]) > 0 for a in answers if a.status_code == 429)
        # The allowance is spent: even the right password waits for the window.
        assert (await guesser.post(link["path"], data={"password": "right"})).status_code == 429
    finally:
        await forget_link(redis_url, link)


async def test_right_passwords_are_refunded(alice: ApiClient, guesser: httpx.AsyncClient, redis_url: str) -> None:
    link = await alice.share(b"secret bytes", password="right")

    async def guess(password: str) -> int:
        guesser.cookies.clear()  # a grant would skip the password check
        return (await guesser.post(link["path"], data={"password": password})).status_code

    try:
        for _ in range(2 * ATTEMPTS):  # right ones never use up the allowance
            assert await guess("right") == 200
        for _ in range(ATTEMPTS - 1):
            assert await guess("wrong") == 401
        assert await guess("right") == 200  # the last try left, given back
        assert await guess("wrong") == 401
        assert await guess("right") == 429
    finally:
        await forget_link(redis_url, link)
