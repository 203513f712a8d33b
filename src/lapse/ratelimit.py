"""Fixed-window failure counters for password guessing: in memory, or in Redis when LAPSE_REDIS_URL is set
(so that several workers and replicas share one count)."""

import time
from datetime import timedelta
from typing import Protocol

from redis.asyncio import Redis


class RateLimiter(Protocol):
    async def blocked_for(self, *keys: str) -> int:
        """Seconds until every key may try again; 0 when none is over the limit."""

    async def hit(self, *keys: str) -> None:
        """Count one failure against each key."""

    async def aclose(self) -> None: ...


class MemoryRateLimiter:
    def __init__(self, *, attempts: int, window: timedelta) -> None:
        self.attempts = attempts
        self.window = int(window.total_seconds())
        self._counts: dict[str, tuple[float, int]] = {}

    def _live(self, key: str, now: float) -> tuple[float, int]:
        started, count = self._counts.get(key, (now, 0))
        return (now, 0) if now - started >= self.window else (started, count)

    async def blocked_for(self, *keys: str) -> int:
        now = time.monotonic()
        waits = [
            int(started + self.window - now) + 1
            for started, count in (self._live(key, now) for key in keys)
            if count >= self.attempts
        ]
        return max(waits, default=0)

    async def hit(self, *keys: str) -> None:
        now = time.monotonic()
        if len(self._counts) > 100_000:  # bound memory under a flood of distinct clients
            self._counts = {k: v for k, v in self._counts.items() if now - v[0] < self.window}
        for key in keys:
            started, count = self._live(key, now)
            self._counts[key] = (started, count + 1)

    async def aclose(self) -> None:
        return None


class RedisRateLimiter:
    def __init__(self, url: str, *, attempts: int, window: timedelta) -> None:
        self.redis: Redis = Redis.from_url(url)
        self.attempts = attempts
        self.window = int(window.total_seconds())

    async def blocked_for(self, *keys: str) -> int:
        waits = []
        for key in keys:
            count = await self.redis.get(f"lapse:{key}")
            if count is not None and int(count) >= self.attempts:
                waits.append(max(await self.redis.ttl(f"lapse:{key}"), 1))
        return max(waits, default=0)

    async def hit(self, *keys: str) -> None:
        async with self.redis.pipeline(transaction=True) as pipe:
            for key in keys:
                pipe.incr(f"lapse:{key}")
                pipe.expire(f"lapse:{key}", self.window, nx=True)
            await pipe.execute()

    async def aclose(self) -> None:
        await self.redis.aclose()


def make_rate_limiter(redis_url: str | None, *, attempts: int, window: timedelta) -> RateLimiter:
    if redis_url:
        return RedisRateLimiter(redis_url, attempts=attempts, window=window)
    return MemoryRateLimiter(attempts=attempts, window=window)
