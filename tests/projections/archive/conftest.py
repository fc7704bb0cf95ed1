"""An S3-protocol server for the archive's tests: moto in server mode, on a free port.

moto is a stand-in for S3, not S3: it takes the calls the archive makes (PUT, GET, DELETE
object; ListObjectsV2) the way S3 documents them, and says nothing of S3's throughput or of
a real bucket's policies.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import boto3
import pytest
from moto.server import ThreadedMotoServer

CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "softphone-relay-test",
    "AWS_SECRET_ACCESS_KEY": "softphone-relay-test-secret",
    "AWS_REGION": "us-east-1",
}


@pytest.fixture(scope="session")
def s3_endpoint() -> Iterator[str]:
    """One moto server for the run."""
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


@pytest.fixture
def s3_env(s3_endpoint: str) -> dict[str, str]:
    """The variables a process needs to reach the test server."""
    return CREDENTIALS | {"AWS_ENDPOINT_URL": s3_endpoint}


@pytest.fixture
def bucket_url(s3_env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> str:
    """``s3://BUCKET/archive`` on a fresh bucket, with this process's environment set."""
    for name, value in s3_env.items():
        monkeypatch.setenv(name, value)
    bucket = f"archive-{uuid.uuid4().hex[:12]}"
    boto3.client(
        "s3",
        endpoint_url=s3_env["AWS_ENDPOINT_URL"],
        aws_access_key_id=s3_env["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=s3_env["AWS_SECRET_ACCESS_KEY"],
        region_name=s3_env["AWS_REGION"],
    ).create_bucket(Bucket=bucket)
    return f"s3://{bucket}/archive"
