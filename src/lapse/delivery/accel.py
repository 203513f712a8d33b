"""`LAPSE_DELIVERY=accel`: Lapse judges and counts a download, then nginx sends the bytes (X-Accel-Redirect).

links.download asks `location` after counting; the transport answers with the blob's `uri` and the headers.

nginx must never contradict what Lapse decided after counting: a 304 or 412 from nginx would be a spent download
without bytes, and other ranges than ours a wrong answer. What nginx 1.22 does after an X-Accel-Redirect (measured,
and read in its source; tests/server/test_accel.py pins it through a real nginx):

- Of our headers it keeps Content-Type, Content-Disposition, Cache-Control, Expires, Set-Cookie and Accept-Ranges.
  It drops the rest (ETag, Last-Modified, nosniff, CSP, Lapse-Grant, …) and sets its own ETag and Last-Modified
  from the blob's mtime and size; so the internal location adds ours back from `$upstream_http_*`.
- It judges the client's headers again, in two filters. The not-modified filter runs before `add_header`, against
  nginx's own validators: If-Unmodified-Since against the blob's mtime, If-Match against nginx's ETag (none with
  `etag off`: every If-Match but `*` fails), If-None-Match, If-Modified-Since. The range filter runs after
  `add_header`, so it compares If-Range with our ETag and Last-Modified, and then parses Range by its own rules
  (a trailing tab, which our HTTP parser trims away, makes it answer 416).

So the config turns off what it can (`etag off` and `if_modified_since off`: nginx then answers 304 only to
`If-None-Match: *`, which Lapse has answered 304 before counting; `max_ranges 0` where the whole file is to go),
and `location()` hands nginx only requests it will judge as Lapse did. The rest — If-Match or If-Unmodified-Since
present, several ranges, a Range or If-Range whose bytes nginx may read differently — Lapse streams itself: rare
requests, and counted exactly the same.

With S3 storage the internal locations proxy a presigned GET to the store instead (deploy/nginx/lapse-s3-*.conf;
tests/server/test_accel_s3.py). No header of the client's reaches the store: `whole` sends it no Range, `ranges`
the one plain Range decided here. So an If-Range, which stores ignore, is judged here alone, and the store is asked
for the whole file or that range. The store's ETag and Last-Modified are hidden, leaving nginx no validator but
ours. `location()` decides as for a folder; what it keeps from nginx Lapse streams from the store itself.
"""

import re
from collections.abc import Iterable
from urllib.parse import quote

from starlette.datastructures import Headers

WHOLE = "whole/"  # the internal location with `max_ranges 0`: nginx sends the whole file, whatever was asked
RANGES = "ranges/"  # the one where nginx applies the client's Range (and If-Range, against our validators)

# nginx (`proxy_set_header`, deploy/nginx/lapse.conf) repeats the Range and If-Range it received in brackets, which
# no HTTP parser trims: what nginx will judge, byte for byte.
SEEN_RANGE = "lapse-accel-range"
SEEN_IF_RANGE = "lapse-accel-if-range"

# Judged by nginx against validators that are not ours: never hand nginx a request that carries one.
_NGINX_VALIDATES = frozenset({b"if-match", b"if-unmodified-since"})
# nginx reads one line of each; another reader might take another: hand nginx a request only with one at most.
_ONE_AT_MOST = frozenset({b"range", b"if-range", b"if-none-match"})
# One range that nginx's parser and ours read alike (18 digits never overflow nginx's off_t).
_PLAIN_RANGE = re.compile(r"bytes=(?:\d{1,18}-\d{0,18}|-\d{1,18})")


def location(headers: Headers, ranges: list[tuple[int, int]] | None) -> str | None:
    """The internal location (WHOLE or RANGES) where nginx answers exactly what Lapse decided to send, or None
    when nginx could judge this request differently and Lapse must send the bytes itself."""
    if not _nginx_agrees_on_preconditions(headers.raw):
        return None
    if ranges is None:
        return WHOLE
    if len(ranges) != 1:  # nginx merges nothing and refuses overlaps: several ranges are ours to send
        return None
    range_value = headers["range"]  # ranges were decided, so there is one
    if _PLAIN_RANGE.fullmatch(range_value) is None:
        return None
    if headers.get(SEEN_RANGE) != f"[{range_value}]":
        return None
    if headers.get(SEEN_IF_RANGE) != f"[{headers.get('if-range', '')}]":
        return None
    return RANGES


def _nginx_agrees_on_preconditions(raw: Iterable[tuple[bytes, bytes]]) -> bool:
    seen: set[bytes] = set()
    for name, _ in raw:
        if name in _NGINX_VALIDATES:
            return False
        if name in _ONE_AT_MOST:
            if name in seen:
                return False
            seen.add(name)
    return True


def uri(prefix: str, where: str, blob_path: str) -> str:
    """The X-Accel-Redirect value: the internal location and the blob's path below it (Storage.accel_path)."""
    return quote(f"{prefix}{where}{blob_path}")  # nginx unescapes X-Accel-Redirect (since 1.5.9)


def proxy_uri(prefix: str, where: str, request: str) -> str:
    """The X-Accel-Redirect value for a store nginx proxies: the internal location, then the presigned request
    (Storage.accel_proxy) as signed — its path already escaped, its query (the signature) passed on untouched."""
    return f"{prefix}{where}{request}"
