"""Blobs in an S3-compatible bucket (`LAPSE_STORAGE_URL=s3://bucket/prefix`), through aiobotocore.

Every key is `<prefix><random hex>`, written once and never changed. An upload goes up in parts of
`LAPSE_S3_PART_SIZE` (one travelling while the next is received: two in memory) and is visible only once complete;
a failed or cancelled one is aborted. Anything the store does wrong (refused connection, timeout, 5xx, a missing
object) is `Unavailable`: the download service then answers 503 before counting.
"""

import asyncio
import contextlib
import hashlib
import logging
import time
from collections.abc import AsyncIterable, AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import aiohttp
import anyio
import anyio.to_thread
from aiobotocore.config import AioConfig
from aiobotocore.session import get_session
from botocore.exceptions import BotoCoreError, ClientError

from lapse.delivery.serving import content_disposition
from lapse.errors import TooLarge, Unavailable
from lapse.storage.base import SMALL_BLOB, BlobInfo, BlobStat, LocalFile, StoredBlob, is_key
from lapse.storage.presign import Credentials, Presigner

if TYPE_CHECKING:
    from types_aiobotocore_s3 import S3Client

logger = logging.getLogger("lapse.storage.s3")

CHUNK = 256 * 1024  # the largest piece of a streamed GET: one read of the socket (asyncio and uvloop read 256 KiB)
CHECK_TTL = 5.0  # seconds a health check's answer is reused: probes and redirects never hammer the store
HASH_IN_THREAD = 1024 * 1024  # a part this big is hashed on a thread while it uploads
# What the store's side can raise: botocore's errors, and aiohttp's (under botocore) while a body streams.
_STORE_ERRORS = (BotoCoreError, ClientError, aiohttp.ClientError, OSError, asyncio.TimeoutError)


