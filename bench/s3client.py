"""The client side of the S3 rows (bench/run.py), one transfer per process, timed from inside: Python's start and
imports are not in the figures. Prints one JSON line: bytes moved, wall seconds, and this process's CPU seconds
(every thread, user and system) over the transfer alone.

    s3client.py get URL
        GET with aiohttp, following a redirect, taking each piece as aiohttp received it (one read of the socket,
        at most 256 KiB) and discarding it: the library and the reads Lapse's S3 backend streams with (aiobotocore
        reads through aiohttp), so a direct GET from the store shows what reading the bytes costs a Python client,
        and the other rows what Lapse adds.
    s3client.py put FILE KEY
        A multipart upload of FILE by aiobotocore, configured as Lapse's backend is (path style, checksums only where
        S3 needs one) and as Lapse sends one: parts of S3_PART_SIZE bytes, one at a time, in order. Reads
        S3_ENDPOINT, S3_BUCKET, S3_PART_SIZE and the AWS_* keys from the environment.
"""

import asyncio
import json
import os
import sys
import time
from pathlib import Path

import aiohttp
from aiobotocore.config import AioConfig
from aiobotocore.session import get_session

Timed = dict[str, float]


def timed(started: tuple[float, float], moved: int) -> Timed:
    return {
        "bytes": moved,
        "seconds": time.perf_counter() - started[0],
        "cpu_seconds": time.process_time() - started[1],
    }


def clock() -> tuple[float, float]:
    return time.perf_counter(), time.process_time()


async def get(url: str) -> Timed:
    received = 0
    async with aiohttp.ClientSession() as session:
        started = clock()
        async with session.get(url) as answer:
            answer.raise_for_status()
            async for piece, _ in answer.content.iter_chunks():  # each piece as received: no slicing, no joining
                received += len(piece)
        return timed(started, received)


async def put(path: str, key: str) -> Timed:
    bucket, part_size = os.environ["S3_BUCKET"], int(os.environ["S3_PART_SIZE"])
    config = AioConfig(
        region_name="us-east-1",
        request_checksum_calculation="when_required",
        response_checksum_validation="when_required",
        s3={"addressing_style": "path"},
    )
    sent = 0
    # The client made (its service model loaded) before the clock starts: Lapse's is made once, at its first use.
    async with get_session().create_client("s3", endpoint_url=os.environ["S3_ENDPOINT"], config=config) as client:
        started = clock()
        upload_id = (await client.create_multipart_upload(Bucket=bucket, Key=key))["UploadId"]
        parts = []
        with Path(path).open("rb") as source:  # noqa: ASYNC230 (the page cache: as a plain client reads its file)
            while data := source.read(part_size):
                number = len(parts) + 1
                answer = await client.upload_part(
                    Bucket=bucket, Key=key, UploadId=upload_id, PartNumber=number, Body=data
                )
                parts.append({"ETag": answer["ETag"], "PartNumber": number})
                sent += len(data)
        await client.complete_multipart_upload(
            Bucket=bucket, Key=key, UploadId=upload_id, MultipartUpload={"Parts": parts}
        )
        return timed(started, sent)


def main() -> None:
    action, *rest = sys.argv[1:]
    print(json.dumps(asyncio.run(get(*rest) if action == "get" else put(*rest))))


if __name__ == "__main__":
    main()
