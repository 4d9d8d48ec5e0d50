"""Secrets in their percent-encoded form, in S3 keys, and in the catalog's http sink."""

from __future__ import annotations

import logging

import pytest
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

from merkl.catalog.sinks.http import HttpConfig, HttpSink
from merkl.errors import CatalogError
from merkl.remotes.urls import mask_url, scrub, url_secrets
from tests.catalog.test_sinks_processors import CTX, asset
from tests.helpers import run_cli

ENCODED = "Pa%21ss-w0rd-5e1d%2Fq"  # as a user writes it into a URL: `!` and `/` escaped
DECODED = "Pa!ss-w0rd-5e1d/q"


@pytest.mark.parametrize(
    "url",
    [
        "redis://:${MERKL_TEST_PW}@127.0.0.1:1/0",
        "postgresql+psycopg://merkl:${MERKL_TEST_PW}@127.0.0.1:1/db",
        "mysql+pymysql://merkl:${MERKL_TEST_PW}@127.0.0.1:1/db",
        "redis://127.0.0.1:1/0?password=${MERKL_TEST_PW}",
        "s3://bucket/prefix?secret=${MERKL_TEST_PW}",
    ],
    ids=["redis", "postgres", "mysql", "redis-query", "s3-query"],
)
def test_percent_encoded_secrets_are_masked_in_both_forms(repo, monkeypatch, caplog, url):
    monkeypatch.setenv("MERKL_TEST_PW", ENCODED)
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:1")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "x")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "y")
    caplog.set_level(logging.DEBUG)
    (repo.root / "data.bin").write_bytes(b"payload")
    outputs = [
        run_cli("remote", "add", "origin", url, "--default", "jobs=1"),
        run_cli("track", "data.bin"),
        run_cli("push"),
        run_cli("pull"),
        run_cli("remote", "list"),
    ]
    assert outputs[2].code == 1, outputs[2]  # nothing listens on port 1
    text = "".join(r.out + r.err for r in outputs) + caplog.text
    assert ENCODED not in text
    assert DECODED not in text


def test_mask_url_masks_the_decoded_form_too():
    url = f"redis://:{ENCODED}@host/0?token={ENCODED}"
    assert mask_url(url) == "redis://:***@host/0?token=***"
    assert scrub(f"auth failed for {DECODED!r}", url_secrets(url)) == "auth failed for '***'"


def test_http_sink_errors_never_repeat_a_secret(httpserver: HTTPServer):
    token = "Bearer tok-91c2e7f0aa"

    def echo(request: Request) -> Response:  # a server that quotes what it refused
        return Response(f"bad credentials: {request.headers.get('Authorization')}", status=401)

    httpserver.expect_request("/assets").respond_with_handler(echo)
    url = httpserver.url_for("/assets")
    sink = HttpSink(HttpConfig(url=url, method="POST", headers={"Authorization": token}), CTX)
    with pytest.raises(CatalogError) as caught:
        sink.sink([asset()])
    sink.close()
    message = str(caught.value)
    assert "401" in message
    assert "tok-91c2e7f0aa" not in message


def test_http_sink_unreachable_url_masks_its_password():
    sink = HttpSink(HttpConfig(url="http://svc:hunter2-pw@127.0.0.1:1/x", method="POST"), CTX)
    with pytest.raises(CatalogError) as caught:
        sink.sink([asset()])
    sink.close()
    assert "hunter2-pw" not in str(caught.value)
    assert "127.0.0.1:1" in str(caught.value)
