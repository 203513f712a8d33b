"""`lapse get` against a real `lapse serve` with LAPSE_DELIVERY=redirect on a real RGW: the link answers 302 to a
presigned URL, and the store gets a request built from scratch. Lapse's S3 endpoint is a recording proxy in front of
the RGW, so every presigned URL names it and every header the CLI sends to the store is seen."""

import hashlib
import json
import os
import secrets
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from lapse.client.api import USER_AGENT
from lapse.client.errors import ExitCode
from tests.cli.helpers import Lapse, MiB, lapse_subprocess, self_signed, start_server, tls_front, write_random
from tests.process import LapseServer
from tests.s3.conftest import BUCKET, PART_SIZE, s3_client
from tests.s3.recorder import RecordingProxy, Seen
from tests.s3.rgw import Rgw

pytestmark = pytest.mark.server

SIZE = PART_SIZE + 3 * MiB + 12345  # a multipart object, and long enough at --limit-rate to be cut off part-way
# What only Lapse may see: the grant, a password, a key, cookies, and validators the store would judge by its own.
PRIVATE = ("lapse-grant", "authorization", "x-api-key", "cookie", "proxy-authorization")


@pytest.fixture(scope="module")
def store(rgw: Rgw) -> Iterator[RecordingProxy]:
    proxy = RecordingProxy(rgw.port)
    proxy.start()
    try:
        yield proxy
    finally:
        proxy.stop()


@pytest.fixture(scope="module")
def redirecting(rgw: Rgw, store: RecordingProxy, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LapseServer]:
    prefix = f"t-{secrets.token_hex(4)}/"
    nowhere = str(tmp_path_factory.getbasetemp() / "no-aws-config")
    env = {
        "LAPSE_STORAGE_URL": f"s3://{BUCKET}/{prefix}",
        "LAPSE_S3_ENDPOINT": store.endpoint,
        "LAPSE_S3_REGION": rgw.region,
        "LAPSE_S3_PATH_STYLE": "true",
        "LAPSE_S3_PART_SIZE": str(PART_SIZE),
        "LAPSE_DELIVERY": "redirect",
        "LAPSE_REDIRECT_TTL": "10s",  # the URL a held request waits out
        "LAPSE_MAX_UPLOAD_SIZE": "64M",
        "AWS_ACCESS_KEY_ID": rgw.access_key,
        "AWS_SECRET_ACCESS_KEY": rgw.secret_key,
        "AWS_CONFIG_FILE": nowhere,
        "AWS_SHARED_CREDENTIALS_FILE": nowhere,
        "AWS_EC2_METADATA_DISABLED": "true",
    }
    yield from start_server(tmp_path_factory.mktemp("redirecting"), env)
    s3 = s3_client(rgw)
    for item in s3.list_objects_v2(Bucket=BUCKET, Prefix=prefix).get("Contents", []):
        s3.delete_object(Bucket=BUCKET, Key=item["Key"])


@pytest.fixture
def lapse(redirecting: LapseServer, store: RecordingProxy, tmp_path: Path) -> Lapse:
    store.reset()
    return Lapse(redirecting, redirecting.create_key("get-redirect"), config_home=tmp_path / "config")


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def share(lapse: Lapse, path: Path) -> dict[str, Any]:
    [shared] = lapse.json_lines("share", str(path), "--max-downloads", "1")
    return shared


def store_requests(store: RecordingProxy, expected: int) -> list[Seen]:
    """What reached the store, checked for anything private: only the CLI's User-Agent and a Range may go there."""
    seen = store.presigned()
    assert len(seen) == expected, [s.method for s in seen]
    for request in seen:
        names = {name for name, _ in request.headers}
        assert not names & set(PRIVATE), request.headers
        assert not [name for name in names if name.startswith("if-")], request.headers
        assert request.method == "GET"
        assert request.header("user-agent") == USER_AGENT
        assert names <= {"host", "user-agent", "range", "accept", "accept-encoding", "connection"}, request.headers
    return seen


def test_a_download_comes_from_the_store_counted_once(lapse: Lapse, store: RecordingProxy, tmp_path: Path) -> None:
    source = write_random(tmp_path / "whole.bin", SIZE)
    shared = share(lapse, source)
    into = tmp_path / "into"
    into.mkdir()
    record = json.loads(lapse.ok("get", shared["link"]["url"], "-o", str(into), "--json").stdout)
    assert (record["size"], record["sha256_verified"], record["spent_download"]) == (SIZE, True, True)
    assert sha256(into / "whole.bin") == shared["sha256"]
    assert sorted(p.name for p in into.iterdir()) == ["whole.bin"]
    [request] = store_requests(store, 1)
    assert request.header("range") is None
    assert lapse.link(shared["link"]["id"])["downloads"] == 1


