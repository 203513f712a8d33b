"""Fixed-window attempt counters for password guessing: in memory, or in Redis when LAPSE_REDIS_URL is set
(so that several workers and replicas share one count).

An attempt is counted *before* the slow password check and the decision is taken from the count that the
increment returned, so concurrent guesses cannot all slip past one check: at most `attempts` per window ever
reach verification. A right password is refunded, so only failures use up the allowance.
"""

import time
from datetime import timedelta
from typing import Protocol

from redis.asyncio import Redis
from redis.exceptions import RedisError

from lapse.errors import Unavailable

# Redis away: no attempt can be counted, so no password is checked (fail closed): 503, not 500.
_REDIS_AWAY = "Password checks are not available right now."


class RateLimiter(Protocol):
    async def attempt(self, *keys: str) -> int:
        """Count one attempt against every key. 0: go ahead. Otherwise some key is over its limit: the seconds
        until it may try again; the attempt is then not counted and must not go ahead."""

    async def refund(self, *keys: str) -> None:
        """Take back one attempt from every key (the attempt succeeded)."""

    async def aclose(self) -> None: ...


class MemoryRateLimiter:
    """One process's counts. Each method runs without awaiting, so on one event loop it is atomic."""

    def __init__(self, *, attempts: int, window: timedelta) -> None:
        self.attempts = attempts
        self.window = int(window.total_seconds())
        self._counts: dict[str, tuple[float, int]] = {}

    def _live(self, key: str, now: float) -> tuple[float, int]:
        started, count = self._counts.get(key, (now, 0))
        return (now, 0) if now - started >= self.window else (started, count)

    async def attempt(self, *keys: str) -> int:
        now = time.monotonic()
        if len(self._counts) > 100_000:  # bound memory under a flood of distinct clients
            self._counts = {k: v for k, v in self._counts.items() if now - v[0] < self.window}
        counted = {key: self._live(key, now) for key in keys}
        waits = [int(started + self.window - now) + 1 for started, count in counted.values() if count >= self.attempts]
        if waits:
            return max(waits)
        for key, (started, count) in counted.items():
            self._counts[key] = (started, count + 1)
        return 0

    async def refund(self, *keys: str) -> None:
        now = time.monotonic()
        for key in keys:
            started, count = self._live(key, now)
            if count > 0:
                self._counts[key] = (started, count - 1)

    async def aclose(self) -> None:
        return None


# Decrement only a key that still exists: a window that ended between the attempt and its refund must not come
# back as a key at -1 without an expiry (a free extra try, for ever).
_REFUND = """
for _, key in ipairs(KEYS) do
    if tonumber(redis.call('GET', key) or '0') > 0 then
        redis.call('DECR', key)
    end
end
"""


class RedisRateLimiter:
    def __init__(self, url: str, *, attempts: int, window: timedelta) -> None:
        self.redis: Redis = Redis.from_url(url)
        self.attempts = attempts
        self.window = int(window.total_seconds())
        self._refund = self.redis.register_script(_REFUND)

    async def attempt(self, *keys: str) -> int:
        names = [f"lapse:{key}" for key in keys]
        # One MULTI/EXEC: the count each INCR returns is this attempt's own place in the window, whatever other
        # workers do at the same moment; EXPIRE NX starts the window at the first attempt and never extends it.
        try:
            async with self.redis.pipeline(transaction=True) as pipe:
                for name in names:
                    pipe.incr(name)
                    pipe.expire(name, self.window, nx=True)
                    pipe.ttl(name)
                replies = await pipe.execute()
        except RedisError as exc:
            raise Unavailable(_REDIS_AWAY) from exc
        counts, ttls = replies[0::3], replies[2::3]
        waits = [max(int(ttl), 1) for count, ttl in zip(counts, ttls, strict=True) if int(count) > self.attempts]
        if not waits:
            return 0
        await self.refund(*keys)  # a refused attempt never reached the password, so it does not count
        return max(waits)

    async def refund(self, *keys: str) -> None:
        try:
            await self._refund(keys=[f"lapse:{key}" for key in keys])
        except RedisError as exc:
            raise Unavailable(_REDIS_AWAY) from exc

    async def aclose(self) -> None:
        await self.redis.aclose()


def make_rate_limiter(redis_url: str | None, *, attempts: int, window: timedelta) -> RateLimiter:
    if redis_url:
        return RedisRateLimiter(redis_url, attempts=attempts, window=window)
    return MemoryRateLimiter(attempts=attempts, window=window)
