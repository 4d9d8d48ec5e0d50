"""The `enrich` processor: merge fixed attributes into each asset's `data.attributes`."""

from __future__ import annotations

from typing import Any

from pydantic import Field

from merkl.catalog.asset import Asset, make_struct
from merkl.catalog.plugin import PluginConfig, PluginContext, PluginInfo, Processor
from merkl.errors import CatalogError


class EnrichConfig(PluginConfig):
    attributes: dict[str, Any] = Field(
        description="attributes to set in data.attributes; only string values are used"
    )


class EnrichProcessor(Processor[EnrichConfig]):
    """Overwrites keys of the payload's `attributes` Struct with the configured strings.

    Meteor ignores values that are not strings; they are dropped here too, with a warning.
    """

    name = "enrich"
    Config = EnrichConfig
    info = PluginInfo(
        description="Append custom fields to the attributes of records",
        sample_config="attributes:\n  owner_team: ml-platform\n  tier: gold\n",
        tags=("processor", "transform"),
    )

    def __init__(self, config: EnrichConfig, ctx: PluginContext) -> None:
        super().__init__(config, ctx)
        self._strings = {k: v for k, v in config.attributes.items() if isinstance(v, str)}
        ignored = sorted(set(config.attributes) - set(self._strings))
        if ignored:
            ctx.warn(f"enrich: attributes {', '.join(ignored)} are not strings and are ignored")

    def process(self, asset: Asset) -> Asset:
        data = asset.get("data")
        if not isinstance(data, dict):
            raise CatalogError(
                f"enrich: asset {asset.get('urn')!r} has no data payload to add attributes to"
            )
        data["attributes"] = make_struct({**(data.get("attributes") or {}), **self._strings})
        return asset
