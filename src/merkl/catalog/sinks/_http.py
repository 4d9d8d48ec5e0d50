"""What the `http` and `compass` sinks share: header splitting and one request per record."""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Mapping
from typing import TypeVar

import httpx
from pydantic import Field

from merkl.catalog.asset import Asset
from merkl.catalog.config_types import WeakStr
from merkl.catalog.plugin import PluginConfig, PluginContext, RetryableError, Sink
from merkl.errors import CatalogError
from merkl.remotes.urls import mask_url, scrub, url_secrets


class RequestSinkConfig(PluginConfig):
    """What every request-per-asset sink takes: extra headers (secret: they carry tokens)."""

    headers: dict[str, WeakStr] = Field(
        default_factory=dict,
        description="extra headers; a comma-separated value sends the header several times",
        json_schema_extra={"secret": True},
    )


HttpConfigT = TypeVar("HttpConfigT", bound=RequestSinkConfig)

TIMEOUT_S = 30.0
_MAX_BODY_IN_MESSAGE = 300
_MIN_SECRET_LENGTH = 4  # shorter header values ("1", "no") are not secrets worth masking


def split_headers(headers: Mapping[str, str]) -> list[tuple[str, str]]:
    """Meteor's header config: a comma-separated value becomes several headers."""
    return [(name, part.strip()) for name, value in headers.items() for part in value.split(",")]


def with_json_content_type(headers: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """`headers` plus `Content-Type: application/json` unless they set one."""
    if any(name.lower() == "content-type" for name, _value in headers):
        return headers
    return [("Content-Type", "application/json"), *headers]


def check_http_url(url: str, example: str) -> str:
    """`url` if it is an absolute http(s) URL (a pydantic validator's body).

    Raises:
        ValueError: naming the expected form with `example`.
    """
    try:
        parsed = httpx.URL(url)
    except httpx.InvalidURL as exc:
        raise ValueError(f"invalid URL: {exc}; expected e.g. {example!r}") from None
    if parsed.scheme not in ("http", "https") or not parsed.host:
        raise ValueError(f"expected an absolute http(s) URL such as {example!r}")
    return url


def send(
    client: httpx.Client,
    method: str,
    url: str,
    *,
    body: bytes,
    headers: list[tuple[str, str]],
    success_code: int,
    service: str,
) -> None:
    """One request; anything but `success_code` is an error, retryable when it is a 5xx.

    Messages show the URL with its password masked, and never a header value (headers carry
    tokens, and a server may echo them back in its error body).

    Raises:
        RetryableError: the server answered >= 500, or the request timed out.
        CatalogError: any other status, or the server could not be reached.
    """
    secrets = url_secrets(url) | {
        value
        for name, value in headers
        if name.lower() != "content-type" and len(value) >= _MIN_SECRET_LENGTH
    }
    shown = mask_url(url)
    try:
        response = client.request(method, url, content=body, headers=headers)
    except httpx.TimeoutException as exc:
        message = scrub(f"{service}: {method} {shown}: timed out: {exc}", secrets)
        raise RetryableError(message) from None
    except httpx.HTTPError as exc:
        raise CatalogError(scrub(f"{service}: {method} {shown}: {exc}", secrets)) from None
    if response.status_code == success_code:
        return
    text = scrub(response.text, secrets)
    if len(text) > _MAX_BODY_IN_MESSAGE:
        text = text[:_MAX_BODY_IN_MESSAGE] + "…"
    message = f"{service} returns {response.status_code}: {text}"
    if response.status_code >= 500:
        raise RetryableError(message)
    raise CatalogError(message)


class RequestSink(Sink[HttpConfigT]):
    """A sink that sends one HTTP request per asset."""

    def __init__(self, config: HttpConfigT, ctx: PluginContext) -> None:
        super().__init__(config, ctx)
        self._client = httpx.Client(timeout=TIMEOUT_S)
        self._headers = with_json_content_type(split_headers(config.headers))

    @abstractmethod
    def request_for(self, asset: Asset) -> tuple[str, str, bytes, int]:
        """`(method, url, body, success_code)` of the request that delivers `asset`."""

    def sink(self, assets: list[Asset]) -> None:
        for asset in assets:
            method, url, body, success_code = self.request_for(asset)
            send(
                self._client,
                method,
                url,
                body=body,
                headers=self._headers,
                success_code=success_code,
                service=self.name,
            )

    def close(self) -> None:
        self._client.close()
