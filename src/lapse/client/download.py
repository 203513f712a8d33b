"""`lapse get`: download a link to a file, resuming an interrupted transfer with its grant.

1. Look for an unfinished download of the same URL (`partial.find`): its grant opens the link without counting.
2. HEAD the link, which never counts: name, size and ETag. A password link answers 401; we ask and send the
   password as Basic auth (a header, never the URL).
3. GET: with the grant and `Range: bytes=<have>-` when resuming, plainly otherwise. A GET without a live grant
   spends one download and its answer carries a new grant, saved before the first byte is written, so that
   even a kill -9 a moment later leaves a resumable download.
4. The answer is the bytes, or (`LAPSE_DELIVERY=redirect`) a 302 to a presigned URL at the store. Redirects are
   never followed by the HTTP library, which would send the grant, Range and If-Range on to the store: the store
   gets a request built from scratch, with only `User-Agent` and `Range`. A store refusing its URL (403/400: it
   expired during a pause) sends us back to the link with the grant for a new one, which counts nothing. The
   presigned URL is never saved: a resume always asks the link again.
5. Stream into `<target>.part` in fixed chunks, then check the size and the sha256 against the link's HEAD (its
   ETag is the file's sha256; a store's own ETag is an MD5 and never consulted) and only then rename into place.
"""

import hashlib
import os
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

import httpx

from lapse.client import partial
from lapse.client.api import USER_AGENT
from lapse.client.errors import (
    ClientError,
    ConnectionFailed,
    ServerError,
    Unauthorized,
    Unavailable,
    UsageError,
    VerificationFailed,
    connection_error,
    error_for,
)
from lapse.client.naming import choose_target, filename_from_disposition, part_path, sidecar_path
from lapse.client.partial import PartialState

CHUNK_SIZE = 64 * 1024  # small enough for a smooth progress bar and --limit-rate, large enough to be cheap
PASSWORD_TRIES = 3
STORE_TRIES = 3  # presigned URLs asked for in one run: each refusal by the store sends us back for a new one
LINK_HOPS = 3  # redirects of the link's own address followed (http to https on the same host)
TIMEOUT = httpx.Timeout(30.0, connect=10.0)
_LINK_PATH = re.compile(r"^(?P<prefix>.*/)[ds]/(?P<token>[A-Za-z0-9_-]{16,64})/?$")
_SHA256_ETAG = re.compile(r'^"([0-9a-f]{64})"$')
_CONTENT_RANGE = re.compile(r"^bytes (\d+)-(\d+)/(\d+|\*)$")

AskPassword = Callable[[bool], str]  # called with True when the previous password was refused


@dataclass(frozen=True, slots=True)
class Transfer:
    target: Path
    size: int | None  # None when the server did not say
    offset: int  # bytes already on disk, not asked for again
    spent_download: bool  # this run redeemed the link: a fresh download, or a resume whose grant had lapsed


@dataclass(frozen=True, slots=True)
class Downloaded:
    transfer: Transfer
    size: int
    sha256: str
    sha256_verified: bool  # the server exposed the sha256 (as the ETag) and it matched


def link_url(url: str) -> str:
    """The download URL for what the user pasted: a `/d/TOKEN` link, or its `/s/TOKEN` landing page."""
    try:
        parsed = httpx.URL(url.strip())
    except httpx.InvalidURL as exc:
        raise UsageError("That is not a URL.") from exc
    match = _LINK_PATH.match(parsed.path)
    if parsed.scheme not in ("http", "https") or not parsed.host or match is None:
        raise UsageError("That is not a Lapse link (expected http(s)://HOST/d/TOKEN).")
    return str(parsed.copy_with(path=f"{match['prefix']}d/{match['token']}", query=None, fragment=None))


