"""`lapse storage migrate --to s3://…` as an operator runs it (a real process) on an installation with local blobs
(SQLite and PostgreSQL) and a real RGW: every blob copied under its key and verified, a rerun skipping them, an
interrupted run finished by the next, damaged and missing blobs reported, bad targets refused in one line, and the
old links served from the bucket once the setting is switched."""

import functools
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import anyio.to_thread
import httpx
import pytest
from asgi_lifespan import LifespanManager

from lapse.app import create_app
from lapse.settings import Settings
from tests.helpers import ApiClient, stored_files
from tests.s3.conftest import BUCKET, PART_SIZE, s3_settings_for
from tests.s3.rgw import Rgw, free_port

pytestmark = pytest.mark.anyio

MiB = 1024 * 1024
T = TypeVar("T")


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return settings.model_copy(update={"max_upload_size": 16 * MiB})  # room for a multipart object


def in_thread(work: Callable[[], T]) -> "Any":
    return anyio.to_thread.run_sync(work)


def environment(settings: Settings, rgw: Rgw, **extra: str) -> dict[str, str]:
    """The installation's settings as an operator's shell holds them (nothing else of LAPSE_*; AWS_* from aws_env)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("LAPSE_")}
    assert settings.secret_key is not None
    return env | {
        "LAPSE_DATA_DIR": str(settings.data_dir),
        "LAPSE_DATABASE_URL": settings.database_url,
        "LAPSE_SECRET_KEY": settings.secret_key.get_secret_value(),
        "LAPSE_S3_ENDPOINT": rgw.endpoint,
        "LAPSE_S3_REGION": rgw.region,
        "LAPSE_S3_PATH_STYLE": "true",
        "LAPSE_S3_PART_SIZE": str(PART_SIZE),
        **extra,
    }


def command(*args: str) -> list[str]:
    return [sys.executable, "-m", "lapse", "storage", "migrate", *args]


def run(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(command(*args), env=env, capture_output=True, text=True, timeout=180, check=False)
    assert "Traceback" not in done.stderr, done.stderr
    return done


async def upload(alice: ApiClient, blobs: Path, content: bytes, name: str) -> tuple[dict[str, Any], Path]:
    """A file through the API, and its blob (the one new file in the folder: its name is the storage key)."""
    before = set(stored_files(blobs))
    file = await alice.upload(content, name, "application/octet-stream")
    [blob] = set(stored_files(blobs)) - before
    return file, blob


def objects(s3: Any, prefix: str) -> dict[str, bytes]:
    keys = [item["Key"] for item in s3.list_objects_v2(Bucket=BUCKET, Prefix=prefix).get("Contents", [])]
    return {key.removeprefix(prefix): s3.get_object(Bucket=BUCKET, Key=key)["Body"].read() for key in keys}


def incomplete_uploads(s3: Any, prefix: str) -> list[str]:
    uploads = s3.list_multipart_uploads(Bucket=BUCKET, Prefix=prefix).get("Uploads", [])
    return [upload["Key"].removeprefix(prefix) for upload in uploads]


async def test_every_blob_goes_up_under_its_key_a_rerun_skips_them_and_the_old_links_serve_from_s3(
    settings: Settings, alice: ApiClient, blobs: Path, rgw: Rgw, aws_env: None, s3: Any, prefix: str
) -> None:
    contents = {
        "small.txt": os.urandom(1000),
        "one-part.bin": os.urandom(MiB),
        "parts.bin": os.urandom(PART_SIZE + 12345),
    }
    links = {}
    local = {}
    for name, content in contents.items():
        file, blob = await upload(alice, blobs, content, name)
        links[name] = await alice.link(file["id"], max_downloads=1)
        local[blob.name] = content
    env = environment(settings, rgw)
    to = f"s3://{BUCKET}/{prefix}"

    first = await in_thread(lambda: run(env, "--to", to))
    assert first.returncode == 0, first.stderr
    assert first.stderr.strip().endswith("skipped 0 already there, 0 missing locally, 0 damaged.")
    assert "Copied 3 (" in first.stderr
    assert objects(s3, prefix) == local  # byte for byte, each under its own key

    again = await in_thread(lambda: run(env, "--to", to))
    assert again.returncode == 0, again.stderr
    assert again.stderr.strip() == "Copied 0 (0 B), skipped 3 already there, 0 missing locally, 0 damaged."

    # The switch: the same database, LAPSE_STORAGE_URL on the bucket, and no local blob left to fall back on.
    await in_thread(lambda: blobs.rename(blobs.with_name("blobs-moved-away")))
    async with LifespanManager(create_app(s3_settings_for(settings, rgw, prefix), sweep=False)) as manager:
        transport = httpx.ASGITransport(app=manager.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
            for name, content in contents.items():
                got = await http.get(httpx.URL(links[name]["url"]).path)
                assert (got.status_code, got.content) == (200, content), name


async def test_damaged_and_missing_local_blobs_are_reported_and_no_object_is_left_for_them(
    settings: Settings, alice: ApiClient, blobs: Path, rgw: Rgw, aws_env: None, s3: Any, prefix: str
) -> None:
    _, good_blob = await upload(alice, blobs, os.urandom(1000), "good.bin")
    bent, bent_blob = await upload(alice, blobs, os.urandom(PART_SIZE + MiB), "bent.bin")  # aborted mid-multipart
    small, small_blob = await upload(alice, blobs, os.urandom(3000), "short.bin")
    gone, gone_blob = await upload(alice, blobs, os.urandom(100), "gone.bin")
    with bent_blob.open("r+b") as handle:  # one byte changed, the size kept: only the sha256 can tell
        handle.seek(PART_SIZE + 10)
        byte = handle.read(1)
        handle.seek(PART_SIZE + 10)
        handle.write(bytes([byte[0] ^ 1]))
    small_blob.write_bytes(small_blob.read_bytes()[:-1])  # a byte short
    gone_blob.unlink()

    done = await in_thread(lambda: run(environment(settings, rgw), "--to", f"s3://{BUCKET}/{prefix}"))
    assert done.returncode == 10, done.stderr
    lines = done.stderr.strip().splitlines()
    assert f"lapse: file {gone['id']} (gone.bin): its blob {gone_blob.name} is not in {blobs}; skipped." in lines
    for file in (bent, small):
        message = (
            f"lapse: file {file['id']} ({file['name']}): the local bytes differ from the sha256 recorded at upload"
        )
        assert f"{message}; not copied." in lines
    assert lines[-1] == "Copied 1 (1000 B), skipped 0 already there, 1 missing locally, 2 damaged."
    assert objects(s3, prefix) == {good_blob.name: good_blob.read_bytes()}
    assert incomplete_uploads(s3, prefix) == []  # the damaged blob's parts were aborted


async def test_a_local_blob_that_cannot_be_read_is_reported_and_the_others_copied(
    settings: Settings, alice: ApiClient, blobs: Path, rgw: Rgw, aws_env: None, s3: Any, prefix: str
) -> None:
    _, good_blob = await upload(alice, blobs, os.urandom(1000), "good.bin")
    odd, odd_blob = await upload(alice, blobs, os.urandom(1000), "odd.bin")  # newest: copied first
    odd_blob.unlink()
    odd_blob.mkdir()  # there, but not a file that reads (as one without permission, or on a failing disk)

    done = await in_thread(lambda: run(environment(settings, rgw), "--to", f"s3://{BUCKET}/{prefix}"))
    assert done.returncode == 10, done.stderr
    lines = done.stderr.strip().splitlines()
    said = f"lapse: file {odd['id']} (odd.bin): its blob {odd_blob.name} cannot be read (Is a directory); not copied."
    assert said in lines
    assert lines[-1] == "Copied 1 (1000 B), skipped 0 already there, 0 missing locally, 0 damaged, 1 unreadable."
    assert objects(s3, prefix) == {good_blob.name: good_blob.read_bytes()}


async def test_an_interrupted_run_leaves_no_partial_object_and_the_next_run_finishes(
    settings: Settings, alice: ApiClient, blobs: Path, rgw: Rgw, aws_env: None, s3: Any, prefix: str
) -> None:
    # Copied newest first: `newest`, then `middle` (cut off part-way), then `oldest`.
    contents = {"oldest": os.urandom(MiB), "middle": os.urandom(PART_SIZE + 2 * MiB), "newest": os.urandom(MiB)}
    keys = {}
    for name, content in contents.items():
        _, blob = await upload(alice, blobs, content, name)
        keys[name] = blob
    # The middle blob becomes a pipe this test feeds: the run copies the newest, then waits on it part-way.
    middle = keys["middle"]
    middle.unlink()
    os.mkfifo(middle)
    env = environment(settings, rgw)
    to = f"s3://{BUCKET}/{prefix}"

    def interrupt() -> None:
        process = subprocess.Popen(command("--to", to), env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        try:
            deadline = time.monotonic() + 120
            while True:  # the writer's end opens once the run opens the blob to read it
                assert process.poll() is None, process.communicate()[1]
                assert time.monotonic() < deadline, "the run never reached the middle blob"
                try:
                    fd = os.open(middle, os.O_WRONLY | os.O_NONBLOCK)
                    break
                except OSError:
                    time.sleep(0.05)
            os.set_blocking(fd, True)
            os.write(fd, contents["middle"][: PART_SIZE + MiB])  # past the first part: a multipart upload begins
            while middle.name not in incomplete_uploads(s3, prefix):
                assert time.monotonic() < deadline, "no multipart upload began"
                time.sleep(0.05)
        finally:
            process.kill()
            process.communicate()
        os.close(fd)

    await in_thread(interrupt)
    assert set(objects(s3, prefix)) == {keys["newest"].name}  # the cut-off blob is no object

    middle.unlink()
    middle.write_bytes(contents["middle"])
    done = await in_thread(lambda: run(env, "--to", to))
    assert done.returncode == 0, done.stderr
    assert done.stderr.strip().startswith("Copied 2 (")
    assert done.stderr.strip().endswith("skipped 1 already there, 0 missing locally, 0 damaged.")
    assert objects(s3, prefix) == {keys[name].name: content for name, content in contents.items()}


async def test_a_bad_target_or_a_store_out_of_reach_is_one_line_and_its_own_exit_code(
    settings: Settings, alice: ApiClient, blobs: Path, rgw: Rgw, aws_env: None, prefix: str
) -> None:
    await upload(alice, blobs, b"x" * 100, "x.bin")
    env = environment(settings, rgw)
    nowhere = f"http://127.0.0.1:{free_port()}"
    cases = [
        (
            env,
            "file:///srv/blobs",
            2,
            "lapse: --to must name an S3 bucket, s3://bucket/prefix (got 'file:///srv/blobs')",
        ),
        (env, "s3://Not_A_Bucket/x", 2, "lapse: --to a bucket is named s3://bucket-name/optional/prefix"),
        (
            env | {"LAPSE_S3_ENDPOINT": nowhere},
            f"s3://{BUCKET}/{prefix}",
            3,
            f"lapse: s3://{BUCKET}/{prefix} is not reachable",
        ),
        # The installation's own storage out of reach (it already names the bucket): the runtime cannot open.
        (
            env | {"LAPSE_S3_ENDPOINT": nowhere, "LAPSE_STORAGE_URL": f"s3://{BUCKET}/{prefix}"},
            f"s3://{BUCKET}/{prefix}",
            3,
            f"lapse: cannot start: LAPSE_STORAGE_URL=s3://{BUCKET}/{prefix} is not reachable",
        ),
    ]
    for case_env, to, code, start in cases:
        done = await in_thread(functools.partial(run, case_env, "--to", to))
        assert (done.returncode, done.stdout) == (code, ""), done.stderr
        assert done.stderr.startswith(start), done.stderr
        assert done.stderr.count("\n") == 1, done.stderr  # one line


async def test_verify_reads_back_what_is_there_and_copies_again_an_object_with_other_bytes(
    settings: Settings, alice: ApiClient, blobs: Path, rgw: Rgw, aws_env: None, s3: Any, prefix: str
) -> None:
    content = os.urandom(PART_SIZE + 1000)
    _, blob = await upload(alice, blobs, content, "kept.bin")
    env = environment(settings, rgw)
    to = f"s3://{BUCKET}/{prefix}"
    assert (await in_thread(lambda: run(env, "--to", to))).returncode == 0
    # Something else wrote the key meanwhile: the same size, other bytes. Only reading it back can tell.
    s3.put_object(Bucket=BUCKET, Key=prefix + blob.name, Body=os.urandom(len(content)))

    trusting = await in_thread(lambda: run(env, "--to", to))
    assert trusting.stderr.strip() == "Copied 0 (0 B), skipped 1 already there, 0 missing locally, 0 damaged."
    checked = await in_thread(lambda: run(env, "--to", to, "--verify"))
    assert checked.returncode == 0, checked.stderr
    assert checked.stderr.strip().splitlines() == [
        "1 object in the bucket held other bytes than their file's; copied again.",
        "Copied 1 (5.0 MiB), skipped 0 already there, 0 missing locally, 0 damaged.",
    ]
    assert objects(s3, prefix) == {blob.name: content}
    again = await in_thread(lambda: run(env, "--to", to, "--verify"))
    assert again.stderr.strip() == "Copied 0 (0 B), skipped 1 already there, 0 missing locally, 0 damaged."
