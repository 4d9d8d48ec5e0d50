"""The S3 remote against moto's server on loopback, through the real boto3 client."""

from __future__ import annotations

import pytest

from tests.remotes.contract import RemoteContract


class TestS3Remote(RemoteContract):
    big_size = 6 * 1024 * 1024  # above the multipart threshold set below

    @pytest.fixture
    def remote_spec(self, s3_bucket: str):
        return f"s3://{s3_bucket}/project/cache", {"multipart_threshold": 5 * 1024 * 1024}

    @pytest.fixture
    def unusable_spec(self, s3_env: str):
        return "s3://merkl-no-such-bucket/x", {}


class TestS3RemoteAtBucketRoot(RemoteContract):
    """No prefix, endpoint given as an option rather than through AWS_ENDPOINT_URL, and boto3's
    own checksums turned back on."""

    @pytest.fixture
    def remote_spec(self, s3_bucket: str, s3_env: str, monkeypatch: pytest.MonkeyPatch):
        monkeypatch.delenv("AWS_ENDPOINT_URL")
        return f"s3://{s3_bucket}", {"endpoint_url": s3_env, "checksums": True}

    @pytest.fixture
    def unusable_spec(self, s3_env: str, monkeypatch: pytest.MonkeyPatch):
        monkeypatch.delenv("AWS_ENDPOINT_URL")
        return "s3://merkl-test-bucket", {"endpoint_url": "http://127.0.0.1:1"}