class Throttle:
    """`--limit-rate`: sleep just enough that the average rate since the start stays under `rate` bytes/s."""

    def __init__(self, rate: int | None) -> None:
        self.rate = rate
        self.started = time.monotonic()
        self.done = 0

    def __call__(self, received: int) -> None:
        if not self.rate:
            return
        self.done += received
        ahead = self.done / self.rate - (time.monotonic() - self.started)
        if ahead > 0:
            time.sleep(ahead)


class _Link:
    """Requests to one link, carrying the password once it has been asked for."""

    def __init__(self, http: httpx.Client, url: str, ask_password: AskPassword) -> None:
        self.http = http
        self.given = url  # what the user gave: the saved state is found by it again, wherever the link moved
        self.url = url
        self.ask_password = ask_password
        self.auth: httpx.BasicAuth | None = None

    def open(self, method: str, headers: Mapping[str, str]) -> httpx.Response:
        """A streamed answer with a success status, or a GET's redirect to the store (never followed here); a
        password challenge is met by asking (401s never count)."""
        attempt = hops = 0
        while True:
            request = self.http.build_request(method, self.url, headers=dict(headers))
            try:
                response = self.http.send(request, auth=self.auth, stream=True)
            except httpx.TransportError as exc:
                raise connection_error(exc, self.url) from exc
            if response.is_success or (method == "GET" and response.is_redirect):
                return response
            response.read()
            response.close()
            if method == "HEAD" and response.is_redirect and hops < LINK_HOPS and self._moved(response):
                hops += 1
                continue
            error = error_for(response, what="link")
            if method == "HEAD" and response.status_code == 410 and "lapse-gone-reason" not in response.headers:
                raise self._why_gone(headers) or error  # a server from before the header
            if not isinstance(error, Unauthorized) or attempt == PASSWORD_TRIES:
                raise error
            attempt += 1
            self.auth = httpx.BasicAuth("", self.ask_password(self.auth is not None))

    def _moved(self, response: httpx.Response) -> bool:
        """The link itself moved (a proxy sending http to https): followed on the same host only (as cookies are,
        whatever the port), never to another, since the grant and password go with it."""
        here = httpx.URL(self.url)
        there = here.join(response.headers.get("location", ""))
        if there.host != here.host or there.scheme not in (here.scheme, "https"):
            return False
        try:
            self.url = link_url(str(there))
        except UsageError:
            return False
        return True

    def _why_gone(self, headers: Mapping[str, str]) -> ClientError | None:
        """A HEAD answer has no body, so a 410 cannot say why. A GET with an If-Match no file can satisfy cannot
        count either (a live link answers 412, RFC 9110 §13.1.1); a dead one answers its 410 with the reason."""
        request = self.http.build_request("GET", self.url, headers={**headers, "If-Match": '"lapse-probe"'})
        try:
            probe = self.http.send(request, auth=self.auth, stream=True)
        except httpx.TransportError:
            return None
        try:
            if probe.status_code != 410:
                return None
            probe.read()
            return error_for(probe, what="link")
        finally:
            probe.close()


def download(
    url: str,
    *,
    output: Path | None,
    ask_password: AskPassword,
    on_start: Callable[[Transfer], None],
    on_progress: Callable[[int], None],
    force: bool = False,
    limit_rate: int | None = None,
) -> Downloaded:
    """Download the link at `url` to `output` (a file, a folder, or None for the current folder)."""
    url = link_url(url)
    found = _find_partial(output, url)
    with (
        httpx.Client(timeout=TIMEOUT, follow_redirects=False, headers={"User-Agent": USER_AGENT}) as http,
        _Store() as store,
    ):
        link = _Link(http, url, ask_password)
        head = link.open("HEAD", _grant_header(found[1].grant if found else None))
        head.read()  # nothing to read, but a response read to its end leaves its connection for the GET
        head.close()
        size = _integer(head.headers.get("content-length"))
        etag = head.headers.get("etag")
        if found is not None:
            target, state = found
            offset = _usable_offset(part_path(target), state, size=size, etag=etag)
        else:
            suggested = filename_from_disposition(head.headers.get("content-disposition"))
            target, state, offset = choose_target(output, suggested=suggested), None, 0
            if target.exists() and not force:
                raise UsageError(f"{target} already exists; pass --force to replace it.")
        if offset and offset == size:  # every byte is here already (stopped just before the rename)
            transfer = Transfer(target=target, size=size, offset=offset, spent_download=False)
            on_start(transfer)
            digest = _hashed_prefix(part_path(target), offset).hexdigest()
            return _finish(transfer, have=offset, digest=digest, etag=etag)
        return _fetch(
            link,
            store,
            target,
            state=state,
            offset=offset,
            size=size,
            etag=etag,
            limit_rate=limit_rate,
            on_start=on_start,
            on_progress=on_progress,
        )


