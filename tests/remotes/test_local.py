"""The directory remote runs the contract against a folder in the test's tmp_path."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.remotes.contract import RemoteContract


class TestLocalRemote(RemoteContract):
    @pytest.fixture
    def remote_spec(self, tmp_path: Path):
        return str(tmp_path / "remote"), {}

    @pytest.fixture
    def unusable_spec(self, tmp_path: Path):
        blocker = tmp_path / "a-file"
        blocker.write_text("not a folder")
        return str(blocker / "remote"), {}


class TestFileUrlRemote(RemoteContract):
    @pytest.fixture
    def remote_spec(self, tmp_path: Path):
        return (tmp_path / "remote").as_uri(), {}

    @pytest.fixture
    def unusable_spec(self, tmp_path: Path):
        blocker = tmp_path / "a-file"
        blocker.write_text("not a folder")
        return (blocker / "remote").as_uri(), {}
