"""A refused redemption whose re-read shows a live link (a PATCH raised the limit or moved the expiry between the
UPDATE and the read) is tried again, then answered 503 (try again), never a 500 or a bogus 410."""

from datetime import datetime
from typing import Any

import pytest

from lapse.db.base import utc_now
from lapse.db.models import File, Link
from lapse.errors import Gone, GoneReason, Unavailable
from lapse.links import redemption
from lapse.links.redeemer import Redeemer
from lapse.runtime import Runtime
from tests.helpers import ApiClient

pytestmark = pytest.mark.anyio


class LosesRaces:
    """The app's real redeemer, except that its first `refusals` redemptions lose to a concurrent change: they
    count nothing and answer None while the link stays live, as when a PATCH lands between UPDATE and re-read."""

    def __init__(self, redeemer: Redeemer, refusals: int) -> None:
        self.redeemer = redeemer
        self.refusals = refusals
        self.attempts = 0

    async def find(self, token_hash: str) -> tuple[Link, File | None] | None:
        return await self.redeemer.find(token_hash)

    async def redeem(self, link_id: str, now: datetime) -> int | None:
        self.attempts += 1
        if self.attempts <= self.refusals:
            return None
        return await self.redeemer.redeem(link_id, now)

    async def get_link(self, link_id: str) -> Link | None:
        return await self.redeemer.get_link(link_id)

    async def aclose(self) -> None:
        return None


async def target_of(runtime: Runtime, link: dict[str, Any]) -> redemption.Target:
    return await redemption.resolve(
        runtime.redeemer.find,
        secret=runtime.secret,
        signer=runtime.grants,
        token=link["path"].rsplit("/", 1)[1],
        grant=None,
        now=utc_now(),
    )


async def downloads_of(runtime: Runtime, link: dict[str, Any]) -> int:
    current = await runtime.redeemer.get_link(link["id"])
    assert current is not None
    return current.downloads


async def test_a_refusal_of_a_live_link_is_tried_again(alice: ApiClient, runtime: Runtime) -> None:
    link = await alice.share(b"x", max_downloads=2)
    racing = LosesRaces(runtime.redeemer, refusals=redemption.REDEEM_TRIES - 1)
    target = await target_of(runtime, link)
    await redemption.redeem(racing, target=target, now=utc_now())
    assert racing.attempts == redemption.REDEEM_TRIES
    assert target.link.downloads == 1
    assert await downloads_of(runtime, link) == 1


async def test_a_link_that_keeps_changing_is_unavailable_not_gone(alice: ApiClient, runtime: Runtime) -> None:
    link = await alice.share(b"x", max_downloads=2)
    racing = LosesRaces(runtime.redeemer, refusals=redemption.REDEEM_TRIES)
    with pytest.raises(Unavailable) as raised:
        await redemption.redeem(racing, target=await target_of(runtime, link), now=utc_now())
    assert raised.value.retry_after > 0
    assert racing.attempts == redemption.REDEEM_TRIES  # bounded
    assert await downloads_of(runtime, link) == 0


async def test_a_dead_link_is_still_gone_at_once(alice: ApiClient, runtime: Runtime) -> None:
    link = await alice.share(b"x", max_downloads=1)
    target = await target_of(runtime, link)
    await redemption.redeem(runtime.redeemer, target=target, now=utc_now())
    counting = LosesRaces(runtime.redeemer, refusals=0)
    with pytest.raises(Gone) as raised:
        await redemption.redeem(counting, target=target, now=utc_now())
    assert raised.value.reason is GoneReason.EXHAUSTED
    assert counting.attempts == 1