def test_an_interrupted_download_resumes_through_a_new_url_for_free(
    lapse: Lapse, store: RecordingProxy, tmp_path: Path
) -> None:
    source = write_random(tmp_path / "resume.bin", SIZE)
    shared = share(lapse, source)
    url = shared["link"]["url"]
    into = tmp_path / "into"
    into.mkdir()
    part = into / "resume.bin.part"
    env = {k: v for k, v in os.environ.items() if not k.startswith("LAPSE_")}  # no server, no key: none can leak
    first = subprocess.Popen(
        lapse_subprocess("get", url, "-o", str(into), "--limit-rate", "2M"),
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 60
        while not (part.exists() and part.stat().st_size >= MiB):
            assert first.poll() is None, "the download ended before it could be interrupted"
            assert time.monotonic() < deadline, "no bytes arrived"
            time.sleep(0.02)
    finally:
        first.kill()
        first.wait()
    kept = part.stat().st_size
    assert 0 < kept < SIZE
    sidecar = (into / "resume.bin.lapse-partial.json").read_text()
    assert "X-Amz" not in sidecar  # a presigned URL is never kept
    assert store.endpoint not in sidecar

    record = json.loads(lapse.ok("get", url, "-o", str(into), "--json").stdout)
    assert (record["resumed_from"], record["spent_download"]) == (kept, False)
    assert sha256(into / "resume.bin") == shared["sha256"]
    first_url, second_url = store_requests(store, 2)
    # (Signed in the same second for the same lifetime, the second URL may equal the first: SigV4 is deterministic.)
    assert (first_url.header("range"), second_url.header("range")) == (None, f"bytes={kept}-")
    assert lapse.link(shared["link"]["id"])["downloads"] == 1


def test_an_expired_url_sends_the_client_back_for_a_new_one_uncounted(
    lapse: Lapse, store: RecordingProxy, tmp_path: Path
) -> None:
    source = write_random(tmp_path / "late.bin", MiB)
    shared = share(lapse, source)
    store.expire_next = 1  # the first URL reaches the store only once it has expired: the RGW refuses it
    into = tmp_path / "into"
    into.mkdir()
    record = json.loads(lapse.ok("get", shared["link"]["url"], "-o", str(into), "--json").stdout)
    assert (record["spent_download"], record["resumed_from"]) == (True, 0)
    assert sha256(into / "late.bin") == shared["sha256"]
    expired, fresh = store_requests(store, 2)
    assert fresh.expires_at() > expired.expires_at()
    assert lapse.link(shared["link"]["id"])["downloads"] == 1


def test_wrong_bytes_from_the_store_fail_verification_and_a_rerun_fetches_them_free(
    lapse: Lapse, store: RecordingProxy, tmp_path: Path
) -> None:
    source = write_random(tmp_path / "bent.bin", MiB)
    shared = share(lapse, source)
    url = shared["link"]["url"]
    store.bend_next = 1
    into = tmp_path / "into"
    into.mkdir()
    bent = lapse.run("get", url, "-o", str(into))
    assert bent.exit_code == ExitCode.VERIFICATION_FAILED, bent.stderr
    assert "bent.bin did not arrive intact" in bent.stderr
    assert not (into / "bent.bin").exists()
    assert not (into / "bent.bin.part").exists()

    again = json.loads(lapse.ok("get", url, "-o", str(into), "--json").stdout)
    assert (again["spent_download"], again["sha256_verified"]) == (False, True)
    assert sha256(into / "bent.bin") == shared["sha256"]
    store_requests(store, 2)
    assert lapse.link(shared["link"]["id"])["downloads"] == 1


def test_a_store_that_keeps_refusing_stops_after_a_few_urls_and_counts_once(
    lapse: Lapse, store: RecordingProxy, tmp_path: Path
) -> None:
    source = write_random(tmp_path / "refused.bin", MiB)
    shared = share(lapse, source)
    url = shared["link"]["url"]
    store.refuse_next = 100
    into = tmp_path / "into"
    into.mkdir()
    refused = lapse.run("get", url, "-o", str(into))
    assert refused.exit_code == ExitCode.FAILED, refused.stderr
    assert refused.stderr == "lapse: The file's store kept refusing the addresses the server gave; try again later.\n"
    assert len(store_requests(store, 3)) == 3  # bounded: three addresses asked for, then it gives up
    assert lapse.link(shared["link"]["id"])["downloads"] == 1  # the first GET; the next two came with its grant

    store.refuse_next = 0
    again = json.loads(lapse.ok("get", url, "-o", str(into), "--json").stdout)
    assert (again["spent_download"], again["sha256_verified"]) == (False, True)
    assert sha256(into / "refused.bin") == shared["sha256"]
    assert lapse.link(shared["link"]["id"])["downloads"] == 1


def test_a_password_link_sends_its_password_to_lapse_only(lapse: Lapse, store: RecordingProxy, tmp_path: Path) -> None:
    source = write_random(tmp_path / "secret.bin", MiB)
    shared = lapse.ok("share", str(source), "--password-prompt", "--json", input="sesame\nsesame\n")
    link = json.loads(shared.stdout.splitlines()[-1])["link"]
    into = tmp_path / "into"
    into.mkdir()
    lapse.ok("get", link["url"], "-o", str(into), input="sesame\n")
    assert sha256(into / "secret.bin") == sha256(source)
    store_requests(store, 1)  # no Authorization among its headers
    assert lapse.link(link["id"])["downloads"] == 1


def test_a_redirect_from_https_to_plain_http_is_not_followed(
    lapse: Lapse, store: RecordingProxy, tmp_path: Path
) -> None:
    """Lapse behind TLS, its store named by a plain-http endpoint: the grant would be safe, the bytes would not."""
    source = write_random(tmp_path / "plain.bin", 1000)
    shared = share(lapse, source)
    path = "/d/" + shared["link"]["url"].rsplit("/d/", 1)[1]
    cert, key = self_signed(tmp_path)
    with tls_front(lapse.server.port, cert, key) as front:
        refused = lapse.run("get", front + path, "-o", str(tmp_path / "into.bin"), SSL_CERT_FILE=str(cert))
    assert refused.exit_code == ExitCode.FAILED, refused.stderr
    assert refused.stderr == (
        "lapse: The server redirected the download to an address without https; it was not followed.\n"
    )
    assert store.presigned() == []
    assert not (tmp_path / "into.bin").exists()
