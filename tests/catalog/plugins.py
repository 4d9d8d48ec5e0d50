"""Plugins used by tests through import paths (`tests.catalog.plugins:Name` in a recipe)."""

from __future__ import annotations

import threading
from typing import ClassVar

from pydantic import Field

from merkl.catalog.asset import Asset, make_asset, make_urn
from merkl.catalog.plugin import (
    Emit,
    PluginConfig,
    PluginInfo,
    Processor,
    RetryableError,
    Sink,
    Source,
)
from merkl.errors import CatalogError


class CountConfig(PluginConfig):
    count: int = 3
    fail_after: int = -1


class CountingSource(Source[CountConfig]):
    """Emits `count` small assets; raises after `fail_after` of them when that is >= 0."""

    name = "counting"
    Config = CountConfig
    info = PluginInfo(description="test source")

    def extract(self, emit: Emit) -> None:
        for index in range(self.config.count):
            if index == self.config.fail_after:
                raise CatalogError(f"counting source broke after {index} assets")
            emit(
                make_asset(
                    urn=make_urn("test", self.ctx.scope, "thing", str(index)),
                    name=f"thing-{index}",
                    service="test",
                    asset_type="thing",
                )
            )


class RecordingConfig(PluginConfig):
    failures: list[str] = Field(default_factory=list)
    """One entry per call: 'retry' (RetryableError), 'fail' (CatalogError), 'ok'; then 'ok'."""
    fail_on_close: bool = False


class RecordingSink(Sink[RecordingConfig]):
    received: ClassVar[list[str]] = []
    events: ClassVar[list[str]] = []
    lock: ClassVar[threading.Lock] = threading.Lock()

    name = "recording"
    Config = RecordingConfig
    info = PluginInfo(description="test sink")

    def __init__(self, config, ctx):
        super().__init__(config, ctx)
        self._plan = list(config.failures)

    def sink(self, assets: list[Asset]) -> None:
        step = self._plan.pop(0) if self._plan else "ok"
        if step == "retry":
            raise RetryableError("recording sink: try again")
        if step == "fail":
            raise CatalogError("recording sink: refused")
        with self.lock:
            self.received.extend(a["urn"] for a in assets)

    def close(self) -> None:
        self.events.append("close")
        if self.config.fail_on_close:
            raise CatalogError("could not flush")

    def abort(self) -> None:
        self.events.append("abort")


class FailingProcessor(Processor[CountConfig]):
    name = "failing"
    Config = CountConfig
    info = PluginInfo(description="test processor")

    def process(self, asset: Asset) -> Asset:
        if asset["name"].endswith(str(self.config.fail_after)):
            raise ValueError("cannot process thing")
        return asset


class NotAPlugin:
    pass
