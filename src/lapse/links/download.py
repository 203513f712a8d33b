"""The download service: from the facts of a request for `/d/{token}` to a decision. No HTTP framework here.

The order is the contract, and every step before counting is free:

    resolve (404 unknown, 410 gone) → method (405) → prefetch (403) → password (401, 429)
    → the blob's size, and its bytes when small (503 when unreachable; 410 when its file was deleted meanwhile)
    → preconditions and Range (304, 412, 416) → HEAD (never counted)
    → open the blob (503: nothing counted yet) → count one download unless a grant covers it, committed
    → Accel (nginx sends, from the folder or proxying the store), Redirect (the store sends), or Send (the server
      sends what was opened).

Refusals are raised as domain errors (lapse.errors); everything else is a `Decision` for the transport to translate:
api.download (the framework's route), api.fast_download (in front of the framework), nothing else.
"""

import sys
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Literal, TypeVar

from starlette.datastructures import Headers

from lapse.db.models import Link
from lapse.delivery import accel, serving
from lapse.errors import Forbidden, NotAllowed, Unavailable
from lapse.links import redemption
from lapse.links.recent import RecentLinks
from lapse.links.redeemer import Redeemer
from lapse.links.redemption import Target
from lapse.ratelimit import RateLimiter
from lapse.storage import OpenBlob, Storage
from lapse.storage.base import BlobStat
from lapse.storage.small_cache import SmallFileCache
from lapse.tokens import GrantSigner, hash_secret

T = TypeVar("T")
Delivery = Literal["inline", "accel", "redirect"]
PasswordSource = Callable[[], Awaitable[str | None]]


async def _no_password() -> None:
    return None


# The facts and decisions below are not frozen: a frozen dataclass is built through object.__setattr__ field by
# field, five times the cost, and a download builds several. Nothing changes them once made.


@dataclass(slots=True)
class DownloadRequest:
    token: str
    method: str  # GET, HEAD, or POST (a password form, answered as the GET it stands for)
    headers: Headers  # the preconditions, Range and prefetch hints are read from these
    grant: str | None  # presented by the client (header or cookie)
    client: str  # for throttling password guesses
    password: PasswordSource = _no_password  # read only once the link is known to want one
    prefetch: bool = False  # a prefetch or a link preview (is_prefetch), refused so that it never spends one


@dataclass(slots=True)
class NewGrant:
    """Spent one download: the client may resume for `ttl` with this."""

    token: str
    ttl: timedelta


@dataclass(slots=True)
class NotModified:
    headers: dict[str, str]


@dataclass(slots=True)
class PreconditionFailed:
    pass


@dataclass(slots=True)
class RangeNotSatisfiable:
    size: int


@dataclass(slots=True)
class Send:
    """The bytes go from this server: from `body` (a small blob, whole) or `blob` (opened before counting); for a
    HEAD, neither. `ranges` None means the whole blob."""

    headers: dict[str, str]
    size: int
    ranges: list[tuple[int, int]] | None
    body: bytes | None = None
    blob: OpenBlob | None = None
    grant: NewGrant | None = None


@dataclass(slots=True)
class Accel:
    """nginx sends the blob from `location` (an internal URI) with these headers."""

    location: str
    headers: dict[str, str]
    grant: NewGrant | None = None


@dataclass(slots=True)
class Redirect:
    """The store sends the blob from `url`, which expires with the grant."""

    url: str
    headers: dict[str, str]
    grant: NewGrant | None = None


Decision = NotModified | PreconditionFailed | RangeNotSatisfiable | Send | Accel | Redirect


_PURPOSE = frozenset((b"sec-purpose", b"purpose", b"x-purpose"))


def is_prefetch(headers: Headers) -> bool:
    """A prefetch or a link preview says so in a Purpose header. One pass over the raw headers: this runs on
    every download."""
    for name, value in headers.raw:
        if name in _PURPOSE and (b"prefetch" in value.lower() or b"preview" in value.lower()):
            return True
    return False


