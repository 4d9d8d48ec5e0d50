"""The `labels` processor: merge fixed labels into every asset (overwriting existing keys)."""

from __future__ import annotations

from pydantic import Field

from merkl.catalog.asset import Asset, sorted_map
from merkl.catalog.config_types import WeakStr
from merkl.catalog.plugin import PluginConfig, PluginInfo, Processor


class LabelsConfig(PluginConfig):
    labels: dict[str, WeakStr] = Field(description="labels to set on every asset")


class LabelsProcessor(Processor[LabelsConfig]):
    """Sets `config.labels` on each asset's `labels` map."""

    name = "labels"
    Config = LabelsConfig
    info = PluginInfo(
        description="Append labels to assets",
        sample_config="labels:\n  team: ml-platform\n  source: merkl\n",
        tags=("processor", "transform", "labels"),
    )

    def process(self, asset: Asset) -> Asset:
        asset["labels"] = sorted_map({**(asset.get("labels") or {}), **self.config.labels})
        return asset
