"""Sending a blob that the storage streams (no local file to hand to the server): whole, or one judged range."""

import logging

from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from lapse.errors import Unavailable
from lapse.storage import OpenBlob

logger = logging.getLogger("lapse.download")


class StreamedBlobResponse(Response):
    """Each piece is awaited into the transport before the next is read: memory stays at one piece. The blob was
    opened before the download was counted; this closes it, whatever happens."""

    def __init__(self, blob: OpenBlob, *, headers: dict[str, str], size: int, span: tuple[int, int] | None) -> None:
        self.blob = blob
        self.background = None
        self.status_code = 200 if span is None else 206
        self.start, self.end = span if span is not None else (0, size - 1)
        fields = {**headers, "Content-Length": str(self.end - self.start + 1)}
        if span is not None:
            fields["Content-Range"] = f"bytes {self.start}-{self.end}/{size}"
        self.raw_headers = [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in fields.items()]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await send({"type": "http.response.start", "status": self.status_code, "headers": self.raw_headers})
            if self.end >= self.start:
                try:
                    async for piece in self.blob.chunks(self.start, self.end):
                        await send({"type": "http.response.body", "body": piece, "more_body": True})
                except Unavailable:
                    # The storage failed with the headers out (logged where it failed): there is no answer left to
                    # give, and no crash to report. The answer stays unfinished, so the server cuts the connection
                    # (lapse.zerocopy: a reset), and the grant resumes the transfer.
                    logger.warning("download.stream_cut range=%d-%d", self.start, self.end)
                    return
            await send({"type": "http.response.body", "body": b"", "more_body": False})
        finally:
            self.blob.close()
