"""The SQL remote against SQLite, and the machine's PostgreSQL and MariaDB."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.remotes.contract import RemoteContract

SMALL_CHUNKS = {"chunk_size": 16 * 1024}  # so the large-object path spans transactions


class TestSqliteRemote(RemoteContract):
    @pytest.fixture
    def remote_spec(self, tmp_path: Path):
        return f"sqlite:///{tmp_path / 'remote.db'}", dict(SMALL_CHUNKS)

    @pytest.fixture
    def unusable_spec(self, tmp_path: Path):
        return f"sqlite:///{tmp_path / 'no-such-dir' / 'remote.db'}", {}


class TestPostgresRemote(RemoteContract):
    @pytest.fixture
    def remote_spec(self, postgres_schema: tuple[str, str]):
        url, schema = postgres_schema
        return url, {"schema": schema, "table": "blobs", **SMALL_CHUNKS}

    @pytest.fixture
    def unusable_spec(self):
        return "postgresql+psycopg://postgres:${MERKL_BAD_SECRET}@127.0.0.1:1/test", {}


class TestMysqlRemote(RemoteContract):
    @pytest.fixture
    def remote_spec(self, mysql_database: str):
        return mysql_database, dict(SMALL_CHUNKS)

    @pytest.fixture
    def unusable_spec(self):
        from tests.remotes.conftest import MYSQL_URL

        host = MYSQL_URL.split("@", 1)[1]
        return f"mysql+pymysql://merkl_nobody:${{MERKL_BAD_SECRET}}@{host}", {}


def test_pull_from_a_database_without_the_table(tmp_path: Path):
    from merkl.errors import RemoteError
    from merkl.remotes import open_remote

    remote = open_remote(f"sqlite:///{tmp_path / 'empty.db'}", name="db")
    with pytest.raises(RemoteError, match="table 'merkl_objects' does not exist"):
        remote.status(["ab" * 32])