class S3Storage:
    def __init__(
        self,
        *,
        bucket: str,
        prefix: str,
        endpoint: str | None,
        region: str,
        path_style: bool,
        part_size: int,
        redirect_ttl: timedelta,
        check_ttl: float = CHECK_TTL,
        list_page_size: int = 1000,
    ) -> None:
        self.bucket = bucket
        self.prefix = prefix
        self.endpoint = endpoint
        self.region = region
        self.part_size = part_size
        self.redirect_ttl = redirect_ttl
        self.check_ttl = check_ttl
        self.list_page_size = list_page_size
        self._session = get_session()
        self._config = AioConfig(
            region_name=region,
            # botocore >= 1.36 adds CRC checksums that many S3-compatible stores refuse: only where S3 needs one
            request_checksum_calculation="when_required",
            response_checksum_validation="when_required",
            s3={"addressing_style": "path" if path_style else "virtual"},
            retries={"max_attempts": 2, "mode": "standard"},
            connect_timeout=5,
            read_timeout=30,
        )
        self._stack = contextlib.AsyncExitStack()
        self._client: S3Client | None = None
        # Where a presigned URL points: the store's own address for the bucket, as the client would send to it.
        base = (endpoint or f"https://s3.{region}.amazonaws.com").rstrip("/")
        scheme, _, host = base.partition("://")
        self._presigner = Presigner(
            base=f"{base}/{bucket}" if path_style else f"{scheme}://{bucket}.{host}", region=region
        )
        # nginx's requests (accel) name the bucket in the path whatever the clients' URLs do: one Host for every
        # bucket, which nginx's config names once.
        self._proxy_presigner = Presigner(base=f"{base}/{bucket}", region=region)
        self._lock = asyncio.Lock()
        self._checked_at = -check_ttl
        self._check_error: Unavailable | None = None

    def _key(self, key: str) -> str:
        if not key.isalnum():  # keys are ours (hex); never let anything else name an object
            raise ValueError(f"bad storage key {key!r}")
        return self.prefix + key

    async def client(self) -> "S3Client":
        if self._client is None:
            async with self._lock:
                if self._client is None:
                    # The settings and the credential chain are read here (a profile that does not exist, say):
                    # Unavailable with the reason, as for a store that does not answer, never a traceback
                    async with _translated("connect", self.bucket, log=False):
                        made = self._session.create_client("s3", endpoint_url=self.endpoint, config=self._config)
                        self._client = await self._stack.enter_async_context(made)
        return self._client

    async def put(self, key: str, chunks: AsyncIterable[bytes], *, max_size: int) -> StoredBlob:
        upload = _Upload(self, self._key(key), max_size=max_size)
        size = await upload.run(chunks)
        return StoredBlob(key=key, size=size, sha256=upload.digest.hexdigest())

    async def stat(self, key: str) -> BlobStat:
        client = await self.client()
        async with _translated("stat", key):
            head = await client.head_object(Bucket=self.bucket, Key=self._key(key))
            size = head["ContentLength"]
            if size > SMALL_BLOB:
                return BlobStat(size=size)
            got = await client.get_object(Bucket=self.bucket, Key=self._key(key), IfMatch=head["ETag"])
            async with got["Body"] as body:
                data = await body.read()
        return BlobStat(size=size, body=data if len(data) == size else None)

    async def size(self, key: str) -> int | None:
        """The object's size, or None when there is none: `stat` answers Unavailable for both, right for a
        download, not for a copy that must tell a missing object from a failing store."""
        client = await self.client()
        async with _translated("size", key, log=False):  # the caller reports it
            try:
                head = await client.head_object(Bucket=self.bucket, Key=self._key(key))
            except ClientError as exc:
                if exc.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
                    return None
                raise
        size: int = head["ContentLength"]
        return size

    async def open(self, key: str) -> "S3Blob":
        client = await self.client()
        async with _translated("open", key):  # before counting: a missing object is refused here
            head = await client.head_object(Bucket=self.bucket, Key=self._key(key))
        return S3Blob(client, bucket=self.bucket, key=self._key(key), etag=head["ETag"])

    async def delete(self, key: str) -> None:
        client = await self.client()
        async with _translated("delete", key):
            await client.delete_object(Bucket=self.bucket, Key=self._key(key))  # a missing key is not an error

    async def abandon(self, key: str) -> None:
        """Abort every unfinished multipart upload of exactly this key (NoSuchUpload: already gone), then delete
        the object."""
        client = await self.client()
        name = self._key(key)
        async with _translated("abandon", key):
            pages = client.get_paginator("list_multipart_uploads").paginate(Bucket=self.bucket, Prefix=name)
            async for page in pages:
                for upload in page.get("Uploads", []):
                    if upload["Key"] == name:
                        await self._abort_upload(client, name, upload["UploadId"])
            await client.delete_object(Bucket=self.bucket, Key=name)

    async def _abort_upload(self, client: "S3Client", name: str, upload_id: str) -> None:
        try:
            await client.abort_multipart_upload(Bucket=self.bucket, Key=name, UploadId=upload_id)
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") != "NoSuchUpload":
                raise

    async def scan(self) -> AsyncIterator[list[BlobInfo]]:
        """ListObjectsV2, then ListMultipartUploads (`temporary`, dated when initiated), page by page."""
        client = await self.client()
        async with _translated("list", self.prefix):
            objects = client.get_paginator("list_objects_v2").paginate(
                Bucket=self.bucket, Prefix=self.prefix, PaginationConfig={"PageSize": self.list_page_size}
            )
            async for page in objects:
                found = [
                    BlobInfo(key=name, modified_at=item["LastModified"], temporary=False)
                    for item in page.get("Contents", [])
                    if is_key(name := item["Key"].removeprefix(self.prefix))  # only ever ours
                ]
                if found:
                    yield found
            uploads = client.get_paginator("list_multipart_uploads").paginate(
                Bucket=self.bucket, Prefix=self.prefix, PaginationConfig={"PageSize": self.list_page_size}
            )
            async for listed in uploads:
                found = [
                    BlobInfo(key=name, modified_at=item["Initiated"], temporary=True)
                    for item in listed.get("Uploads", [])
                    if is_key(name := item["Key"].removeprefix(self.prefix))
                ]
                if found:
                    yield found

    async def check(self) -> None:
        """HeadBucket, its answer kept for a few seconds: cheap enough for every readiness probe and redirect."""
        if time.monotonic() - self._checked_at >= self.check_ttl:
            try:
                client = await self.client()
                async with _translated("check", self.bucket, log=False):  # the caller reports it (readyz, start)
                    await client.head_bucket(Bucket=self.bucket)
                self._check_error = None
            except Unavailable as exc:
                self._check_error = exc
            self._checked_at = time.monotonic()
        if self._check_error is not None:
            raise self._check_error

    def accel_path(self, key: str) -> str | None:
        return None  # no file for nginx to read: it proxies the store instead (accel_proxy)

    async def accel_proxy(self, key: str, *, until: datetime, content_type: str) -> str:
        """`<bucket>/<key>?<query>` presigned for the endpoint's host, which nginx sends as Host. The store's
        answer carries `content_type` (nginx passes the store's Content-Type on, not Lapse's); never a
        Content-Disposition, since nginx keeps Lapse's and would send both."""
        url = await self._signed(self._proxy_presigner, key, until, {"response-content-type": content_type})
        return url.removeprefix(f"{self._proxy_presigner.scheme}://{self._proxy_presigner.host}/")

    async def presign(self, key: str, *, until: datetime, filename: str, content_type: str) -> str:
        params = {
            "response-cache-control": "private, no-store",
            "response-content-disposition": content_disposition(filename),
            "response-content-type": content_type,
        }
        return await self._signed(self._presigner, key, until, params)

    async def _signed(self, presigner: Presigner, key: str, until: datetime, params: dict[str, str]) -> str:
        await self.check()  # presigning is local: a dead store would only show after counting
        credentials = await self._session.get_credentials()
        frozen = None if credentials is None else await credentials.get_frozen_credentials()
        if frozen is None or frozen.access_key is None or frozen.secret_key is None:
            raise Unavailable("No S3 credentials to sign with.")
        # The URL's end is X-Amz-Date (whole seconds) + X-Amz-Expires, both counted from the instant of signing:
        # never past `until`, however long the checks above took.
        signed_at = datetime.now(UTC).replace(microsecond=0)
        seconds = max(1, int(min(until - signed_at, self.redirect_ttl).total_seconds()))
        return presigner.url(
            self._key(key),
            credentials=Credentials(frozen.access_key, frozen.secret_key, frozen.token),
            expires_in=seconds,
            now=signed_at,
            params=params,
        )

    async def aclose(self) -> None:
        await self._stack.aclose()
        self._client = None


