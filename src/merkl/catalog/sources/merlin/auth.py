"""Google credentials for Merlin (spec §3.2), sent as `Authorization: Bearer <token>`.

- A base64 service-account key: an OAuth2 access token with the `userinfo.email` scope, fetched
  from the key's `token_uri` (Meteor's seed behaviour); or, with `use_id_token`, a Google ID
  token for `audience` (Meteor's later behaviour).
- No key: Application Default Credentials with the `userinfo.email` scope.

Tokens are refreshed under a lock, so the extraction workers share one. Neither the key nor a
token ever enters a message.
"""

from __future__ import annotations

import base64
import binascii
import json
import threading
from collections.abc import Generator, Mapping
from typing import Any

import httpx

from merkl.errors import CatalogError

USERINFO_EMAIL_SCOPE = "https://www.googleapis.com/auth/userinfo.email"
DEFAULT_AUDIENCE = "sdk.caraml"


def decode_service_account(encoded: str) -> dict[str, Any]:
    """The credentials JSON inside `encoded` (standard base64; line breaks are ignored, as Go's
    decoder does for a YAML `|` block).

    Raises:
        ValueError: not base64, not a JSON object, or without a `type`; never quotes the input.
    """
    compact = encoded.replace("\r", "").replace("\n", "")
    try:
        raw = base64.b64decode(compact, validate=True)
    except (binascii.Error, ValueError):
        raise ValueError(
            f"decode base64: illegal base64 data at input byte {_first_bad_byte(compact)}; "
            "expected the key file encoded with `base64 -w0 key.json`"
        ) from None
    try:
        info = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        reason = exc.msg if isinstance(exc, json.JSONDecodeError) else "not UTF-8 text"
        raise ValueError(f"google credentials from JSON: {reason}") from None
    if not isinstance(info, dict):
        raise ValueError("google credentials from JSON: expected a JSON object")
    if not info.get("type"):
        raise ValueError("google credentials from JSON: missing 'type' field in credentials")
    if info["type"] not in _REQUIRED_FIELDS:
        raise ValueError(_unsupported_type(info["type"]))
    missing = [key for key in _REQUIRED_FIELDS[info["type"]] if not info.get(key)]
    if missing:
        raise ValueError(
            f"google credentials from JSON: a {info['type']} key needs the fields "
            f"{', '.join(_REQUIRED_FIELDS[info['type']])}; missing fields {', '.join(missing)}"
        )
    return info


# What google-auth needs of each key type (the private key itself is read at setup).
_REQUIRED_FIELDS = {
    "service_account": ("client_email", "token_uri", "private_key"),
    "authorized_user": ("client_id", "client_secret", "refresh_token"),
}


def _first_bad_byte(text: str) -> int:
    alphabet = set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/")
    for index, char in enumerate(text):
        if char == "=":
            return index if len(text) % 4 else len(text)
        if char not in alphabet:
            return index
    return len(text) - len(text) % 4


def load_credentials(
    info: Mapping[str, Any] | None, *, use_id_token: bool = False, audience: str = DEFAULT_AUDIENCE
) -> Any:
    """google-auth credentials from a decoded key, or Application Default Credentials.

    Raises:
        CatalogError: the key is not usable, or no default credentials exist.
    """
    import google.auth
    from google.auth import exceptions as google_errors
    from google.oauth2 import service_account

    try:
        if info is None:
            credentials, _project = google.auth.default(scopes=[USERINFO_EMAIL_SCOPE])
            return credentials
        if use_id_token:
            if info.get("type") != "service_account":
                raise CatalogError(
                    f"use_id_token needs a service account key; the key's type is "
                    f"{info.get('type')!r}"
                )
            return service_account.IDTokenCredentials.from_service_account_info(  # type: ignore[no-untyped-call]
                info, target_audience=audience
            )
        if info.get("type") == "service_account":
            return service_account.Credentials.from_service_account_info(  # type: ignore[no-untyped-call]
                info, scopes=[USERINFO_EMAIL_SCOPE]
            )
        if info.get("type") == "authorized_user":
            from google.oauth2 import credentials as user_credentials

            return user_credentials.Credentials.from_authorized_user_info(  # type: ignore[no-untyped-call]
                info, scopes=[USERINFO_EMAIL_SCOPE]
            )
        raise CatalogError(_unsupported_type(info.get("type")))
    except google_errors.DefaultCredentialsError as exc:
        prefix = (
            "google: could not find default credentials"
            if info is None
            else "google credentials from JSON"
        )
        raise CatalogError(f"{prefix}: {exc}") from None
    except (ValueError, KeyError) as exc:
        # The message names missing fields or an unreadable private key, never its content.
        raise CatalogError(f"google credentials from JSON: {type(exc).__name__}: {exc}") from None


def _unsupported_type(key_type: object) -> str:
    return (
        f"google credentials from JSON: credential type {key_type!r} is not supported here; "
        "use a service account key or an authorized_user file"
    )


class GoogleBearerAuth(httpx.Auth):
    """Adds `Authorization: Bearer <token>`, refreshing the shared token when it expires."""

    def __init__(self, credentials: Any, http: httpx.Client) -> None:
        self._credentials = credentials
        self._lock = threading.Lock()
        self._request = _HttpxRequest(http)

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        request.headers["Authorization"] = f"Bearer {self._token()}"
        yield request

    def _token(self) -> str:
        from google.auth import exceptions as google_errors

        with self._lock:
            if not self._credentials.valid:
                try:
                    self._credentials.refresh(self._request)
                except google_errors.GoogleAuthError as exc:
                    # Surfaces as a transport failure of the Merlin call, as in Go.
                    raise httpx.TransportError(
                        f"fetch Google token: {_auth_reason(exc)}"
                    ) from None
            return str(self._credentials.token)


def _auth_reason(exc: Exception) -> str:
    # RefreshError carries (message, response body); the message is enough.
    return str(exc.args[0]) if exc.args else type(exc).__name__


class _HttpxRequest:
    """google-auth's transport interface (`google.auth.transport.Request`) over httpx."""

    def __init__(self, client: httpx.Client) -> None:
        self._client = client

    def __call__(
        self,
        url: str,
        method: str = "GET",
        body: bytes | None = None,
        headers: Mapping[str, str] | None = None,
        timeout: float | None = None,
        **_kwargs: Any,
    ) -> _Response:
        from google.auth import exceptions as google_errors

        try:
            response = self._client.request(
                method,
                url,
                content=body,
                headers=dict(headers or {}),
                timeout=timeout if timeout is not None else httpx.USE_CLIENT_DEFAULT,
            )
        except httpx.HTTPError as exc:
            raise google_errors.TransportError(f"{method} {url}: {exc}") from None  # type: ignore[no-untyped-call]
        return _Response(response)


class _Response:
    def __init__(self, response: httpx.Response) -> None:
        self.status = response.status_code
        self.headers = response.headers
        self.data = response.content
