"""Turning a link token into permission to send bytes: resolve, check the password, redeem.

Redeeming is one conditional UPDATE (links.repository.REDEEM); everything here either happens before it and
never counts (resolving, preconditions, passwords) or classifies why it refused.
"""

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime

import anyio.to_thread
from argon2.exceptions import InvalidHashError, VerificationError

from lapse import metrics
from lapse.db.models import File, Link
from lapse.errors import Gone, GoneReason, NotFound, PasswordRequired, RateLimited, Unavailable
from lapse.links.recent import RecentLinks
from lapse.links.redeemer import Redeemer
from lapse.links.schemas import LinkState
from lapse.links.service import link_state, password_hasher
from lapse.ratelimit import RateLimiter
from lapse.tokens import GrantSigner, hash_secret, looks_like_token


@dataclass(slots=True)
class Target:
    link: Link
    file: File
    granted_until: datetime | None = None  # the caller holds a live grant until then: serve without counting

    @property
    def granted(self) -> bool:
        return self.granted_until is not None


# Where the link is looked up: `Redeemer.find` (links.redeemer), or `LinkRepository(session).find_by_token` in an
# ORM session. Either answers the link and its file (None once deleted) by token hash.
FindLink = Callable[[str], Awaitable[tuple[Link, File | None] | None]]


async def resolve(
    find: FindLink,
    *,
    secret: bytes,
    signer: GrantSigner,
    token: str,
    grant: str | None,
    now: datetime,
    recent: RecentLinks | None = None,
) -> Target:
    """Find the link and decide whether it may be served: 404 unknown, 410 dead.

    A grant outlives the link's expiry and its last download (a transfer that started in time finishes), but not
    a revocation or the file's deletion. Pass `recent` only for a GET that will be counted unless granted: a
    live link found there is served without reading it again (links.recent says why that is safe).
    """
    if not looks_like_token(token):
        raise NotFound("No such link.")
    token_hash = hash_secret(secret, token)
    if recent is not None and (remembered := recent.get(token_hash)) is not None:
        kept_link, kept_file = remembered
        if link_state(kept_link, now) is LinkState.ACTIVE and not (
            grant is not None and signer.verify(grant, link_id=kept_link.id, now=now)
        ):
            return Target(link=kept_link, file=kept_file)  # to be counted: the UPDATE re-checks
    found = await find(token_hash)
    if found is None:
        raise NotFound("No such link.")
    link, file = found
    granted_until = None if grant is None else signer.valid_until(grant, link_id=link.id, now=now)
    granted = granted_until is not None
    state = link_state(link, now)
    if recent is not None:
        if state is LinkState.ACTIVE and file is not None:
            recent.keep(token_hash, link, file)
        else:  # gone, or alive only for a grant's holder
            recent.forget(token_hash)
    if granted and state in (LinkState.EXPIRED, LinkState.EXHAUSTED):
        state = LinkState.ACTIVE
    if state is not LinkState.ACTIVE or file is None:
        raise Gone(GoneReason(state.value))
    return Target(link=link, file=file, granted_until=granted_until)


# A refused redemption whose re-read shows a live link lost a race to a change (a PATCH raising max_downloads or
# extending the expiry committed between the UPDATE and the read): worth trying again, but not for ever.
REDEEM_TRIES = 3


async def redeem(redeemer: Redeemer, *, target: Target, now: datetime) -> None:
    """Spend one download and commit it (one conditional UPDATE in its own transaction), or raise Gone if another
    request took the last one first. When this returns, the download is durably counted."""
    for _ in range(REDEEM_TRIES):
        downloads = await redeemer.redeem(target.link.id, now)
        if downloads is not None:
            target.link.downloads = downloads
            metrics.DOWNLOADS.inc()
            return
        current = await redeemer.get_link(target.link.id)
        state = LinkState.FILE_DELETED if current is None else link_state(current, now)
        if state is not LinkState.ACTIVE:
            raise Gone(GoneReason(state.value))
    raise Unavailable("The link kept changing while it was being redeemed; try again.", retry_after=1)


async def check_password(*, target: Target, password: str | None, limiter: RateLimiter, client: str) -> None:
    """Refuse (never counting) unless the password matches; throttle guessing per link and per client."""
    link = target.link
    if link.password_hash is None or target.granted:
        return
    if not password:
        raise PasswordRequired("This link needs a password.")
    keys = (f"pw:link:{link.id}", f"pw:client:{client}")
    # Counted before the (slow) verification, so concurrent guesses cannot all pass a check none has yet counted.
    retry_after = await limiter.attempt(*keys)
    if retry_after:
        raise RateLimited("Too many wrong passwords; try again later.", retry_after=retry_after)
    if not await anyio.to_thread.run_sync(_verify, link.password_hash, password):
        raise PasswordRequired("The password is not right.")
    await limiter.refund(*keys)  # only wrong passwords use up the allowance


def _verify(password_hash: str, password: str) -> bool:
    try:
        return password_hasher.verify(password_hash, password)
    except (VerificationError, InvalidHashError):
        return False
