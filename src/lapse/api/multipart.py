"""Streaming one file out of a multipart/form-data body, with python-multipart's push parser.

Why not `request.form()`/`UploadFile`: Starlette spools every file part to disk with no total cap, and
FastAPI would read the whole body before our API-key dependency runs. Here the body is parsed as it arrives,
after authentication, and the file part's bytes go straight to storage, counted against the cap.
"""

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from python_multipart.exceptions import FormParserError
from python_multipart.multipart import MultipartParser, parse_options_header
from starlette.requests import Request

from lapse.errors import InvalidInput, TooLarge, UnsupportedMedia

if TYPE_CHECKING:
    from python_multipart.multipart import MultipartCallbacks

MAX_PARTS = 16
MAX_HEADER_BYTES = 16 * 1024  # all part headers together; a file part's body is capped by storage


@dataclass
class _Events:
    """What the sync callbacks saw during one `parser.write`, consumed by the async side."""

    file_data: list[bytes] = field(default_factory=list)
    file_started: bool = False
    file_ended: bool = False
    filename: str | None = None
    content_type: str | None = None


class MultipartFile:
    """The `file` field of a form: its name and type are known once `open()` returns; then iterate `chunks()`."""

    def __init__(self, request: Request, *, max_body: int, field_name: str = "file") -> None:
        content_type, params = parse_options_header(request.headers.get("content-type", ""))
        boundary = params.get(b"boundary")
        if content_type != b"multipart/form-data" or not boundary:
            raise UnsupportedMedia("Send the file as multipart/form-data with a `file` field, or PUT the raw body.")
        self._field_name = field_name
        self._max_body = max_body
        self._body_bytes = 0
        self._stream = request.stream()
        self._events = _Events()
        self._in_file = False
        self._seen_file = False
        self._parts = 0
        self._header_bytes = 0
        self._header_field = b""
        self._headers: dict[bytes, bytes] = {}
        callbacks: MultipartCallbacks = {
            "on_part_begin": self._on_part_begin,
            "on_part_data": self._on_part_data,
            "on_part_end": self._on_part_end,
            "on_header_field": self._on_header_field,
            "on_header_value": self._on_header_value,
            "on_header_end": self._on_header_end,
            "on_headers_finished": self._on_headers_finished,
        }
        try:
            self._parser = MultipartParser(boundary, callbacks)
        except FormParserError as exc:  # a boundary longer than the parser takes (RFC 2046 allows 70 characters)
            raise InvalidInput("The multipart boundary is too long.") from exc
        self.filename = ""
        self.content_type: str | None = None

    # --- sync callbacks -------------------------------------------------------------------------------------
    def _on_part_begin(self) -> None:
        self._parts += 1
        if self._parts > MAX_PARTS:
            raise InvalidInput(f"A form may have at most {MAX_PARTS} parts.")
        self._headers = {}
        self._header_field = b""

    def _on_header_field(self, data: bytes, start: int, end: int) -> None:
        self._count_header(end - start)
        self._header_field += data[start:end]

    def _on_header_value(self, data: bytes, start: int, end: int) -> None:
        self._count_header(end - start)
        name = self._header_field.lower()
        self._headers[name] = self._headers.get(name, b"") + data[start:end]

    def _on_header_end(self) -> None:
        self._header_field = b""

    def _count_header(self, size: int) -> None:
        self._header_bytes += size
        if self._header_bytes > MAX_HEADER_BYTES:
            raise InvalidInput("The form's part headers are too large.")

    def _on_headers_finished(self) -> None:
        _, options = parse_options_header(self._headers.get(b"content-disposition", b""))
        name = options.get(b"name", b"").decode("utf-8", "replace")
        self._in_file = name == self._field_name and b"filename" in options
        if not self._in_file:
            return
        if self._seen_file:
            raise InvalidInput("Send one file per request.")
        self._seen_file = True
        self._events.file_started = True
        self._events.filename = options[b"filename"].decode("utf-8", "replace")
        declared = self._headers.get(b"content-type")
        self._events.content_type = declared.decode("latin-1") if declared else None

    def _on_part_data(self, data: bytes, start: int, end: int) -> None:
        if self._in_file:
            self._events.file_data.append(data[start:end])
        # Other fields are read and dropped; the part count and header cap bound what they can cost.

    def _on_part_end(self) -> None:
        if self._in_file:
            self._events.file_ended = True
        self._in_file = False

    # --- async side ---------------------------------------------------------------------------------------------
    async def _feed(self) -> bool:
        """Push the next body chunk through the parser; False at the end of the body."""
        async for chunk in self._stream:
            if chunk:
                self._body_bytes += len(chunk)
                if self._body_bytes > self._max_body:
                    raise TooLarge(f"The upload is larger than the limit of {self._max_body} bytes.")
                try:
                    self._parser.write(chunk)
                except FormParserError as exc:
                    raise InvalidInput("The multipart body is malformed.") from exc
                return True
        try:
            self._parser.finalize()
        except FormParserError as exc:
            raise InvalidInput("The multipart body is malformed.") from exc
        return False

    async def open(self) -> "MultipartFile":
        while not self._events.file_started:
            if not await self._feed():
                raise InvalidInput(f"The form has no `{self._field_name}` file field.")
        self.filename = self._events.filename or ""
        self.content_type = self._events.content_type
        return self

    async def chunks(self) -> AsyncIterator[bytes]:
        while True:
            pending, self._events.file_data = self._events.file_data, []
            for data in pending:
                yield data
            if self._events.file_ended:
                break
            if not await self._feed():
                raise InvalidInput("The upload ended before the file part did.")
        while await self._feed():  # drain the rest of the form (bounded), so a second file part is caught
            self._events.file_data.clear()