class Downloads:
    """One per app (runtime.Runtime.downloads); the caches it keeps are this process's alone."""

    def __init__(
        self,
        *,
        redeemer: Redeemer,
        storage: Storage,
        secret: bytes,
        grants: GrantSigner,
        limiter: RateLimiter,
        grant_ttl: timedelta,
        delivery: Delivery,
        accel_prefix: str,
        accel_s3_prefix: str,
    ) -> None:
        self.redeemer = redeemer
        self.storage = storage
        self.secret = secret
        self.grants = grants
        self.limiter = limiter
        self.grant_ttl = grant_ttl
        self.delivery = delivery
        self.accel_prefix = accel_prefix
        self.accel_s3_prefix = accel_s3_prefix
        self.recent_links = RecentLinks()  # live links found lately (links.recent)
        self.small_blobs = SmallFileCache()  # small blobs sent lately, by storage key

    async def resolve(self, token: str, *, grant: str | None, now: datetime, recent: bool = False) -> Target:
        """The link and whether it may be served (404, 410). `recent`: only for a GET that will be counted
        unless granted (links.recent says why that is safe)."""
        return await redemption.resolve(
            self.redeemer.find,
            secret=self.secret,
            signer=self.grants,
            token=token,
            grant=grant,
            now=now,
            recent=self.recent_links if recent else None,
        )

    def forget(self, token: str) -> None:
        """Drop what is remembered of this link: it was refused, and the next answer must come from a fresh read."""
        self.recent_links.forget(hash_secret(self.secret, token))

    async def decide(self, request: DownloadRequest, *, now: datetime, trust_recent: bool = False) -> Decision:
        """See the module's docstring for the order. `trust_recent`: the fast path's plain GETs may be resolved
        from links.recent; a refusal then must be answered again with `trust_recent=False` after `forget`."""
        method = request.method
        target = await self.resolve(
            request.token, grant=request.grant, now=now, recent=trust_recent and method == "GET"
        )
        if method == "POST" and target.link.password_hash is None:
            raise NotAllowed("This link takes GET and HEAD.", allow="GET, HEAD")
        if request.prefetch:
            raise Forbidden("Prefetches are refused so that they never spend a download.")
        if target.link.password_hash is not None and not target.granted:
            password = await request.password()
            await redemption.check_password(
                target=target, password=password, limiter=self.limiter, client=request.client
            )

        stat = await self._stat(request, target, now)
        rep = serving.Representation(
            etag=f'"{target.file.sha256}"', last_modified=target.file.created_at, size=stat.size
        )
        headers = serving.representation_headers(rep, filename=target.file.name, content_type=target.file.content_type)
        judged = serving.evaluate(method, request.headers, rep)
        match judged:
            case serving.PreconditionFailed():
                return PreconditionFailed()
            case serving.NotModified() if method == "POST":  # 304 is for GET and HEAD only (RFC 9110 §13.1.2)
                return PreconditionFailed()
            case serving.NotModified():
                keep = ("ETag", "Last-Modified", "Cache-Control", *serving.SAFE_HEADERS)
                return NotModified(headers={k: v for k, v in headers.items() if k in keep})
            case serving.RangeNotSatisfiable():
                return RangeNotSatisfiable(size=stat.size)
            case serving.Send(ranges=ranges):
                pass
            case _:
                raise TypeError(judged)  # evaluate answers one of the above
        if method == "HEAD":  # never counted; it reports what a GET would find
            return Send(headers=headers | _link_status_headers(target.link), size=stat.size, ranges=None)
        return await self._spend_and_deliver(request, target, stat, headers, ranges, now=now)

    async def _stat(self, request: DownloadRequest, target: Target, now: datetime) -> BlobStat:
        key = target.file.storage_key
        kept = self.small_blobs.get(key)
        if kept is not None:
            return kept
        stat = await self._reach(request, now, self.storage.stat(key))
        self.small_blobs.keep(key, stat)
        return stat

    async def _reach(self, request: DownloadRequest, now: datetime, storage_call: Awaitable[T]) -> T:
        """The storage's answer. When the bytes cannot be read because the file was deleted since its link was
        read (a DELETE racing this download), the link answers 410 now, as it will on the next try; else 503."""
        try:
            return await storage_call
        except Unavailable:
            await self.resolve(request.token, grant=request.grant, now=now)
            raise

    async def _spend_and_deliver(
        self,
        request: DownloadRequest,
        target: Target,
        stat: BlobStat,
        headers: dict[str, str],
        ranges: list[tuple[int, int]] | None,
        *,
        now: datetime,
    ) -> Decision:
        in_memory = stat.body is not None and (ranges is None or len(ranges) == 1)
        blob = None
        if not in_memory:  # opened before counting: a download is never spent on bytes that cannot be read
            blob = await self._reach(request, now, self.storage.open(target.file.storage_key))
        try:
            elsewhere = await self._elsewhere(request, target, headers, ranges, now=now)  # may fail: nothing spent
            grant = None if target.granted else await self._spend(target, now)
        except BaseException:
            if blob is not None:
                blob.close()
            raise
        if elsewhere is not None:
            if blob is not None:
                blob.close()
            return replace(elsewhere, grant=grant)
        if blob is not None and blob.local() is None and ranges is not None and len(ranges) > 1:
            ranges = None  # a streamed blob is sent whole rather than as several parts (RFC 9110 allows either)
        body = stat.body if in_memory else None
        return Send(headers=headers, size=stat.size, ranges=ranges, body=body, blob=blob, grant=grant)

    async def _spend(self, target: Target, now: datetime) -> NewGrant:
        """Count one download, committed, and grant the resumption of this transfer."""
        await redemption.redeem(self.redeemer, target=target, now=now)
        return NewGrant(token=self.grants.sign(target.link.id, now + self.grant_ttl), ttl=self.grant_ttl)

    async def _elsewhere(
        self,
        request: DownloadRequest,
        target: Target,
        headers: dict[str, str],
        ranges: list[tuple[int, int]] | None,
        *,
        now: datetime,
    ) -> Accel | Redirect | None:
        """Whether nginx or the store sends the bytes (the settings and the request allow it), decided before
        counting; the grant is added once counted."""
        file = target.file
        if self.delivery == "accel":
            where = accel.location(request.headers, ranges)
            if where is None:
                return None
            path = self.storage.accel_path(file.storage_key)  # a folder's: sync, nothing to wait for
            if path is not None:
                return Accel(location=accel.uri(self.accel_prefix, where, path), headers=headers)
            # A store's: nginx sends no header of the client's to it (no If-*, so If-Range, which stores ignore,
            # never reaches one), only the Range `where` allows, and the store answers what Lapse decided here.
            proxied = await self.storage.accel_proxy(
                file.storage_key, until=self._url_until(target, now), content_type=headers["Content-Type"]
            )
            if proxied is not None:
                return Accel(location=accel.proxy_uri(self.accel_s3_prefix, where, proxied), headers=headers)
        elif self.delivery == "redirect" and (ranges is None or len(ranges) == 1):
            if _store_may_judge_differently(request.headers):
                return None
            url = await self.storage.presign(
                file.storage_key,
                until=self._url_until(target, now),
                filename=file.name,
                content_type=headers["Content-Type"],
            )
            if url is not None:
                return Redirect(url=url, headers=headers)
        return None

    def _url_until(self, target: Target, now: datetime) -> datetime:
        """A presigned URL never outlives the grant the client holds, or the one `_spend` is about to sign: a
        resume comes back for a new one."""
        if target.granted_until is not None:
            return target.granted_until
        return self.grants.ends(now + self.grant_ttl)


def _store_may_judge_differently(headers: Headers) -> bool:
    """A browser sends its request headers again to the store, which judges validators by its own (an MD5 ETag,
    its own dates) and ignores If-Range, and reads Range its own way where this server ignores it (the store
    answers 416 to `bytes=5-4` or `bytes=abc`, a part of a list of ranges to a list): such a request is answered
    by this server. A Range of one plain range is judged alike by both."""
    validators = ("if-match", "if-none-match", "if-modified-since", "if-unmodified-since", "if-range")
    if any(name in headers for name in validators):
        return True
    ranges = headers.getlist("range")
    if not ranges:
        return False
    judged = serving.parse_range(ranges[0], sys.maxsize)  # the file's size does not matter to the form
    one = type(judged) is serving.Send and judged.ranges is not None and len(judged.ranges) == 1
    return len(ranges) > 1 or "," in ranges[0] or not one


def _link_status_headers(link: Link) -> dict[str, str]:
    remaining = "unlimited" if link.max_downloads is None else str(max(link.max_downloads - link.downloads, 0))
    return {"Lapse-Downloads-Remaining": remaining, "Lapse-Expires-At": link.expires_at.isoformat()}
