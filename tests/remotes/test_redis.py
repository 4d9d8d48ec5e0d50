"""The Redis remote against the machine's Redis, isolated by a key prefix per test."""

from __future__ import annotations

import pytest

from tests.remotes.conftest import REDIS_URL
from tests.remotes.contract import RemoteContract


class TestRedisRemote(RemoteContract):
    @pytest.fixture
    def remote_spec(self, redis_prefix: str):
        return REDIS_URL, {"prefix": redis_prefix, "chunk_size": 64 * 1024}

    @pytest.fixture
    def unusable_spec(self):
        return "redis://:${MERKL_BAD_SECRET}@127.0.0.1:1/0", {}


def test_wrong_password_is_one_clear_line(redis_prefix: str, monkeypatch: pytest.MonkeyPatch):
    """The machine's Redis has no password: AUTH with one fails, and is reported as such."""
    from merkl.errors import RemoteError
    from merkl.remotes import open_remote

    monkeypatch.setenv("MERKL_BAD_SECRET", "hunter2-do-not-print")
    host = REDIS_URL.split("://", 1)[1]
    remote = open_remote(f"redis://merkl:${{MERKL_BAD_SECRET}}@{host}", name="r")
    with pytest.raises(RemoteError) as info:
        remote.status(["ab" * 32])
    assert "remote 'r'" in str(info.value)
    assert "hunter2" not in str(info.value)
    assert "***" in str(info.value)