def _find_partial(output: Path | None, url: str) -> tuple[Path, PartialState] | None:
    if output is not None and not output.is_dir():
        state = partial.load(output)
        return (output, state) if state is not None and state.url == url else None
    return partial.find(output or Path.cwd(), url)


def _grant_header(grant: str | None) -> dict[str, str]:
    return {"Lapse-Grant": grant} if grant else {}


def _integer(value: str | None) -> int | None:
    return int(value) if value is not None and value.isdigit() else None


def _usable_offset(part: Path, state: PartialState, *, size: int | None, etag: str | None) -> int:
    """How many bytes of `.part` to keep: all of them if they belong to this very file and are not too many."""
    have = part.stat().st_size if part.exists() else 0
    if etag is None or state.etag != etag or (size is not None and have > size):
        return 0
    return have


class _Store:
    """Requests to where a redirect points (a presigned URL at the object store), each built from scratch on a
    client of its own: no cookie, no Lapse-Grant, no password, no key and no If-* ever goes there."""

    def __init__(self) -> None:
        self.http = httpx.Client(timeout=TIMEOUT, follow_redirects=False)

    def __enter__(self) -> "_Store":
        return self

    def __exit__(self, *exc: object) -> None:
        self.http.close()

    def get(self, url: httpx.URL, offset: int) -> httpx.Response | None:
        """The store's streamed answer, or None when it refused the URL (expired, or signed for another time)."""
        headers = {"User-Agent": USER_AGENT} | ({"Range": f"bytes={offset}-"} if offset else {})
        try:
            # httpx.Request rather than build_request: nothing of the client's (cookies, default headers) is added.
            response = self.http.send(httpx.Request("GET", url, headers=headers), stream=True)
        except httpx.TransportError as exc:
            raise connection_error(exc, url) from exc
        if response.status_code in (200, 206):
            return response
        response.read()
        response.close()
        if response.status_code in (400, 403):
            return None
        status = response.status_code
        if status >= 500:
            raise Unavailable(f"The file's store is unavailable ({status}); try again later.", status=status)
        raise ServerError(f"The file's store answered {status} {response.reason_phrase or 'error'}.", status=status)


def _store_url(link: _Link, response: httpx.Response) -> httpx.URL:
    """Where a redirect points, refused when it would leave https (a plain-http Lapse may name a plain-http store)."""
    here = httpx.URL(link.url)
    try:
        there = here.join(response.headers.get("location", ""))
    except httpx.InvalidURL as exc:
        raise ServerError(
            "The server redirected to an address that is not a URL.", status=response.status_code
        ) from exc
    if there.scheme != "https" and not (there.scheme == "http" and here.scheme == "http"):
        raise ServerError(
            "The server redirected the download to an address without https; it was not followed.",
            status=response.status_code,
        )
    return there


