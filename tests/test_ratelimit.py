"""The password limiter, memory and Redis: counted before the check, so concurrent attempts cannot overshoot."""

import asyncio
import secrets
from collections.abc import AsyncIterator
from datetime import timedelta

import pytest

from lapse.ratelimit import MemoryRateLimiter, RateLimiter, RedisRateLimiter

pytestmark = pytest.mark.anyio
ATTEMPTS = 5
WINDOW = timedelta(minutes=5)


@pytest.fixture(params=["memory", "redis"])
async def limiter(request: pytest.FixtureRequest, redis_url: str) -> AsyncIterator[RateLimiter]:
    if request.param == "memory":
        yield MemoryRateLimiter(attempts=ATTEMPTS, window=WINDOW)
        return
    redis_limiter = RedisRateLimiter(redis_url, attempts=ATTEMPTS, window=WINDOW)
    yield redis_limiter
    await redis_limiter.aclose()


@pytest.fixture
async def key(limiter: RateLimiter) -> AsyncIterator[str]:
    """A key no other test (or run) shares, removed afterwards from the shared Redis."""
    name = f"test:{secrets.token_hex(8)}"
    yield name
    if isinstance(limiter, RedisRateLimiter):
        await limiter.redis.delete(f"lapse:{name}", f"lapse:{name}:other")


async def test_concurrent_attempts_let_exactly_the_limit_through(limiter: RateLimiter, key: str) -> None:
    waits = await asyncio.gather(*(limiter.attempt(key) for _ in range(20)))
    assert waits.count(0) == ATTEMPTS
    assert all(0 < wait <= WINDOW.total_seconds() + 1 for wait in waits if wait)


async def test_a_refund_gives_the_attempt_back(limiter: RateLimiter, key: str) -> None:
    for _ in range(ATTEMPTS):
        assert await limiter.attempt(key) == 0
        await limiter.refund(key)  # every one of them succeeded
    for _ in range(ATTEMPTS):
        assert await limiter.attempt(key) == 0
    assert await limiter.attempt(key) > 0
    await limiter.refund(key)
    assert await limiter.attempt(key) == 0
    assert await limiter.attempt(key) > 0


async def test_a_refused_attempt_counts_against_no_key(limiter: RateLimiter, key: str) -> None:
    other = f"{key}:other"
    for _ in range(ATTEMPTS):
        assert await limiter.attempt(key) == 0
    for _ in range(10):  # refused by `key`: must not use up `other`
        assert await limiter.attempt(key, other) > 0
    for _ in range(ATTEMPTS):
        assert await limiter.attempt(other) == 0
    assert await limiter.attempt(other) > 0


async def test_a_refund_after_the_window_ended_leaves_no_key(redis_url: str) -> None:
    limiter = RedisRateLimiter(redis_url, attempts=ATTEMPTS, window=WINDOW)
    name = f"test:{secrets.token_hex(8)}"
    try:
        assert await limiter.attempt(name) == 0
        assert 0 < await limiter.redis.ttl(f"lapse:{name}") <= WINDOW.total_seconds()
        await limiter.redis.delete(f"lapse:{name}")  # the window ran out before the refund
        await limiter.refund(name)
        assert await limiter.redis.exists(f"lapse:{name}") == 0
    finally:
        await limiter.redis.delete(f"lapse:{name}")
        await limiter.aclose()
