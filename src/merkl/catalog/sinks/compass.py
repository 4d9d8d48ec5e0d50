"""The `compass` sink: `PATCH {host}/v1beta1/assets` per asset, as Meteor sends to Compass.

The body is `{"asset": {…}, "upstreams": […], "downstreams": […]}`; `labels` in the config map
a label name to `$attributes.<key>` (a string in `data.attributes`) or `$labels.<key>`.
"""

from __future__ import annotations

from typing import Any

import orjson
from pydantic import Field, field_validator

from merkl.catalog.asset import Asset
from merkl.catalog.plugin import PluginContext, PluginInfo
from merkl.catalog.sinks._http import RequestSink, RequestSinkConfig, check_http_url
from merkl.errors import CatalogError


class CompassConfig(RequestSinkConfig):
    host: str = Field(description="Compass base URL, e.g. https://compass.example.com")
    labels: dict[str, str] = Field(
        default_factory=dict,
        description="labels to send: name -> $attributes.<key> or $labels.<key>",
    )

    @field_validator("host")
    @classmethod
    def _check_host(cls, host: str) -> str:
        return check_http_url(host, "https://compass.example.com")

    @field_validator("labels")
    @classmethod
    def _check_labels(cls, labels: dict[str, str]) -> dict[str, str]:
        for name, template in labels.items():
            source, _, key = template.partition(".")
            if source not in ("$attributes", "$labels") or not key:
                raise ValueError(
                    f"label {name!r}: expected '$attributes.<key>' or '$labels.<key>', "
                    f"got {template!r}"
                )
        return labels


class CompassSink(RequestSink[CompassConfig]):
    """Upserts each asset and its lineage in Compass."""

    name = "compass"
    Config = CompassConfig
    info = PluginInfo(
        description="Send assets to a Compass service (PATCH /v1beta1/assets)",
        sample_config=(
            "# The hostname of the compass service\n"
            "host: https://compass.example.com\n"
            "# Additional HTTP headers; a comma-separated value sends several\n"
            "headers:\n"
            "  Compass-User-Email: meteor@example.com\n"
            "# Labels of the patch payload, taken from the asset\n"
            "labels:\n"
            "  team: $labels.team\n"
        ),
        tags=("http", "sink"),
    )

    def __init__(self, config: CompassConfig, ctx: PluginContext) -> None:
        super().__init__(config, ctx)
        self._url = config.host.rstrip("/") + "/v1beta1/assets"

    def request_for(self, asset: Asset) -> tuple[str, str, bytes, int]:
        return "PATCH", self._url, orjson.dumps(self.payload(asset)), 200

    def payload(self, asset: Asset) -> dict[str, Any]:
        """The request body for `asset`."""
        lineage = asset.get("lineage") or {}
        return {
            "asset": {
                "urn": asset["urn"],
                "type": asset["type"],
                "name": asset["name"],
                "service": asset["service"],
                "description": asset["description"],
                "url": asset["url"],
                "owners": asset["owners"],
                "data": asset["data"],
                "labels": self._labels(asset),
            },
            "upstreams": [_edge(r) for r in lineage.get("upstreams", [])],
            "downstreams": [_edge(r) for r in lineage.get("downstreams", [])],
        }

    def _labels(self, asset: Asset) -> dict[str, str]:
        labels = dict(asset.get("labels") or {})
        for name, template in self.config.labels.items():
            source, _, key = template.partition(".")
            if source == "$attributes":
                values = (asset.get("data") or {}).get("attributes") or {}
            else:
                values = asset.get("labels") or {}
            value = values.get(key)
            if not isinstance(value, str):
                state = "is missing" if value is None else "is not a string"
                raise CatalogError(
                    f"compass: label {name!r}: {template!r} {state} on asset {asset['urn']!r}"
                )
            labels[name] = value
        return labels


def _edge(resource: dict[str, str]) -> dict[str, str]:
    return {"urn": resource["urn"], "type": resource["type"], "service": resource["service"]}
