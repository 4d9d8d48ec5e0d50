"""Catalog fixtures: a fake Merlin and a Google token endpoint on a loopback HTTP server.

`pytest tests/catalog --update-golden` rewrites the golden files from the current output
(review the diff by hand before committing it).
"""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest
from pytest_httpserver import HTTPServer

from tests.catalog.fake_merlin import TokenEndpoint, make_service_account_key


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--update-golden",
        action="store_true",
        default=False,
        help="rewrite tests/catalog/golden/* from the current output",
    )


@pytest.fixture
def update_golden(request: pytest.FixtureRequest) -> bool:
    return bool(request.config.getoption("--update-golden", default=False))


@pytest.fixture(autouse=True)
def _no_google_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No test may find real Google credentials or probe a metadata server."""
    monkeypatch.delenv("GOOGLE_APPLICATION_CREDENTIALS", raising=False)
    monkeypatch.setenv("NO_GCE_CHECK", "true")
    monkeypatch.setenv("GCE_METADATA_HOST", "127.0.0.1:9")
    monkeypatch.setenv("GCE_METADATA_IP", "127.0.0.1:9")
    monkeypatch.setenv("CLOUDSDK_CONFIG", str(tmp_path / "gcloud"))
    for key in [k for k in __import__("os").environ if k.startswith("METEOR_")]:
        monkeypatch.delenv(key)


@pytest.fixture(scope="session")
def private_key_pem() -> str:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()


@pytest.fixture
def token_endpoint(httpserver: HTTPServer, private_key_pem: str) -> TokenEndpoint:
    """`POST /token` answering Google's JWT-bearer grant, checking the signed assertion."""
    endpoint = TokenEndpoint(httpserver, private_key_pem)
    endpoint.install()
    return endpoint


@pytest.fixture
def service_account(token_endpoint: TokenEndpoint, private_key_pem: str) -> dict[str, str]:
    """A service account key whose `token_uri` is the loopback token endpoint."""
    return make_service_account_key(private_key_pem, token_endpoint.url)


@pytest.fixture
def service_account_b64(service_account: dict[str, str]) -> str:
    return base64.b64encode(json.dumps(service_account).encode()).decode()
