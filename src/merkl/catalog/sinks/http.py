"""The `http` sink: one request per asset, the asset's protojson as the body."""

from __future__ import annotations

from pydantic import Field, field_validator

from merkl.catalog.asset import Asset, dump_asset
from merkl.catalog.plugin import PluginInfo
from merkl.catalog.sinks._http import RequestSink, RequestSinkConfig, check_http_url


class HttpConfig(RequestSinkConfig):
    url: str = Field(description="URL the assets are sent to")
    method: str = Field(description="HTTP method, e.g. PUT or POST")
    success_code: int = Field(default=200, description="the status that means delivered")

    @field_validator("url")
    @classmethod
    def _check_url(cls, url: str) -> str:
        return check_http_url(url, "https://catalog.example.com/assets")

    @field_validator("method")
    @classmethod
    def _check_method(cls, method: str) -> str:
        if not method.isalpha():
            raise ValueError("expected an HTTP method such as PUT or POST")
        return method.upper()


class HttpSink(RequestSink[HttpConfig]):
    """Sends each asset; a 5xx answer is retried by the runner."""

    name = "http"
    Config = HttpConfig
    info = PluginInfo(
        description="Send assets to an HTTP service",
        sample_config=(
            "# The url (hostname and route) of the http service\n"
            "url: https://catalog.example.com/assets\n"
            "method: PUT\n"
            "# Additional HTTP headers; a comma-separated value sends several\n"
            "headers:\n"
            "  X-Other-Header: value1, value2\n"
        ),
        tags=("http", "sink"),
    )

    def request_for(self, asset: Asset) -> tuple[str, str, bytes, int]:
        return self.config.method, self.config.url, dump_asset(asset), self.config.success_code
