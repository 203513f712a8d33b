"""Responses that send a stored file's bytes once links.download has decided what to send."""

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import BinaryIO

import anyio
from starlette.responses import FileResponse, Response
from starlette.types import Receive, Scope
from starlette.types import Send as ASGISend

from lapse.delivery import serving
from lapse.storage import LocalFile

CHUNK = 512 * 1024  # a thread hop per 512 KiB, not per 64 KiB (CPU/GiB ÷ 4; RSS flat)
# The ASGI zero-copy send extension: a file's bytes handed to the server to `sendfile` (lapse.zerocopy).
ZERO_COPY = "http.response.zerocopysend"
PATH_SEND = "http.response.pathsend"


class JudgedFileResponse(FileResponse):
    """The ranges we already judged (see `serving`) of a file that links.download opened before counting; a
    password POST is answered as the GET it stands for. The whole file or one range
    goes by `sendfile` when the server offers zero-copy send (`lapse serve` does: lapse.zerocopy); otherwise, and
    for several ranges, FileResponse streams it in `CHUNK` pieces, one thread hop each, over a scope whose Range
    and If-Range say exactly what we decided. The response owns the file and closes it."""

    chunk_size = CHUNK

    def __init__(self, local: LocalFile, *, headers: dict[str, str], ranges: list[tuple[int, int]] | None) -> None:
        super().__init__(local.path, headers=headers, media_type=headers["Content-Type"], stat_result=local.stat)
        self.file = local.file
        self.ranges = ranges

    async def __call__(self, scope: Scope, receive: Receive, send: ASGISend) -> None:
        try:
            if ZERO_COPY in scope.get("extensions", {}) and not self.several_ranges:
                await self.send_zero_copy(self.file, send)
                return
            # No `pathsend` (granian offers it): the server would reopen the path, not send the file we opened.
            extensions = {k: v for k, v in scope.get("extensions", {}).items() if k != PATH_SEND}
            judged = {"range": serving.range_header(self.ranges) if self.ranges else None, "if_range": None}
            scope = serving.scope_with_headers(scope, **judged)
            await super().__call__({**scope, "method": "GET", "extensions": extensions}, receive, send)
        finally:
            self.file.close()  # not awaited: it must run even while the task is being cancelled

    @asynccontextmanager
    async def _open_file(self) -> AsyncIterator[anyio.AsyncFile[bytes]]:
        """FileResponse's own streaming reads the file `download` opened (and __call__ closes), not the path: what
        was checked before counting is what is sent. Without this override (Starlette renamed it), FileResponse
        would reopen the path — still correct bytes, only without that guarantee."""
        yield anyio.wrap_file(self.file)

    @property
    def several_ranges(self) -> bool:
        return self.ranges is not None and len(self.ranges) > 1

    async def send_zero_copy(self, file: BinaryIO, send: ASGISend) -> None:
        size = self.stat_result.st_size  # type: ignore[union-attr]  # always given
        status, (start, end), headers = 200, (0, size - 1), self.raw_headers
        if self.ranges:
            status, (start, end) = 206, self.ranges[0]
            headers = [(k, v) for k, v in headers if k != b"content-length"] + [
                (b"content-length", str(end - start + 1).encode()),
                (b"content-range", f"bytes {start}-{end}/{size}".encode()),
            ]
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": ZERO_COPY, "file": file, "offset": start, "count": end - start + 1})


class SmallFileResponse(Response):
    """A small file whose bytes came with its stat (one thread hop for both), sent whole or as its one judged
    range in a single message: no FileResponse open / read / close hops, no disconnect-watching task group,
    no header parsing — together they cost more than the rest of a 1 KiB download."""

    def __init__(self, body: bytes, *, headers: dict[str, str], span: tuple[int, int] | None) -> None:
        size = len(body)
        start, end = span if span is not None else (0, size - 1)
        self.status_code = 200 if span is None else 206
        self.background = None
        fields = {**headers, "Content-Length": str(end - start + 1)}
        if span is not None:
            fields["Content-Range"] = f"bytes {start}-{end}/{size}"
        self.raw_headers = [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in fields.items()]
        self.body = body[start : end + 1]

    async def __call__(self, scope: Scope, receive: Receive, send: ASGISend) -> None:
        await send({"type": "http.response.start", "status": self.status_code, "headers": self.raw_headers})
        await send({"type": "http.response.body", "body": self.body, "more_body": False})
