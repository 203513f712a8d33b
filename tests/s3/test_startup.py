"""`lapse serve` with storage it cannot use stops at once, with one line that says why."""

import os
import subprocess
from pathlib import Path

import pytest

from lapse.settings import Settings
from tests.process import LAPSE, SECRET_KEY
from tests.s3.conftest import BUCKET
from tests.s3.rgw import Rgw, free_port

pytestmark = pytest.mark.server


def serve(tmp_path: Path, rgw: Rgw, **env: str) -> subprocess.CompletedProcess[str]:
    environment = {
        "PATH": "/usr/bin:/bin",
        "HOME": str(tmp_path),
        "LAPSE_DATA_DIR": str(tmp_path / "data"),
        "LAPSE_SECRET_KEY": SECRET_KEY,
        "LAPSE_S3_PATH_STYLE": "true",
        "AWS_ACCESS_KEY_ID": rgw.access_key,
        "AWS_SECRET_ACCESS_KEY": rgw.secret_key,
        "AWS_EC2_METADATA_DISABLED": "true",
        "COLUMNS": "300",  # one line stays one line
        # the code under test, where a run names it (an installed `lapse` otherwise imports its own)
        **({"PYTHONPATH": os.environ["PYTHONPATH"]} if "PYTHONPATH" in os.environ else {}),
    } | env
    command = [LAPSE, "serve", "--host", "127.0.0.1", "--port", str(free_port())]
    return subprocess.run(command, env=environment, cwd=tmp_path, capture_output=True, text=True, timeout=60)


def one_line(done: subprocess.CompletedProcess[str]) -> str:
    assert done.returncode != 0
    assert "Traceback" not in done.stderr, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    return lines[0]


@pytest.mark.parametrize(
    ("url", "says"),
    [("s3://Not_A_Bucket/x", "a bucket is named"), ("ftp://host/x", "must be file:///path or s3://bucket/prefix")],
)
def test_a_malformed_storage_url_is_refused(tmp_path: Path, rgw: Rgw, url: str, says: str) -> None:
    line = one_line(serve(tmp_path, rgw, LAPSE_STORAGE_URL=url))
    assert "LAPSE_STORAGE_URL" in line
    assert says in line
    with pytest.raises(ValueError, match=says):
        Settings(_env_file=None, storage_url=url)  # type: ignore[call-arg]


def test_an_unreachable_store_stops_serve_at_start(tmp_path: Path, rgw: Rgw) -> None:
    dead = f"http://127.0.0.1:{free_port()}"
    line = one_line(serve(tmp_path, rgw, LAPSE_STORAGE_URL=f"s3://{BUCKET}/p", LAPSE_S3_ENDPOINT=dead))
    assert line.startswith("lapse: cannot start: LAPSE_STORAGE_URL=s3://lapse-test/p is not reachable")
    assert "Could not connect" in line


def test_a_missing_bucket_stops_serve_at_start(tmp_path: Path, rgw: Rgw) -> None:
    line = one_line(serve(tmp_path, rgw, LAPSE_STORAGE_URL="s3://no-such-bucket/p", LAPSE_S3_ENDPOINT=rgw.endpoint))
    assert "s3://no-such-bucket/p is not reachable" in line
    assert "404" in line or "Not Found" in line


def test_a_malformed_region_is_refused_in_one_line(tmp_path: Path, rgw: Rgw) -> None:
    env = {"LAPSE_STORAGE_URL": f"s3://{BUCKET}/p", "LAPSE_S3_ENDPOINT": rgw.endpoint, "LAPSE_S3_REGION": "eu west"}
    line = one_line(serve(tmp_path, rgw, **env))
    assert "LAPSE_S3_REGION" in line
    assert "region name" in line


def test_a_prefix_with_dot_folders_is_refused_in_one_line(tmp_path: Path, rgw: Rgw) -> None:
    """A client (a browser following a redirect, yarl, nginx) resolves `.` and `..` in a URL's path: the object it
    asks for would not be the one signed."""
    line = one_line(serve(tmp_path, rgw, LAPSE_STORAGE_URL=f"s3://{BUCKET}/a/../b", LAPSE_S3_ENDPOINT=rgw.endpoint))
    assert "LAPSE_STORAGE_URL" in line
    assert ". or .." in line


def test_a_profile_that_does_not_exist_stops_serve_in_one_line(tmp_path: Path, rgw: Rgw) -> None:
    env = {"LAPSE_STORAGE_URL": f"s3://{BUCKET}/p", "LAPSE_S3_ENDPOINT": rgw.endpoint, "AWS_PROFILE": "nowhere"}
    line = one_line(serve(tmp_path, rgw, **env))
    assert line.startswith(f"lapse: cannot start: LAPSE_STORAGE_URL=s3://{BUCKET}/p is not reachable")
    assert "nowhere" in line
