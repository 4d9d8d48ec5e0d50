"""A fake Merlin (responses from tests/catalog/testdata/) and Google token endpoint for tests."""

from __future__ import annotations

import json
import secrets
import textwrap
import time
from pathlib import Path
from typing import Any

from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

TESTDATA = Path(__file__).parent / "testdata"
GOLDEN = Path(__file__).parent / "golden"
MERLIN_DATA = TESTDATA / "merlin"
BASE_PATH = "/api/merlin"
USERINFO_EMAIL_SCOPE = "https://www.googleapis.com/auth/userinfo.email"
GOOGLE_TOKEN_URI = "https://oauth2.googleapis.com/token"
CLIENT_EMAIL = "meteor@test-project.iam.gserviceaccount.com"


def make_service_account_key(private_key_pem: str, token_uri: str) -> dict[str, str]:
    return {
        "type": "service_account",
        "project_id": "test-project",
        "private_key_id": "0123456789abcdef",
        "private_key": private_key_pem,
        "client_email": CLIENT_EMAIL,
        "client_id": "100000000000000000001",
        "token_uri": token_uri,
    }


class TokenEndpoint:
    """Google's OAuth token endpoint: checks the JWT assertion, answers a fresh token."""

    def __init__(self, httpserver: HTTPServer, private_key_pem: str) -> None:
        self.httpserver = httpserver
        self.url = httpserver.url_for("/token")
        self.calls: list[dict[str, Any]] = []
        self.issued: list[str] = []
        self._public_pem = _public_pem(private_key_pem)
        self._private_pem = private_key_pem

    def install(self) -> None:
        self.httpserver.expect_request("/token", method="POST").respond_with_handler(self._answer)

    @property
    def token(self) -> str:
        """The last access or ID token handed out."""
        return self.issued[-1]

    def _answer(self, request: Request) -> Response:
        from google.auth import jwt

        form = request.form
        assert form["grant_type"] == "urn:ietf:params:oauth:grant-type:jwt-bearer"
        # google-auth addresses the assertion to Google's token URI whatever `token_uri` is.
        claims = jwt.decode(
            form["assertion"], certs=self._public_pem, audience=[self.url, GOOGLE_TOKEN_URI]
        )
        assert claims["iss"] == CLIENT_EMAIL
        self.calls.append(claims)
        if "target_audience" in claims:  # the ID-token flow
            token = self._id_token(claims["target_audience"])
            body = {"id_token": token}
        else:
            token = "ya29.test-" + secrets.token_hex(16)
            body = {"access_token": token, "expires_in": 3600, "token_type": "Bearer"}
        self.issued.append(token)
        return Response(json.dumps(body), status=200, content_type="application/json")

    def _id_token(self, audience: str) -> str:
        from google.auth import crypt, jwt

        signer = crypt.RSASigner.from_string(self._private_pem)
        now = int(time.time())
        claims = {
            "iss": "https://accounts.google.com",
            "aud": audience,
            "sub": CLIENT_EMAIL,
            "email": CLIENT_EMAIL,
            "iat": now,
            "exp": now + 3600,
        }
        return jwt.encode(signer, claims).decode()


def _public_pem(private_key_pem: str) -> str:
    from cryptography.hazmat.primitives import serialization

    key = serialization.load_pem_private_key(private_key_pem.encode(), password=None)
    return (
        key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )


def merlin_path(path: str) -> str:
    return f"{BASE_PATH}/v1/{path}"


def serve_merlin(
    httpserver: HTTPServer,
    tokens: TokenEndpoint | None = None,
    data_dir: Path = MERLIN_DATA,
    skip: tuple[str, ...] = (),
) -> None:
    """Answer the three Merlin GETs from `data_dir` (`projects.json`, `models-<project>.json`,
    `version-<model>-<version>.json`), only with the bearer token `tokens` issued.

    Files whose stem is in `skip` are not served, so a test can register its own answer.
    """
    for file in sorted(data_dir.glob("*.json")):
        if file.stem in skip:
            continue
        body = file.read_text()
        kind, _, ids = file.stem.partition("-")
        if kind == "projects":
            path = merlin_path("projects")
        elif kind == "models":
            path = merlin_path(f"projects/{ids}/models")
        else:
            model_id, version_id = ids.split("-")
            path = merlin_path(f"models/{model_id}/versions/{version_id}")
        handler = _json_handler(body, tokens)
        httpserver.expect_request(path, method="GET").respond_with_handler(handler)


def _json_handler(body: str, tokens: TokenEndpoint | None) -> Any:
    def answer(request: Request) -> Response:
        if tokens is not None:
            expected = f"Bearer {tokens.token}" if tokens.issued else None
            if request.headers.get("Authorization") != expected:
                return Response(
                    '{"error": "unauthenticated"}', status=401, content_type="application/json"
                )
        return Response(body, status=200, content_type="application/json; charset=UTF-8")

    return answer


def requests_to(httpserver: HTTPServer, path: str) -> int:
    """How many requests the server received for `path`."""
    return sum(1 for request, _response in httpserver.log if request.path == path)


def write_recipe(
    folder: Path,
    *,
    url: str,
    key_b64: str = "",
    scope: str = "test-merlin",
    worker_count: int = 1,
    extra_config: str = "",
    sinks: str = "  - name: file\n    config: {path: ./assets.ndjson, format: ndjson}\n",
    processors: str = "",
    name: str = "merlin-test",
    file_name: str = "recipe.yaml",
) -> Path:
    """A merlin recipe; the key goes through `${MERLIN_KEY}` when `key_b64` is given."""
    key_line = "    service_account_base64: ${MERLIN_KEY}\n" if key_b64 else ""
    text = (
        f"name: {name}\n"
        "version: v1beta1\n"
        "source:\n"
        "  name: merlin\n"
        f"  scope: {scope}\n"
        "  config:\n"
        f"    url: {url}\n"
        f"{key_line}"
        f"    worker_count: {worker_count}\n"
        f"{textwrap.indent(extra_config, '    ')}"
        f"{'processors:' + chr(10) + processors if processors else ''}"
        "sinks:\n"
        f"{sinks}"
    )
    path = folder / file_name
    path.write_text(text)
    return path


def read_ndjson(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()]