class S3Blob:
    """An object checked to exist before its download was counted; read by ranged GETs, pinned to its ETag."""

    def __init__(self, client: "S3Client", *, bucket: str, key: str, etag: str) -> None:
        self._client = client
        self._bucket = bucket
        self._key = key
        self._etag = etag

    def local(self) -> LocalFile | None:
        return None

    async def chunks(self, start: int, end: int) -> AsyncIterator[bytes]:
        async with _translated("read", self._key):
            got = await self._client.get_object(
                Bucket=self._bucket, Key=self._key, Range=f"bytes={start}-{end}", IfMatch=self._etag
            )
            body = got["Body"]
            try:
                left = end - start + 1
                # Each piece as aiohttp received it (one read of the socket), pulled as the client takes them
                # (back-pressure): read(n) slices and joins them into n-byte pieces, a copy of every byte in Python
                async for piece, _ in body.raw_stream.content.iter_chunks():
                    left -= len(piece)
                    yield piece
                if left != 0:
                    raise Unavailable("The object ended early.")
            finally:
                body.close()

    def close(self) -> None:
        pass  # nothing held between reads: each `chunks` closes its own response


class _Upload:
    """One `put`: a single PutObject when the stream fits in one part, else a multipart upload."""

    def __init__(self, storage: S3Storage, key: str, *, max_size: int) -> None:
        self.storage = storage
        self.key = key
        self.max_size = max_size
        self.digest = hashlib.sha256()
        self.upload_id: str | None = None
        self.parts: list[dict[str, Any]] = []

    async def run(self, chunks: AsyncIterable[bytes]) -> int:
        client = await self.storage.client()
        size = filled = 0
        pieces: list[bytes] = []  # joined once per part: one copy of each byte, where a bytearray took two
        sending: asyncio.Task[None] | None = None  # one part travels while the next is received
        try:
            async for chunk in chunks:
                size += len(chunk)
                if size > self.max_size:
                    raise TooLarge(f"The upload is larger than the limit of {self.max_size} bytes.")
                pieces.append(chunk)
                filled += len(chunk)
                if filled >= self.storage.part_size:
                    # In order: the next part starts (and is hashed) once this one is done; and the part that went
                    # is let go before this one is joined, so at most two are held at any moment
                    if sending is not None:
                        await asyncio.shield(sending)  # a cancel lands here, not inside the part (see below)
                    data = b"".join(pieces)
                    pieces.clear()
                    filled = 0
                    sending = asyncio.ensure_future(self._send_part(client, data))
            if sending is not None:
                await asyncio.shield(sending)
                sending = None
            data = b"".join(pieces)
            async with _translated("put", self.key):
                if self.upload_id is None:
                    await self._hash(data)
                    await client.put_object(Bucket=self.storage.bucket, Key=self.key, Body=data)
                else:
                    if data:
                        await self._send_part(client, data)
                    await client.complete_multipart_upload(
                        Bucket=self.storage.bucket,
                        Key=self.key,
                        UploadId=self.upload_id,
                        MultipartUpload={"Parts": self.parts},  # type: ignore[typeddict-item]
                    )
                    self.upload_id = None
        finally:
            with anyio.CancelScope(shield=True):  # a cancelled request still leaves no parts behind
                if sending is not None:
                    # Let the part in flight end rather than cancel it: cut short inside CreateMultipartUpload, the
                    # upload could exist with no id here to abort it by
                    await asyncio.wait([sending])
                    if not sending.cancelled():
                        sending.exception()  # retrieved (raised already, or moot now): never logged as unhandled
                if self.upload_id is not None:
                    await self._abort(client)
        return size

    async def _hash(self, data: bytes) -> None:
        if len(data) >= HASH_IN_THREAD:
            await anyio.to_thread.run_sync(self.digest.update, data)
        else:
            self.digest.update(data)

    async def _send_part(self, client: "S3Client", data: bytes) -> None:
        async with _translated("put", self.key):
            if self.upload_id is None:
                made = await client.create_multipart_upload(Bucket=self.storage.bucket, Key=self.key)
                self.upload_id = made["UploadId"]
            number = len(self.parts) + 1
            sent = client.upload_part(
                Bucket=self.storage.bucket, Key=self.key, UploadId=self.upload_id, PartNumber=number, Body=data
            )
            answer, _ = await asyncio.gather(sent, self._hash(data))  # hashed while it travels
            self.parts.append({"ETag": answer["ETag"], "PartNumber": number})

    async def _abort(self, client: "S3Client") -> None:
        try:
            await self.storage._abort_upload(client, self.key, str(self.upload_id))
        except _STORE_ERRORS:
            logger.warning("storage.s3.abort_failed", extra={"key": self.key}, exc_info=True)


@contextlib.asynccontextmanager
async def _translated(action: str, what: str, *, log: bool = True) -> AsyncIterator[None]:
    """The store's failures as Unavailable (503, nothing counted), logged once with what was asked."""
    try:
        yield
    except _STORE_ERRORS as exc:
        code = exc.response.get("Error", {}).get("Code", "") if isinstance(exc, ClientError) else type(exc).__name__
        if log:
            logger.warning("storage.s3.failed", extra={"action": action, "what": what, "error": code})
        raise Unavailable("Storage is not available right now.") from exc
