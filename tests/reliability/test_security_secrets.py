"""Secrets in their percent-encoded form and in the catalog's http sink (remote URLs through the
CLI: `test_security_remotes.py`; S3 keys: `tests/remotes/test_s3.py`)."""

from __future__ import annotations

import pytest
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

from merkl.catalog.sinks.http import HttpConfig, HttpSink
from merkl.errors import CatalogError
from merkl.remotes.urls import mask_url, scrub, url_secrets
from tests.catalog.test_sinks_processors import CTX, asset

ENCODED = "Pa%21ss-w0rd-5e1d%2Fq"  # as a user writes it into a URL: `!` and `/` escaped
DECODED = "Pa!ss-w0rd-5e1d/q"


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
