"""The three GET calls to Merlin's REST API, with Meteor's URL building and error messages.

One `httpx.Client` is shared by the extraction workers. Every call has its own deadline of
`request_timeout`, covering connect, headers and reading the body; only HTTP 200 is success.
"""

from __future__ import annotations

import posixpath
import re
import time
from http.cookiejar import CookieJar
from typing import Any

import httpx
import orjson

from merkl.catalog.config_types import format_go_duration
from merkl.catalog.sources.merlin import decode
from merkl.errors import CatalogError

_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+.\-]*:")
_BAD_ESCAPE = re.compile(r"%(?![0-9A-Fa-f]{2})")
_JSON_CONTENT_TYPE = re.compile(r"(?i)(application|text)/(json|.*\+json|json-.*)(;|$)")


class MerlinClientError(CatalogError):
    """An expected failure of one call (HTTP status, transport, deadline, undecodable body)."""

    def __init__(
        self, message: str, *, status: int | None = None, is_timeout: bool = False
    ) -> None:
        super().__init__(message)
        self.status = status
        self.is_timeout = is_timeout

    @property
    def is_retryable(self) -> bool:
        """Meteor retries the projects call on a deadline, a 5xx or a 429 answer."""
        status = self.status
        return self.is_timeout or (status is not None and (status >= 500 or status == 429))


def parse_base_url(raw: str) -> httpx.URL:
    """Merlin's base URL as Meteor reads it: a missing scheme means `http://`.

    Raises:
        ValueError: not a usable http(s) URL; the message says what to write instead.
    """
    prefix = f"new url builder: invalid input: parse {raw!r}"
    if any(ord(ch) < 0x20 or ord(ch) == 0x7F for ch in raw):
        raise ValueError(f"{prefix}: invalid control character in URL")
    if raw.startswith(":"):
        raise ValueError(f"{prefix}: missing protocol scheme")
    if _BAD_ESCAPE.search(raw):
        raise ValueError(f"{prefix}: invalid URL escape (a % not followed by two hex digits)")
    match = _SCHEME.match(raw)
    text = raw if match else "http://" + raw
    try:
        url = httpx.URL(text)
    except httpx.InvalidURL as exc:
        raise ValueError(f"{prefix}: {exc}") from None
    if url.scheme not in ("http", "https"):
        raise ValueError(
            f"{prefix}: scheme {url.scheme!r} is not http or https; write the URL with its "
            "scheme, e.g. 'http://localhost:8080/api/merlin'"
        )
    if not url.host:
        raise ValueError(f"{prefix}: no host; expected e.g. 'https://my-company.com/api/merlin/'")
    return url


def display_url(url: httpx.URL) -> str:
    """`url` for messages, with any password masked as Go's `URL.Redacted` does."""
    if url.password:
        return str(url.copy_with(password="xxxxx"))
    return str(url)


class MerlinClient:
    """`GET /v1/projects`, `/v1/projects/{id}/models` and `/v1/models/{m}/versions/{v}`.

    `http` is shared by the extraction workers (and by `auth` for its token requests).
    """

    def __init__(
        self,
        base_url: httpx.URL,
        request_timeout_ns: int,
        http: httpx.Client,
        auth: httpx.Auth | None = None,
    ) -> None:
        self._base = base_url
        self._timeout_s = request_timeout_ns / 1e9
        self._timeout = httpx.Timeout(self._timeout_s)
        self._timeout_text = format_go_duration(request_timeout_ns)
        self._http = http
        self._auth = auth

    def fetch_projects(self) -> list[dict[str, Any]]:
        try:
            return self._get(("projects",), decode.decode_projects)  # type: ignore[no-any-return]
        except MerlinClientError as exc:
            raise _wrap(exc, "merlin client: fetch projects") from exc

    def fetch_models(self, project_id: int) -> list[dict[str, Any]]:
        try:
            path = ("projects", str(project_id), "models")
            return self._get(path, decode.decode_models)  # type: ignore[no-any-return]
        except MerlinClientError as exc:
            raise _wrap(exc, f"merlin client: project ID '{project_id}': fetch models") from exc

    def fetch_version(self, model_id: int, version_id: int) -> dict[str, Any]:
        try:
            path = ("models", str(model_id), "versions", str(version_id))
            return self._get(path, decode.decode_version)  # type: ignore[no-any-return]
        except MerlinClientError as exc:
            # Meteor's message says "project ID" here although it is the model's.
            raise _wrap(
                exc, f"merlin client: project ID '{model_id}': fetch version '{version_id}'"
            ) from exc

    def url_for(self, segments: tuple[str, ...]) -> httpx.URL:
        """Go's `path.Join(base.path, "/v1/…")`: slashes collapsed, no trailing slash."""
        joined = posixpath.normpath(posixpath.join("/", self._base.path, "v1", *segments))
        return self._base.copy_with(path="/" + joined.lstrip("/"))

    def _get(self, segments: tuple[str, ...], decoder: Any) -> Any:
        url = self.url_for(segments)
        started = time.monotonic()
        try:
            response = self._http.get(url, auth=self._auth, timeout=self._timeout)
        except httpx.TimeoutException:
            raise self._deadline_error(url) from None
        except httpx.HTTPError as exc:
            raise MerlinClientError(
                f"execute request: GET {display_url(url)}: {_reason(exc)}"
            ) from None
        # httpx times each connect/read; the call as a whole has one deadline, as in Go.
        if time.monotonic() - started > self._timeout_s:
            raise self._deadline_error(url)
        if response.status_code != 200:
            raise MerlinClientError(
                f"[GET]: {display_url(url)}: unexpected response status "
                f"'{response.status_code}': {_error_message(response, response.content)}",
                status=response.status_code,
            )
        try:
            return decoder(orjson.loads(response.content))
        except orjson.JSONDecodeError as exc:
            raise MerlinClientError(f"decode response: {exc}") from None
        except decode.DecodeError as exc:
            raise MerlinClientError(f"decode response: {exc}") from None

    def _deadline_error(self, url: httpx.URL) -> MerlinClientError:
        return MerlinClientError(
            f"execute request: GET {display_url(url)}: context deadline exceeded "
            f"(request_timeout {self._timeout_text})",
            is_timeout=True,
        )


class _NoCookies(CookieJar):
    """Go's default client keeps no cookies; parsing every response for them costs CPU."""

    def extract_cookies(self, response: Any, request: Any) -> None:
        return None


def new_http_client(request_timeout_ns: int) -> httpx.Client:
    """The connection pool shared by the workers (redirects followed, as Go's client does)."""
    return httpx.Client(
        timeout=httpx.Timeout(request_timeout_ns / 1e9),
        follow_redirects=True,
        cookies=_NoCookies(),
        limits=httpx.Limits(max_connections=None, max_keepalive_connections=64),
    )


def _wrap(exc: MerlinClientError, context: str) -> MerlinClientError:
    return MerlinClientError(f"{context}: {exc}", status=exc.status, is_timeout=exc.is_timeout)


def _reason(exc: httpx.HTTPError) -> str:
    text = str(exc)
    return text or type(exc).__name__


def _error_message(response: httpx.Response, body: bytes) -> str:
    """Merlin's `{"error": …}` when the body is JSON, else the raw body text."""
    if _JSON_CONTENT_TYPE.search(response.headers.get("content-type", "")):
        try:
            data = orjson.loads(body)
        except orjson.JSONDecodeError:
            data = None
        if isinstance(data, dict):
            message = data.get("error")
            if message is None:
                return ""
            if isinstance(message, str):
                return message
    return body.decode("utf-8", errors="replace")
