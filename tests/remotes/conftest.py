"""Real services for the remote tests, each test isolated and cleaned up.

- S3: moto's server mode on a loopback port (`moto_endpoint` in tests/conftest.py, one per
  session), a fresh bucket per test.
- Redis: `MERKL_TEST_REDIS_URL`, a unique key prefix per test, deleted afterwards.
- PostgreSQL: `MERKL_TEST_POSTGRES_URL`, a schema per test, dropped afterwards.
- MariaDB/MySQL: `MERKL_TEST_MYSQL_URL`, a database per test, dropped afterwards.

A service that is not running fails the test with its name; nothing is skipped.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import pytest

REDIS_URL = os.environ.get("MERKL_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
POSTGRES_URL = os.environ.get(
    "MERKL_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)
MYSQL_URL = os.environ.get("MERKL_TEST_MYSQL_URL", "mysql+pymysql://root@127.0.0.1:3306/test")

S3_ENV = {
    "AWS_ACCESS_KEY_ID": "merkl-test-key",
    "AWS_SECRET_ACCESS_KEY": "merkl-test-secret",
    "AWS_DEFAULT_REGION": "us-east-1",
}


def unique(prefix: str) -> str:
    return f"{prefix}{uuid.uuid4().hex[:12]}"


@pytest.fixture
def s3_env(monkeypatch: pytest.MonkeyPatch, moto_endpoint: str) -> str:
    """Credentials and endpoint in the environment, as a user would set them."""
    for key, value in S3_ENV.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_endpoint)
    for key in ("AWS_PROFILE", "AWS_SESSION_TOKEN"):
        monkeypatch.delenv(key, raising=False)
    return moto_endpoint


@pytest.fixture
def s3_bucket(s3_env: str) -> Iterator[str]:
    import boto3

    client = boto3.client("s3", endpoint_url=s3_env)
    bucket = unique("merkl-test-")
    client.create_bucket(Bucket=bucket)
    yield bucket
    paginator = client.get_paginator("list_objects_v2")
    for page in paginator.paginate(Bucket=bucket):
        for item in page.get("Contents", []):
            client.delete_object(Bucket=bucket, Key=item["Key"])
    client.delete_bucket(Bucket=bucket)
    client.close()


@pytest.fixture
def redis_prefix() -> Iterator[str]:
    import redis

    client = redis.Redis.from_url(REDIS_URL, socket_connect_timeout=3)
    try:
        client.ping()
    except redis.ConnectionError as exc:
        pytest.fail(f"Redis is not reachable at {REDIS_URL} (MERKL_TEST_REDIS_URL): {exc}")
    prefix = unique("merkl-test:") + ":"
    yield prefix
    keys = list(client.scan_iter(match=prefix + "*", count=1000))
    if keys:
        client.delete(*keys)
    client.close()


def _sql_admin(url: str, service: str):  # type: ignore[no-untyped-def]
    import sqlalchemy as sa

    engine = sa.create_engine(url, isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as conn:
            conn.execute(sa.text("SELECT 1"))
    except sa.exc.OperationalError as exc:
        engine.dispose()
        pytest.fail(f"{service} is not reachable at {url}: {exc.orig}")
    return engine


@pytest.fixture
def postgres_schema() -> Iterator[tuple[str, str]]:
    """(URL, schema) with a fresh schema, dropped afterwards."""
    import sqlalchemy as sa

    engine = _sql_admin(POSTGRES_URL, "PostgreSQL (MERKL_TEST_POSTGRES_URL)")
    schema = unique("merkl_test_")
    with engine.connect() as conn:
        conn.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
    yield POSTGRES_URL, schema
    with engine.connect() as conn:
        conn.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))
    engine.dispose()


@pytest.fixture
def mysql_database() -> Iterator[str]:
    """A URL to a fresh database, dropped afterwards."""
    import sqlalchemy as sa

    engine = _sql_admin(MYSQL_URL, "MariaDB/MySQL (MERKL_TEST_MYSQL_URL)")
    database = unique("merkl_test_")
    with engine.connect() as conn:
        conn.execute(sa.text(f"CREATE DATABASE `{database}`"))
    url = sa.make_url(MYSQL_URL).set(database=database).render_as_string(hide_password=False)
    yield url
    with engine.connect() as conn:
        conn.execute(sa.text(f"DROP DATABASE `{database}`"))
    engine.dispose()