def _fetch(
    link: _Link,
    store: _Store,
    target: Path,
    *,
    state: PartialState | None,
    offset: int,
    size: int | None,
    etag: str | None,
    limit_rate: int | None,
    on_start: Callable[[Transfer], None],
    on_progress: Callable[[int], None],
) -> Downloaded:
    part = part_path(target)
    grant = state.grant if state is not None else None
    spent = False
    response: httpx.Response | None = None
    for _ in range(STORE_TRIES):
        # No If-Range: Lapse serves such a request itself rather than redirect it (the store ignores If-Range).
        # The partial bytes were kept only because the state's ETag is the link's, and the sha256 is checked.
        headers = _grant_header(grant) | ({"Range": f"bytes={offset}-"} if offset else {})
        answer = link.open("GET", headers)
        if new_grant := answer.headers.get("lapse-grant"):  # this GET redeemed: keep its grant before any byte
            grant, spent = new_grant, True
            PartialState(url=link.given, grant=new_grant, etag=etag, size=size).save(target)
        if not answer.is_redirect:
            response = answer
            break
        answer.read()
        answer.close()
        response = store.get(_store_url(link, answer), offset)
        if response is not None:
            break
    if response is None:
        raise ServerError("The file's store kept refusing the addresses the server gave; try again later.", status=403)
    received = 0
    try:
        if response.status_code == 206:
            _check_range(response, offset)
        else:  # the whole file is coming (the range was not honoured, or nothing to resume): start over
            offset = 0
        transfer = Transfer(
            target=target,
            size=size if size is not None else _answer_size(response, offset),
            offset=offset,
            spent_download=spent,
        )
        on_start(transfer)
        hasher = _hashed_prefix(part, offset)
        throttle = Throttle(limit_rate)
        with part.open("ab" if offset else "wb") as out:
            for chunk in response.iter_bytes(CHUNK_SIZE):
                out.write(chunk)
                hasher.update(chunk)
                received += len(chunk)
                on_progress(len(chunk))
                throttle(len(chunk))
            out.flush()
            os.fsync(out.fileno())
    except httpx.TransportError as exc:
        raise _broke_off(offset + received, size) from exc
    finally:
        response.close()
    return _finish(transfer, have=offset + received, digest=hasher.hexdigest(), etag=etag)


def _finish(transfer: Transfer, *, have: int, digest: str, etag: str | None) -> Downloaded:
    target = transfer.target
    if transfer.size is not None and have < transfer.size:
        raise _broke_off(have, transfer.size)
    expected = _SHA256_ETAG.match(etag or "")
    if (transfer.size is not None and have != transfer.size) or (expected and expected[1] != digest):
        partial.discard(target, keep_state=True)  # its grant may still fetch the file again for free
        raise VerificationFailed(
            f"{target.name} did not arrive intact (its size or sha256 differ from the server's); the partial "
            "file was removed, run the same command again to fetch it afresh."
        )
    part_path(target).replace(target)
    sidecar_path(target).unlink(missing_ok=True)
    return Downloaded(transfer=transfer, size=have, sha256=digest, sha256_verified=expected is not None)


def _hashed_prefix(part: Path, length: int) -> "hashlib._Hash":
    """The sha256 is checked over the whole file, so the bytes kept from before are hashed first."""
    hasher = hashlib.sha256()
    if not length:
        return hasher
    with part.open("rb") as file:
        remaining = length
        while remaining and (chunk := file.read(min(1024 * 1024, remaining))):
            hasher.update(chunk)
            remaining -= len(chunk)
    return hasher


def _check_range(response: httpx.Response, offset: int) -> None:
    match = _CONTENT_RANGE.match(response.headers.get("content-range", ""))
    if match is None or int(match[1]) != offset:
        raise ServerError("The server answered a different range than was asked for.", status=206)


def _answer_size(response: httpx.Response, offset: int) -> int | None:
    length = _integer(response.headers.get("content-length"))
    return None if length is None else offset + length


def _broke_off(have: int, size: int | None) -> ConnectionFailed:
    of = f" of {size}" if size is not None else ""
    return ConnectionFailed(f"The download broke off after {have}{of} bytes; run the same command again to resume it.")
